"""The edge bundle reader: schema, hashes, signature, trusted keys (no TensorFlow)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bundle_format.errors import BundleError
from bundle_format.reader import (
    BACKBONE_FILE,
    HEAD_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SCHEMA_VERSION,
    SIGNATURE_FILE,
    SIGNER_FILE,
    load_bundle,
)
from bundle_format.signing import (
    generate_private_key,
    load_private_key,
    load_public_key_bytes,
    public_key_bytes,
    sign_bytes,
    write_key_pair,
)
from edge_runtime.head import Head


def _head() -> Head:
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(4, 3)), np.zeros(3), rng.normal(size=(3, 2)), np.zeros(2)]
    return Head.from_weights(weights, ["relu", "softmax"])


def _manifest(files: dict[str, bytes], schema_version: int = SCHEMA_VERSION) -> dict:
    quant = {"dtype": "int8", "shape": [1, 8, 2], "scale": 0.05, "zero_point": -3}
    return {
        "schema_version": schema_version,
        "task": "test",
        "labels": ["a", "b"],
        "channels": ["x", "y"],
        "sample_rate_hz": 50.0,
        "window_length": 8,
        "stride": 4,
        "normalisation": {"mean": [1.0, 2.0], "std": [2.0, 0.0]},
        "embedding_size": 4,
        "models": {"model": {"input": quant, "output": quant}},
        "model_version": "test-1",
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in files.items()
        },
    }


def write_bundle(root: Path, key=None, schema_version: int = SCHEMA_VERSION) -> Path:
    """A signed bundle whose model files are placeholder bytes (the reader never parses them)."""
    key = key or generate_private_key()
    files = {MODEL_FILE: b"model" * 10, BACKBONE_FILE: b"backbone" * 10}
    files[HEAD_FILE] = _head().to_npz_bytes()
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    manifest = json.dumps(_manifest(files, schema_version), indent=2).encode()
    (root / MANIFEST_FILE).write_bytes(manifest)
    (root / SIGNATURE_FILE).write_bytes(sign_bytes(key, manifest))
    (root / SIGNER_FILE).write_bytes(public_key_bytes(key))
    return root


def _resign(root: Path, key) -> None:
    manifest = (root / MANIFEST_FILE).read_bytes()
    (root / SIGNATURE_FILE).write_bytes(sign_bytes(key, manifest))


def test_load_bundle_sound_bundle_gives_fields(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "b"))
    assert bundle.labels == ("a", "b")
    assert bundle.stride == 4 and bundle.window_length == 8
    assert bundle.quantisation("model", "input").zero_point == -3
    normalised = bundle.normalise(np.array([[3.0, 5.0]]))
    np.testing.assert_allclose(normalised, [[1.0, 3.0]])  # std 0 is treated as 1
    assert Head.from_npz(bundle.verified_head_path).num_classes == 2
    assert bundle.arena_bytes is None


def test_load_bundle_tampered_model_byte_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    data = bytearray((root / MODEL_FILE).read_bytes())
    data[3] ^= 0x01
    (root / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(root)


def test_load_bundle_tampered_manifest_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    text = (root / MANIFEST_FILE).read_text().replace('"test-1"', '"test-2"')
    (root / MANIFEST_FILE).write_text(text)
    with pytest.raises(BundleError, match="signature"):
        load_bundle(root)


def test_load_bundle_unknown_schema_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", schema_version=99)
    with pytest.raises(BundleError, match="schema_version 99"):
        load_bundle(root)


def test_load_bundle_missing_file_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    (root / HEAD_FILE).unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(root)


def test_load_bundle_untrusted_signer_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    stranger = public_key_bytes(generate_private_key())
    with pytest.raises(BundleError, match="untrusted"):
        load_bundle(root, trusted_keys=[stranger])


def test_load_bundle_trusted_key_file_accepted(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path / "keys")
    root = write_bundle(tmp_path / "b", key=load_private_key(pair.private_path))
    bundle = load_bundle(root, trusted_keys=[pair.public_path])
    assert bundle.signer_public_key == load_public_key_bytes(pair.public_path)


def test_load_bundle_swapped_signer_refused(tmp_path: Path) -> None:
    # An attacker re-signs with their own key and ships their public key: a trust list stops it.
    root = write_bundle(tmp_path / "b")
    honest = (root / SIGNER_FILE).read_bytes()
    attacker = generate_private_key()
    _resign(root, attacker)
    (root / SIGNER_FILE).write_bytes(public_key_bytes(attacker))
    with pytest.raises(BundleError, match="untrusted"):
        load_bundle(root, trusted_keys=[honest])


def test_write_key_pair_refuses_overwrite(tmp_path: Path) -> None:
    write_key_pair(tmp_path)
    with pytest.raises(BundleError, match="already exists"):
        write_key_pair(tmp_path)
    assert (tmp_path / "bundle_signing.key").stat().st_mode & 0o777 == 0o600


def test_bundle_modules_import_without_tensorflow() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'tf_keras', 'training'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import bundle_format.reader, bundle_format.signing\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
