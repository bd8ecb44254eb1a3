"""Model upload throughput over a real pty at 115200 and 921600 baud.

A pty ignores baud rates, so the emulated MCU paces its side at 10 bits per byte like a UART.
Prints bytes/s and the ratio to the line rate (baud / 10); writes bench/results/bridge.json.
Run: python bench/bridge.py [--size BYTES] [--chunk-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.faults import FaultConfig
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.transport import PtyEndpoint
from hardware.board_profiles import get_board

BAUD_RATES = (115200, 921600)


class AnyModel:
    """Stands in for TFLM so that any blob can be committed (the bench measures the link)."""

    input_shape = (0, 0)
    input_dtype = np.dtype(np.int8)
    num_classes = 0

    def __init__(self, model_bytes: bytes, arena_bytes: int) -> None:
        self.size = len(model_bytes)


def measure(
    baudrate: int, model: bytes, chunk_size: int, faults: FaultConfig
) -> dict[str, float | str]:
    """Upload `model` once at `baudrate`; bytes/s and its ratio to the line rate."""
    mcu = EmulatedMcu(get_board("esp32s3"), model_loader=AnyModel)  # type: ignore[arg-type]
    endpoint = PtyEndpoint(baudrate=baudrate)
    service = EmulatorService(mcu, endpoint, faults)
    with service, HostDriver.open(endpoint.path, baudrate) as driver:
        report = driver.upload_model(model, chunk_size=chunk_size)
    assert mcu.flash.committed == model, "committed model differs from the uploaded one"
    line_rate = baudrate / 10.0
    injected = service.injector.stats
    return {
        "faults": f"bitflip={faults.bitflip},drop={faults.drop}",
        "injected_bitflips": injected.bitflips,
        "injected_drops": injected.drops,
        "baudrate": baudrate,
        "bytes": len(model),
        "chunk_size": chunk_size,
        "seconds": round(report.seconds, 3),
        "bytes_per_s": round(report.bytes_per_s, 1),
        "line_rate_bytes_per_s": line_rate,
        "efficiency": round(report.bytes_per_s / line_rate, 3),
        "retransmissions": report.retransmissions,
    }


def _median_run(
    baudrate: int, model: bytes, chunk_size: int, faults: FaultConfig, repeats: int
) -> dict[str, float | str]:
    """The run with the median throughput (the machine is shared; single runs are noisy)."""
    runs = [measure(baudrate, model, chunk_size, faults) for _ in range(max(1, repeats))]
    runs.sort(key=lambda run: float(run["bytes_per_s"]))
    median = runs[len(runs) // 2]
    median["runs_bytes_per_s"] = ",".join(str(run["bytes_per_s"]) for run in runs)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32_768, help="model bytes to upload")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; median kept")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bridge.json"))
    args = parser.parse_args()
    model = os.urandom(args.size)
    conditions = (FaultConfig(), FaultConfig(bitflip=0.01, drop=0.01, seed=1))
    rows = [
        _median_run(b, model, args.chunk_size, f, args.repeats)
        for f in conditions
        for b in BAUD_RATES
    ]
    for row in rows:
        print(
            f"{row['faults']:<24} {row['baudrate']:>7} baud: {row['bytes_per_s']:>9.0f} B/s "
            f"({row['efficiency']:.0%} of the {row['line_rate_bytes_per_s']:.0f} B/s line rate, "
            f"{row['retransmissions']} retransmissions)"
        )
    ratios = {}
    for clean_or_faulty in (0, 2):
        slow, fast = rows[clean_or_faulty], rows[clean_or_faulty + 1]
        ratio = float(fast["bytes_per_s"]) / float(slow["bytes_per_s"])
        ratios[str(slow["faults"])] = round(ratio, 2)
        print(f"{slow['faults']:<24} 921600/115200 throughput ratio {ratio:.2f} (line rates: 8.00)")
    result: dict[str, object] = {"machine": platform.machine(), "python": platform.python_version()}
    result |= {"uploads": rows, "throughput_ratio_921600_vs_115200": ratios}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
