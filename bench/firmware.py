"""`python -m bench firmware`: the C model runner on a Cortex-M4 (QEMU mps2-an386).

For the watch LSTM-FCN at `--size mcu` and `--size pi` and the stress BiLSTM (bundles from the
simulation cache, trained once), the backbone and the whole model each:

- flash and RAM of the Cortex-M4 bench image (`arm-none-eabi-size`; the model sits in flash,
  RAM is `.data` + `.bss` with the planned arena + the 16 KiB stack), against the nRF52840's
  1 MB / 256 KB;
- instructions per inference under `-icount shift=0` (CMSDK timer 0, 40 instructions a tick)
  and the milliseconds they take at 64 MHz;
- agreement with LiteRT on the task's test windows: the native build on every window, the QEMU
  image on `--qemu-windows` of them (0: all), against LiteRT's default and reference kernels.

Then the head trained on the device (`bench/firmware_training.py`, under `training`): training
memory beside the inference arena and instructions per epoch on 256 stored embeddings.
`--training-only` measures just that on the `mcu` bundle.

Writes `bench/results/firmware.json` under `models` and `training`, keeping the other keys of
the file (the firmware core's upload figures).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import median_of, read_results, write_results

MODELS = (("har", "mcu"), ("har", "pi"), ("stress", "pi"))
PARTS = ("backbone", "model")
CLOCK_HZ = 64_000_000
NRF52840_FLASH, NRF52840_RAM = 1024 * 1024, 256 * 1024
MIN_AGREEMENT = 0.0  # the bench measures the runner, whatever the model's accuracy


@dataclass(frozen=True)
class BenchCase:
    """One bundle and its normalised test-subject windows."""

    name: str
    bundle: Path
    windows: np.ndarray
    labels: np.ndarray


def prepare(task: str, size: str, epochs: int | None, cache: Path | None) -> BenchCase:
    """The task's bundle at `size` from the simulation cache (trained once) and test windows."""
    from bundle_format.reader import load_bundle
    from iomt.simulation.model_cache import (
        ModelRequest,
        default_cache_dir,
        prepare_data,
        prepare_model,
    )
    from iomt.simulation.tasks import TASKS
    from training.datasets.window_dataset import load_window_dataset

    cache = cache or default_cache_dir()
    preset = TASKS[task]
    data = prepare_data(preset, None, cache, 0, _say)
    request = ModelRequest(
        preset, preset.pretrain_subjects, preset.test_subjects, epochs or preset.epochs, size,
        MIN_AGREEMENT, 0,
    )  # fmt: skip
    prepared = prepare_model(request, data, cache, _say)
    test = load_window_dataset(prepared.data).for_subjects(preset.test_subjects)
    windows = load_bundle(prepared.bundle).normalise(test.X)
    return BenchCase(f"{task}-{preset.arch}-{size}", prepared.bundle, windows, test.y)


def measure(
    case: BenchCase, part: str, build_root: Path, qemu_windows: int, reference_windows: int
) -> dict[str, Any]:
    """Footprint, instructions and agreement of one model file of a bundle."""
    from convert.firmware_agreement import (
        agreement,
        head_agreement,
        litert_outputs,
        quantise_windows,
    )
    from convert.firmware_plan import generate_plan
    from convert.firmware_runner import build_host_runner, build_qemu_image, run_host, run_qemu

    model = case.bundle / f"{part}.int8.tflite"
    model_bytes = model.read_bytes()
    plan = generate_plan(model_bytes)
    build = build_root / f"{case.name}-{part}"
    windows = quantise_windows(model_bytes, case.windows)
    default = litert_outputs(model_bytes, windows)
    sample = np.linspace(0, len(windows) - 1, min(reference_windows, len(windows))).astype(int)
    reference = litert_outputs(model_bytes, windows[sample], reference=True)
    host = run_host(build_host_runner(model, build), model, windows)
    image = build_qemu_image(model, build)
    chosen = slice(None) if qemu_windows <= 0 else slice(0, qemu_windows)
    run = run_qemu(image, windows[chosen], host.shape[1])
    _say(f"{case.name} {part}: {np.median(run.instructions):,.0f} instructions per window")
    return {
        "bundle": case.name,
        "file": model.name,
        "ops": list(plan.ops),
        "model_bytes": len(model_bytes),
        "arena_bytes": plan.arena_bytes,
        "flash_bytes": image.flash_bytes,
        "ram_bytes": image.ram_bytes,
        "sections": {"text": image.text, "data": image.data, "bss": image.bss,
                     "stack": image.stack},
        "fits_nrf52840": image.flash_bytes <= NRF52840_FLASH and image.ram_bytes <= NRF52840_RAM,
        "instructions": median_of([float(v) for v in run.instructions], digits=0),
        "ms_at_64mhz": round(float(np.median(run.instructions)) / CLOCK_HZ * 1000, 2),
        "timer_calibration": {"measured": run.calibration[0], "actual": run.calibration[1]},
        "host": {
            "vs_litert": agreement(host, default).to_dict(),
            "vs_litert_reference_kernels": agreement(host[sample], reference).to_dict(),
            "head_decisions_vs_litert": (
                head_agreement(case.bundle, host, default) if part == "backbone" else None
            ),
        },
        "qemu": {
            "vs_litert": agreement(run.outputs, default[chosen]).to_dict(),
            "vs_litert_reference_kernels": _qemu_vs_reference(run.outputs, reference, sample),
            "same_as_host": bool(np.array_equal(run.outputs, host[chosen])),
        },
    }  # fmt: skip


def _qemu_vs_reference(outputs: np.ndarray, reference: np.ndarray, sample: np.ndarray) -> Any:
    """QEMU outputs against LiteRT's reference kernels on the windows both ran."""
    from convert.firmware_agreement import agreement

    both = sample[sample < len(outputs)]
    return agreement(outputs[both], reference[: len(both)]).to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench firmware", description=__doc__)
    parser.add_argument("--epochs", type=int, help="training epochs (default: the task's)")
    parser.add_argument("--qemu-windows", type=int, default=0, help="windows run in QEMU (0: all)")
    parser.add_argument(
        "--reference-windows", type=int, default=300,
        help="windows also run in LiteRT's (slow) reference kernels, spread over the test set",
    )  # fmt: skip
    parser.add_argument("--cache", type=Path, help="simulation cache (default: the user's)")
    parser.add_argument("--build", type=Path, help="build directory (default: in the cache)")
    parser.add_argument(
        "--models", default=",".join(f"{t}:{s}" for t, s in MODELS),
        help="TASK:SIZE,... to measure; the other models' entries in the results are kept",
    )  # fmt: skip
    parser.add_argument(
        "--training-only", action="store_true",
        help="only the training figures (keeps the models' from the last run)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    chosen = _chosen_models(args.models)
    if chosen is None:
        print(f"error: --models takes TASK:SIZE from {_model_names()}", file=sys.stderr)
        return 2
    from convert.firmware_runner import default_build_root, missing_tools

    missing = missing_tools(arm=True)
    if missing:
        print(f"error: firmware build tools missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    build_root = args.build or default_build_root()
    previous = read_results("firmware") or {}
    measured: dict[str, list[dict[str, Any]]] = {}
    for task, size in chosen if not args.training_only else ():
        case = prepare(task, size, args.epochs, args.cache)
        measured[case.name] = [
            {**measure(case, part, build_root, args.qemu_windows, args.reference_windows),
             "measured_with": list(sys.argv[1:] if argv is None else argv)}
            for part in PARTS
        ]  # fmt: skip
    models = _merged_models(previous.get("models", []), measured)
    results = {k: v for k, v in previous.items() if k != "machine"}
    results.pop("part", None)
    results.update({"models": models, "clock_hz": CLOCK_HZ, "argv": argv or []})
    if args.training_only or ("har", "mcu") in chosen:
        results["training"] = _training(args.epochs, args.cache, build_root)
    results["kernels"] = _kernel_pins()
    print(f"wrote {write_results('firmware', results)}")
    return 0


def _training(epochs: int | None, cache: Path | None, build_root: Path) -> dict[str, Any]:
    """The head trained on the Cortex-M4, on the watch model sized for it."""
    from bench.firmware_training import measure_training

    case = prepare("har", "mcu", epochs, cache)
    figures = measure_training(case.bundle, case.windows, case.labels, build_root / "training")
    _say(f"training: {figures['instructions']['per_epoch']:,} instructions per epoch")
    return {"bundle": case.name, **figures}


def _model_names() -> str:
    return ", ".join(f"{t}:{s}" for t, s in MODELS)


def _chosen_models(text: str) -> list[tuple[str, str]] | None:
    """`TASK:SIZE,...` -> the models of `MODELS` named, in `MODELS` order (None if unknown)."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    chosen = [(t, s) for t, s in MODELS if f"{t}:{s}" in names]
    return chosen if chosen and len(chosen) == len(names) else None


def _merged_models(
    previous: list[dict[str, Any]], measured: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Earlier entries of models not re-measured, with the re-measured ones in their place.

    A re-measured entry says with which arguments it was (`measured_with`); the top-level
    `argv` is the last run's, which may have measured only some models.
    """
    merged: list[dict[str, Any]] = []
    placed: set[str] = set()
    for entry in previous:
        name = entry.get("bundle")
        if name not in measured:
            merged.append(entry)
        elif name not in placed:
            merged += measured[name]
            placed.add(name)
    for name, entries in measured.items():
        if name not in placed:
            merged += entries
    return merged


def _kernel_pins() -> dict[str, str]:
    """Version and sha256 of the fetched reference kernels, read from the fetch script."""
    from convert.firmware_runner import MODEL_DIR

    pins = {}
    for line in (MODEL_DIR / "fetch_reference_kernels.sh").read_text().splitlines():
        name, _, value = line.partition("=")
        if name in ("TF_FILE", "TF_SHA256", "GEMMLOWP_FILE", "GEMMLOWP_SHA256"):
            pins[name.lower()] = value
    return pins


def report_section(results: dict[str, Any], plots: Any) -> str:
    """The docs/benchmarks.md section: one row per model file."""
    from bench.report import fmt, markdown_table

    header = ["model", "flash B", "RAM B (arena)", "instructions", "ms @ 64 MHz",
              "argmax vs LiteRT", "identical vs LiteRT", "identical vs reference kernels",
              "within 1 step", "windows (QEMU)"]  # fmt: skip
    rows = []
    for m in results.get("models", []):
        host, qemu = m["host"], m["qemu"]
        rows.append([
            f"{m['bundle']} {m['file']}", fmt(m["flash_bytes"]),
            f"{fmt(m['ram_bytes'])} ({fmt(m['arena_bytes'])})",
            fmt(int(m["instructions"]["median"])), fmt(m["ms_at_64mhz"]),
            fmt(host["vs_litert"]["argmax"]), fmt(host["vs_litert"]["identical"]),
            fmt(host["vs_litert_reference_kernels"]["identical"]),
            fmt(host["vs_litert"]["within_one_step"]),
            f"{host['vs_litert']['windows']} ({qemu['vs_litert']['windows']})",
        ])  # fmt: skip
    note = (
        "Cortex-M4 bench image under `qemu-system-arm -M mps2-an386 -icount shift=0`; "
        "agreement of the native build on every test window (the QEMU image gave the same "
        "bytes on the windows it ran). Kernels: TensorFlow Lite reference kernels from "
        f"{results.get('kernels', {}).get('tf_file', '?')}.\n"
    )
    later = sorted({f"{m['bundle']} (`python -m bench firmware {' '.join(m['measured_with'])}`)"
                    for m in results.get("models", []) if "measured_with" in m})  # fmt: skip
    if later:
        note += "Re-measured by a later run than the other rows: " + ", ".join(later) + ".\n"
    training = results.get("training")
    if training:
        from bench.firmware_training import report_rows

        note += "\n" + report_rows(training)
    return markdown_table(header, rows) + "\n" + note


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
