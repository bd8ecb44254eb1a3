"""This toolkit against Flower on the same federated task, measured the same way on one machine.

Task: `iomt simulate --task har` (watch data, LSTM-FCN pretrained on subjects 1,2, devices are
subjects 4-7, test subjects 8-10). Ours: int8 backbone on each device, numpy head fine-tuning,
signed int8 head deltas over MQTT. Flower: its deployment runtime on loopback (one
`flower-superlink`, one `flower-supernode` per device, `flwr run` of `bench/flower_app`), FedAvg
on the whole float32 LSTM-FCN trained with TensorFlow on each device, starting from the same
pretrained weights and reading the very replay files our devices read.

Both sides are watched from outside (`bench/process_watch.py`): peak RSS of each device's process
tree, and TCP bytes on each device's sockets to the server port.

    python -m bench.flower [--rounds 10] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median_of, write_results
from bench.flower_deploy import FlowerDeployment, FlowerRun
from bench.flower_report import report_section
from bench.process_watch import DeviceUsage, ProcessWatch, commandline_children

RESULTS = Path(__file__).parent / "results" / "flower.json"
FLOWER_APP = Path(__file__).parent / "flower_app"
MB = 2**20
_OUR_SETTINGS = ("strategy", "codec", "local_epochs", "learning_rate", "devices", "rounds")
__all__ = ["main", "report_section", "run_bench"]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = run_bench(args.rounds, args.repeats, (args.local_epochs, args.learning_rate), args.out)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.flower", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="rounds, the same for both")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side (median)")
    parser.add_argument("--local-epochs", type=int, default=1, help="Flower's local epochs")
    parser.add_argument(
        "--learning-rate", type=float, default=1e-4, help="Flower's Adam step (1e-3 degrades)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def run_bench(
    rounds: int, repeats: int, local: tuple[int, float], out: Path | None
) -> dict[str, Any]:
    """Both sides `repeats` times; writes `out` (if given) and returns the result."""
    with tempfile.TemporaryDirectory(prefix="flower-bench-") as tmp:
        ours = [run_ours(rounds, Path(tmp) / f"ours-{i}") for i in range(repeats)]
        data_dir = Path(tmp) / "ours-0" / "fleet"
        run_dir = Path(ours[0]["run_dir"])
        flower = [
            run_flower(rounds, local, run_dir, data_dir, Path(tmp) / f"flower-{i}")
            for i in range(repeats)
        ]
    result = _result(ours, flower, rounds, repeats, local)
    if out is not None:
        write_results("flower", result, out)
    return result


def run_ours(rounds: int, out: Path) -> dict[str, Any]:
    """`iomt simulate --task har`, its `iomt edge` processes watched from outside."""
    command = [sys.executable, "-m", "iomt.cli", "simulate", "--task", "har",
               "--rounds", str(rounds), "--out", str(out)]  # fmt: skip
    started = time.monotonic()
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        simulate = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        broker = _BrokerPort(simulate.pid)
        watch = ProcessWatch(lambda: commandline_children(simulate.pid, "edge"), broker.port)
        with watch:
            code = simulate.wait()
    if code != 0:
        raise RuntimeError(f"iomt simulate failed ({code}); see {log}")
    usage = _usage(watch.usage, rounds)
    report = json.loads((out / "report.json").read_text())
    rows = report["rounds"]
    return {
        "accuracy": report["summary"]["federated"],
        "accuracy_initial": report["summary"]["pretrained"],
        "payload_bytes_per_device_round": _mean(
            [r["bytes_up"] / r["participants"] for r in rows if r["participants"]]
        ),
        "wall_s": report["timings_s"]["fleet"],
        "settings": {k: report["config"].get(k) for k in _OUR_SETTINGS},
        "bytes_up_per_device_round": usage["socket_bytes_up_per_device_round"],
        "bytes_down_per_device_round": usage["socket_bytes_down_per_device_round"],
        "process_wall_s": round(time.monotonic() - started, 1),
        **usage,
        "run_dir": str(Path(report["config"]["bundle"]).parent.parent / "runs"
                       / Path(report["config"]["bundle"]).name),
    }  # fmt: skip


class _BrokerPort:
    """The loopback broker's port, read from a device's `--broker mqtt://HOST:PORT`."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid, self.value = root_pid, 0

    def port(self) -> int:
        if not self.value:
            import psutil

            for process in psutil.Process(self.root_pid).children(recursive=True):
                args = process.cmdline()
                if "edge" in args and "--broker" in args:
                    self.value = int(args[args.index("--broker") + 1].rsplit(":", 1)[1])
                    break
        return self.value


def run_flower(
    rounds: int, local: tuple[int, float], run_dir: Path, data_dir: Path, workdir: Path
) -> dict[str, Any]:
    """SuperLink, one SuperNode per device replay file, `flwr run`; watched like ours."""
    devices = len(list((data_dir / "replay").glob("*.npz")))
    run = FlowerRun(FLOWER_APP, rounds, local[0], run_dir, data_dir, devices, local[1])
    with FlowerDeployment(workdir, devices) as deployment:
        watch = ProcessWatch(deployment.supernode_pids, lambda: 0)  # bytes: the relay counts
        with watch:
            outcome = deployment.run(run)
    return {
        **outcome,
        **_usage(watch.usage, rounds),
        "bytes_up_per_device_round": outcome["relayed_bytes_up_per_device_round"],
        "bytes_down_per_device_round": outcome["relayed_bytes_down_per_device_round"],
    }


def _usage(usage: dict[str, DeviceUsage], rounds: int) -> dict[str, Any]:
    devices = list(usage.values())
    return {
        "devices": len(devices),
        "device_peak_mb": round(max(d.peak_rss_bytes for d in devices) / MB, 1),
        "device_peak_mb_each": {k: round(v.peak_rss_bytes / MB, 1) for k, v in usage.items()},
        "device_peak_mb_largest_process": round(
            max(d.peak_largest_process_bytes for d in devices) / MB, 1
        ),
        "socket_bytes_up_per_device_round": _mean([d.bytes_up / rounds for d in devices]),
        "socket_bytes_down_per_device_round": _mean([d.bytes_down / rounds for d in devices]),
    }


def _mean(values: list[float]) -> float:
    return round(float(statistics.fmean(values)), 1) if values else 0.0


def _stats(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return median_of([float(r[key]) for r in runs])


def _result(
    ours: list[dict[str, Any]],
    flower: list[dict[str, Any]],
    rounds: int,
    repeats: int,
    local: tuple[int, float],
) -> dict[str, Any]:
    for run in (*ours, *flower):
        per_round = run["bytes_up_per_device_round"] + run["bytes_down_per_device_round"]
        run["total_bytes"] = round(per_round * run["devices"] * rounds)
    keys = ("accuracy", "bytes_up_per_device_round", "bytes_down_per_device_round", "total_bytes",
            "device_peak_mb", "device_peak_mb_largest_process", "wall_s")  # fmt: skip
    side = {name: {k: _stats(runs, k) for k in keys} for name, runs in
            (("ours", ours), ("flower", flower))}  # fmt: skip
    pick = {name: {k: v["median"] for k, v in stats.items()} for name, stats in side.items()}
    result: dict[str, Any] = {
        "task": "har (watch): devices = subjects 4-7, test = 8-10, LSTM-FCN (pi) pretrained on 1,2",
        "rounds": rounds,
        "repeats": repeats,
        "flower_runtime": "deployment",
        "flower_version": _flower_version(),
        "flower_local_epochs": local[0],
        "flower_learning_rate": local[1],
        "bytes_measured_as": (
            "application bytes a device sent per round: ours from tcp_info (bytes acked) of each "
            "iomt edge socket to the broker, MQTT framing included; Flower counted by a loopback "
            "relay between each SuperNode and the SuperLink, HTTP framing included"
        ),
        "device_peak_mb_measured_as": (
            "peak RSS sum of a device's process tree, polled every 0.2 s: ours one iomt edge "
            "process; Flower a flower-supernode with its flower-superexec and flwr-clientapp"
        ),
    }
    for name in ("ours", "flower"):
        result[f"accuracy_{name}"] = round(pick[name]["accuracy"], 4)
        result[f"bytes_per_device_round_{name}"] = pick[name]["bytes_up_per_device_round"]
        result[f"device_peak_mb_{name}"] = pick[name]["device_peak_mb"]
        result[f"wall_s_{name}"] = pick[name]["wall_s"]
    result["bytes_ratio"] = round(
        result["bytes_per_device_round_flower"] / result["bytes_per_device_round_ours"], 1
    )
    result["memory_ratio"] = round(
        result["device_peak_mb_flower"] / result["device_peak_mb_ours"], 1
    )
    largest = side["flower"]["device_peak_mb_largest_process"]["median"]
    result["memory_ratio_largest_process"] = round(
        largest / side["ours"]["device_peak_mb_largest_process"]["median"], 1
    )
    result["accuracy_gap_points"] = round(
        100 * (result["accuracy_flower"] - result["accuracy_ours"]), 2
    )
    result["stats"] = side
    result["runs"] = {"ours": ours, "flower": flower}
    return result


def _flower_version() -> str:
    from importlib.metadata import version

    return version("flwr")


if __name__ == "__main__":
    sys.exit(main())
