"""`iomt convert runs/NAME --out bundles/NAME`: a signed int8 bundle, its parity and sizes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.input_checks import check_bundle_out, check_dataset_file, check_run_dir
from iomt.progress import PhaseProgress
from iomt.tensorflow_start import start_tensorflow_quietly

HELP = "convert a training run to a signed full-int8 bundle (LiteRT, TFLM, C array for MCUs)"
BOARDS = ("pi4", "pi-zero-2w", "nano33ble", "esp32s3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="training run directory (runs/NAME)")
    parser.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    parser.add_argument("--board", choices=BOARDS, help="target board: fit check; C array for MCUs")
    parser.add_argument("--key", type=Path, help="Ed25519 private key (default: CONFIG_DIR/keys)")
    parser.add_argument("--data", type=Path, help="window dataset (default: the run's own)")
    parser.add_argument("--task", help="task name in the manifest (default: dataset file stem)")
    parser.add_argument(
        "--min-agreement", type=float, default=0.98, help="top-1 agreement with float required"
    )
    parser.add_argument(
        "--parity-windows",
        type=int,
        default=2000,
        help="test windows scored (deterministic sample; 0 = all); TFLM runs one at a time",
    )
    parser.add_argument(
        "--calibration-windows", type=int, default=300, help="training windows for int8 ranges"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    _check_arguments(args)
    signing = _signing_key(args.key, env.config_dir)
    start_tensorflow_quietly()  # only now: a refused command imports nothing heavy
    from bundle_format.writer import write_bundle
    from convert.errors import ConvertError
    from convert.pipeline import STEPS, ConvertRequest, convert_run
    from convert.signing_keys import keep_signing_key

    if args.key is None and not signing.created:
        env.warn(f"no --key: signing with the default key {signing.private_path}")
    request = ConvertRequest(
        run_path=args.run,
        board=args.board,
        data_path=args.data,
        task=args.task,
        min_agreement=args.min_agreement,
        parity_windows=args.parity_windows,
        calibration_windows=args.calibration_windows,
    )
    with PhaseProgress(env) as progress:
        counter = iter(range(1, STEPS + 1))

        def step(name: str) -> None:  # one line per step off a terminal: "convert 2/7  int8 model"
            progress.show("convert", next(counter, STEPS), STEPS, name)

        converted = convert_run(request, announce=env.warn, step=step)
    summary = _summary(converted, args)
    _print(env, summary, converted, args.json)
    problems = converted.problems(args.min_agreement)
    if problems:
        raise ConvertError(f"bundle not written: {'; '.join(problems)}")
    keep_signing_key(signing)  # a new default key is written only with its first bundle
    if signing.created:
        env.warn(f"no --key: made a signing key on first use, {signing.private_path}")
    write_bundle(args.out, converted.files, converted.manifest, signing.key)
    env.warn(f"bundle -> {args.out} (signed by {signing.public_path})")
    return ExitStatus.SUCCESS


def _signing_key(key_path: Path | None, config_dir: Path) -> Any:
    """The key that will sign, read now: a bad `--key` is refused before any work."""
    from bundle_format.signing import SigningKeyError
    from convert.signing_keys import resolve_signing_key

    try:
        return resolve_signing_key(key_path, config_dir)
    except (SigningKeyError, OSError) as exc:
        raise UsageError(f"--key: {exc}") from exc


def _check_arguments(args: argparse.Namespace) -> None:
    if not 0.0 <= args.min_agreement <= 1.0:
        raise UsageError(f"--min-agreement must be in [0, 1], got {args.min_agreement}")
    if args.parity_windows < 0 or args.calibration_windows < 1:
        raise UsageError("--parity-windows must be >= 0 and --calibration-windows >= 1")
    check_bundle_out("--out", args.out)
    check_run_dir(args.run)
    check_dataset_file("--data", args.data)


def _summary(converted: Any, args: argparse.Namespace) -> dict[str, Any]:
    manifest = converted.manifest
    sizes, gzip_sizes = manifest["sizes"], manifest["gzip_sizes"]
    int8_bytes = sizes["model.int8.tflite"]
    return {
        "bundle": str(args.out),
        "model_version": manifest["model_version"],
        "parity": converted.parity.to_dict(),
        "sizes": sizes,
        "gzip_sizes": gzip_sizes,
        "float32_tflite_bytes": manifest["float32_tflite_bytes"],
        "float32_tflite_gzip_bytes": manifest["float32_tflite_gzip_bytes"],
        "int8_to_float32_ratio": int8_bytes / manifest["float32_tflite_bytes"],
        "sparsity": manifest["sparsity"],
        "ops": manifest["ops"],
        "tflm_arena": converted.arena.to_manifest(),
        "board_fit": converted.fit.describe() if converted.fit is not None else None,
        "written": not converted.problems(args.min_agreement),
    }


def _print(env: Environment, summary: dict[str, Any], converted: Any, as_json: bool) -> None:
    if as_json:
        env.print(json.dumps(summary, indent=2))
        return
    from convert.parity import format_parity_table

    for line in format_parity_table(converted.parity):
        env.print(line)
    sizes, gzip_sizes = summary["sizes"], summary["gzip_sizes"]
    model = "model.int8.tflite"
    env.print(
        f"{model} {sizes[model]} B (gzip {gzip_sizes[model]}) vs float32 "
        f"{summary['float32_tflite_bytes']} B (gzip {summary['float32_tflite_gzip_bytes']}): "
        f"ratio {summary['int8_to_float32_ratio']:.3f}"
    )
    env.print(
        f"backbone.int8.tflite {sizes['backbone.int8.tflite']} B, head.npz {sizes['head.npz']} B, "
        f"sparsity {summary['sparsity']['measured']:.3f} (target {summary['sparsity']['target']})"
    )
    arena = summary["tflm_arena"]
    env.print(
        f"TFLM arena {arena['arena_bytes']} B (minimum {arena['arena_minimum_bytes']} B, "
        f"allocator recorded {arena['arena_recorded_bytes']} B)"
    )
    if summary["board_fit"]:
        env.print(summary["board_fit"])
