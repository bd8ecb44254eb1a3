"""The firmware image for a bundle, as `make firmware BUNDLE=...` builds it.

    python -m iomt.firmware_image --bundle bundles/NAME --out build/firmware/NAME
    python -m iomt.firmware_image --check          # compile the core and the port only

The build generates the runner's plan from the bundle's backbone with `convert.firmware_plan`
(TensorFlow's flatbuffer schema), so it runs on a workstation with the dev or workstation extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware_bridge.errors import BridgeError
from firmware_bridge.firmware_build import (
    PORT,
    BuildRequest,
    FirmwareImage,
    build_image,
    check_core,
    config_from_manifest,
    firmware_dir,
)


def build_bundle_image(bundle: Path, out_dir: Path) -> FirmwareImage:
    """The image for a bundle: its configuration and the runner generated from its backbone."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BridgeError(f"cannot read bundle {bundle}: {exc}") from None
    backbone = bundle / "backbone.int8.tflite"
    return build_image(BuildRequest(config_from_manifest(manifest), out_dir, backbone=backbone))


def assemble_sketch(out_dir: Path) -> Path:
    """The nano33ble Arduino sketch folder from a built image's directory: the core, the port,
    the runner with the plan generated for the bundle, and the bundle's configuration. The
    kernels come from the Arduino_TensorFlowLite library on the board, so none are copied."""
    import shutil

    sketch = out_dir / "nano33ble"
    source = sketch / "src"
    source.mkdir(parents=True, exist_ok=True)
    port, model = firmware_dir() / "ports" / "nano33ble", firmware_dir() / "model"
    shutil.copy(port / "nano33ble.ino", sketch)
    files = [port / "port_hal.cpp", out_dir / "iomt_bundle_config.c"]
    files += [out_dir / "plan" / "iomt_model_plan.c", *sorted(model.glob("iomt_*"))]
    for folder in ("core", "framing"):
        files += sorted((firmware_dir() / folder).glob("*.[ch]"))
    for path in files:
        shutil.copy(path, source)
    return sketch


def main(argv: list[str] | None = None) -> int:
    """Build the image of --bundle into --out, or with --check compile the core only."""
    parser = argparse.ArgumentParser(prog="python -m iomt.firmware_image", description=main.__doc__)
    parser.add_argument("--bundle", type=Path, help="bundle directory to build the image for")
    parser.add_argument("--out", type=Path, default=Path("build/firmware/check"))
    parser.add_argument("--check", action="store_true", help="compile the core and port only")
    parser.add_argument(
        "--sketch", action="store_true", help="write the nano33ble Arduino sketch folder too"
    )
    args = parser.parse_args(argv)
    try:
        if args.bundle is None:
            check_core(args.out)
            print(f"firmware core and {PORT} port compile ({args.out})")
            return 0
        image = build_bundle_image(args.bundle, args.out)
        if args.sketch:
            print(f"sketch: {assemble_sketch(args.out)}", file=sys.stderr)
    except BridgeError as exc:
        print(f"firmware image: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(image.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
