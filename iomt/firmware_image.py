"""The firmware image for a bundle, as `make firmware BUNDLE=...` builds it.

    python -m iomt.firmware_image --bundle bundles/NAME --out build/firmware/NAME
    python -m iomt.firmware_image --check          # compile the core and the port only

Lives in `iomt` because it joins two rooms: the runner generated from the backbone
(`convert.firmware_plan`, TensorFlow's schema, workstation only) and the C build
(`firmware_bridge.firmware_build`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.errors import BridgeError
from firmware_bridge.firmware_build import (
    PORT,
    BuildRequest,
    FirmwareImage,
    build_image,
    bundle_config_source,
    check_core,
    config_from_manifest,
    firmware_dir,
)


@dataclass(frozen=True)
class RunnerSources:
    """The backbone runner's sources and include directories for one model."""

    sources: tuple[Path, ...]
    includes: tuple[Path, ...]


def generate_runner(backbone: Path, out_dir: Path) -> RunnerSources:
    """The runner generated from a backbone `.tflite`."""
    try:
        from convert.firmware_plan import generate_plan  # type: ignore[import-not-found]
    except ImportError as exc:
        raise BridgeError(f"the backbone runner generator is not available: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = out_dir / "iomt_model_plan.c"
    plan.write_text(generate_plan(backbone.read_bytes()).source)
    model = firmware_dir() / "model"
    sources = (plan, *sorted(model.glob("*.c")), *sorted(model.glob("*.cc")))
    return RunnerSources(sources, (model,))


def build_bundle_image(bundle: Path, out_dir: Path) -> FirmwareImage:
    """The image for a bundle: its configuration and the runner generated from its backbone."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BridgeError(f"cannot read bundle {bundle}: {exc}") from None
    runner = generate_runner(bundle / "backbone.int8.tflite", out_dir / "runner")
    request = BuildRequest(config_from_manifest(manifest), runner.sources, out_dir, runner.includes)
    return build_image(request)


def assemble_sketch(bundle: Path, out_dir: Path) -> Path:
    """The Arduino sketch folder of the nano33ble port for a bundle (arduino-cli compiles it)."""
    import shutil

    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BridgeError(f"cannot read bundle {bundle}: {exc}") from None
    sketch = out_dir / "nano33ble"
    source = sketch / "src"
    source.mkdir(parents=True, exist_ok=True)
    port = firmware_dir() / "ports" / "nano33ble"
    shutil.copy(port / "nano33ble.ino", sketch)
    runner = generate_runner(bundle / "backbone.int8.tflite", out_dir / "runner")
    files = [port / "port_hal.cpp", *runner.sources]
    for folder in ("core", "framing"):
        files += sorted((firmware_dir() / folder).glob("*.[ch]"))
    for path in files:
        shutil.copy(path, source)
    (source / "iomt_bundle_config.c").write_text(
        bundle_config_source(config_from_manifest(manifest))
    )
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
            print(f"sketch: {assemble_sketch(args.bundle, args.out)}", file=sys.stderr)
    except BridgeError as exc:
        print(f"firmware image: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(image.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
