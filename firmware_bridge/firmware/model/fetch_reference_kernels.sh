#!/bin/sh
# Fetch TensorFlow Lite's reference kernels (and gemmlowp's fixed-point header they include)
# from Debian's package archive, pinned by version and sha256, and extract only what the
# firmware's model runner compiles into DEST, with the licence notices beside them.
#
#   fetch_reference_kernels.sh DEST
#
# Tarballs are cached in ${XDG_CACHE_HOME:-~/.cache}/iomt-edge-fl/tflite-reference/.
# Nothing fetched here is ever committed: DEST is a build directory.
set -eu

DEST=${1:?usage: fetch_reference_kernels.sh DEST}
ARCHIVE=${IOMT_DEBIAN_ARCHIVE:-http://deb.debian.org/debian}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/iomt-edge-fl/tflite-reference

TF_FILE=tensorflow_2.14.1+dfsg.orig.tar.xz
TF_PATH=pool/main/t/tensorflow/tensorflow_2.14.1%2Bdfsg.orig.tar.xz
TF_SHA256=9dfff0627def4e999f66a80d0fb57fd0651d12d525dcd67d6c24f1e9bca72b93
TF_ROOT=tensorflow-2.14.1
GEMMLOWP_FILE=gemmlowp_0.0~git20211220.e844ffd.orig.tar.xz
GEMMLOWP_PATH=pool/main/g/gemmlowp/gemmlowp_0.0%7Egit20211220.e844ffd.orig.tar.xz
GEMMLOWP_SHA256=b43ad962deaa41ba6727888a48ecf4dad181a70fcdd82505d9dbdcc8388a98e7
GEMMLOWP_ROOT=gemmlowp-0.0~git20211220.e844ffd

# What the runner compiles: TFLite's kernel headers, the portable tensor utils and
# quantisation helpers, and gemmlowp's fixed-point arithmetic.
TF_MEMBERS="LICENSE
tensorflow/lite/core/macros.h
tensorflow/lite/kernels/op_macros.h
tensorflow/lite/kernels/internal/common.h
tensorflow/lite/kernels/internal/common.cc
tensorflow/lite/kernels/internal/compatibility.h
tensorflow/lite/kernels/internal/cppmath.h
tensorflow/lite/kernels/internal/max.h
tensorflow/lite/kernels/internal/min.h
tensorflow/lite/kernels/internal/types.h
tensorflow/lite/kernels/internal/runtime_shape.h
tensorflow/lite/kernels/internal/runtime_shape.cc
tensorflow/lite/kernels/internal/quantization_util.h
tensorflow/lite/kernels/internal/quantization_util.cc
tensorflow/lite/kernels/internal/portable_tensor_utils.h
tensorflow/lite/kernels/internal/portable_tensor_utils.cc
tensorflow/lite/kernels/internal/optimized/neon_check.h
tensorflow/lite/kernels/internal/reference/portable_tensor_utils.h
tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cc
tensorflow/lite/kernels/internal/reference/portable_tensor_utils_impl.h
tensorflow/lite/kernels/internal/reference/concatenation.h
tensorflow/lite/kernels/internal/reference/reduce.h
tensorflow/lite/kernels/internal/reference/requantize.h
tensorflow/lite/kernels/internal/reference/softmax.h
tensorflow/lite/kernels/internal/reference/integer_ops/conv.h
tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h
tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h"
GEMMLOWP_MEMBERS="LICENSE
fixedpoint/fixedpoint.h
internal/detect_platform.h"

fail() {
    echo "fetch_reference_kernels: $*" >&2
    exit 1
}

# fetch FILE PATH SHA256: the verified tarball's path in the cache, downloaded when missing.
fetch() {
    file=$1 path=$2 sha=$3
    mkdir -p "$CACHE" || fail "cannot create the cache directory $CACHE"
    if [ -f "$CACHE/$file" ] && echo "$sha  $CACHE/$file" | sha256sum -c --status 2>/dev/null; then
        return 0
    fi
    command -v curl >/dev/null 2>&1 || fail "curl is not installed (apt-get install -y curl)"
    if ! error=$(curl -fsSL --retry 2 -m 600 -o "$CACHE/$file.part" "$ARCHIVE/$path" 2>&1); then
        fail "cannot download $ARCHIVE/$path ($(echo "$error" | tail -n 1))"
    fi
    echo "$sha  $CACHE/$file.part" | sha256sum -c --status \
        || fail "$file does not match its pinned sha256 $sha"
    mv "$CACHE/$file.part" "$CACHE/$file"
}

# extract FILE ROOT OUT MEMBERS...: only the listed members, rooted at OUT.
extract() {
    file=$1 root=$2 out=$3
    shift 3
    mkdir -p "$out"
    members=""
    for member in "$@"; do members="$members $root/$member"; done
    # shellcheck disable=SC2086  # members are word-split on purpose
    tar -xJf "$CACHE/$file" -C "$out" --strip-components=1 $members \
        || fail "cannot extract from $CACHE/$file"
}

STAMP="$DEST/.fetched-$TF_SHA256-$GEMMLOWP_SHA256"
[ -f "$STAMP" ] && exit 0
fetch "$TF_FILE" "$TF_PATH" "$TF_SHA256"
fetch "$GEMMLOWP_FILE" "$GEMMLOWP_PATH" "$GEMMLOWP_SHA256"
rm -rf "$DEST"
# shellcheck disable=SC2086
extract "$TF_FILE" "$TF_ROOT" "$DEST/tensorflow" $TF_MEMBERS
# shellcheck disable=SC2086
extract "$GEMMLOWP_FILE" "$GEMMLOWP_ROOT" "$DEST/gemmlowp" $GEMMLOWP_MEMBERS
cat > "$DEST/NOTICE" <<NOTICE
Third-party sources fetched at build time; not part of the IoMT Edge FL repository.
tensorflow/: TensorFlow Lite reference kernels, Debian source package tensorflow $TF_FILE
  sha256 $TF_SHA256; licence: tensorflow/LICENSE (Apache-2.0).
gemmlowp/: gemmlowp fixed-point header, Debian source package gemmlowp $GEMMLOWP_FILE
  sha256 $GEMMLOWP_SHA256; licence: gemmlowp/LICENSE (Apache-2.0).
NOTICE
touch "$STAMP"
