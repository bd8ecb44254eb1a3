"""Fleet scale on one machine: 10, 100, 1,000 emulated devices, one round through one Mosquitto.

Real parts: Mosquitto (`aggregator.broker.LocalBroker`), the `iomt aggregator` process with a
device registry (every update's Ed25519 signature is verified) and `--min-clients N`, and devices
speaking the real wire protocol (`bench/fleet_devices.py`: paho clients, a few processes). The
devices' embeddings are synthetic (of the head's input size): the backbone is not what scales.

Per run: round latency (announcement seen -> new global model seen), aggregator CPU seconds and
peak RSS (psutil / VmHWM on its pid), broker throughput over the round (update and ack messages,
bytes of updates). Each count runs `--repeats` times; median, min and max go to
`bench/results/fleet.json`.

    python -m bench.fleet_scale [--devices 10,100,1000] [--repeats 3] [--processes 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import median_of, write_results
from bench.fleet_devices import WorkerSpec, run_worker
from bench.fleet_report import report_section, update_scaling_doc
from bench.fleet_round import RoundObserver, aggregator_peak_mb, start_aggregator, write_setup

RESULTS = Path(__file__).parent / "results" / "fleet.json"
__all__ = ["main", "measure_round", "report_section", "run_bench"]
DEFAULT_HEAD = (136, 32, 7)  # the har task's LSTM-FCN head (pi): embedding -> 32 -> 7 classes


@dataclass(frozen=True)
class RunResult:
    """One round with N devices."""

    devices: int
    round_latency_s: float
    all_acked_s: float
    aggregator_cpu_s: float
    aggregator_peak_mb: float
    updates_per_s: float
    messages_per_s: float
    bytes_per_s: float
    update_bytes: int
    accepted: int


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = run_bench(
        [int(n) for n in args.devices.split(",")], args.repeats, args.processes, args.out
    )
    print(json.dumps(result["summary"], indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scale", description=__doc__)
    parser.add_argument("--devices", default="10,100,1000", help="device counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="runs per count (median of them)")
    parser.add_argument("--processes", type=int, default=4, help="device processes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def run_bench(counts: list[int], repeats: int, processes: int, out: Path | None) -> dict[str, Any]:
    """Every count `repeats` times through one broker; writes `out` (if given) and returns it."""
    from aggregator.broker import LocalBroker

    _raise_open_files_limit()
    runs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp, LocalBroker() as broker:
        for count in counts:
            for repeat in range(repeats):
                workdir = Path(tmp) / f"n{count}-r{repeat}"
                runs.append(measure_round(broker, count, processes, workdir))
                print(f"fleet: {count} devices, run {repeat + 1}: {runs[-1]}", file=sys.stderr)
        broker_kind = broker.kind
    result = _result(runs, counts, repeats, processes, broker_kind)
    if out is not None:
        write_results("fleet", result, out)
        if out == RESULTS:
            update_scaling_doc(json.loads(out.read_text()))
    return result


def measure_round(broker: Any, count: int, processes: int, workdir: Path) -> RunResult:
    """One round with `count` devices against a fresh aggregator on its own fleet name."""
    fleet = workdir.name.replace("-", "")
    device_ids = tuple(f"d{i:05d}" for i in range(count))
    setup = write_setup(workdir, device_ids, _synthetic_head())
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    workers = [
        context.Process(target=run_worker, args=(spec, events), daemon=True)
        for spec in _worker_specs(broker, fleet, device_ids, setup.head, processes)
    ]
    for worker in workers:
        worker.start()
    try:
        _expect(events, "ready", len(workers), timeout_s=180.0)
        with RoundObserver(broker.host, broker.port, fleet) as observer:
            aggregator = start_aggregator(broker.url, fleet, setup, count, workdir)
            try:
                timing = observer.wait_round(aggregator.pid, count, timeout_s=600.0)
                tallies = _expect(events, "done", len(workers), timeout_s=600.0)
                peak_mb = aggregator_peak_mb(aggregator.pid, timing.peak_rss_mb)
            finally:
                _stop(aggregator)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
    return _run_result(count, timing, tallies, peak_mb)


def _worker_specs(
    broker: Any, fleet: str, device_ids: tuple[str, ...], head: Path, processes: int
) -> list[WorkerSpec]:
    shares = np.array_split(np.array(device_ids), max(1, min(processes, len(device_ids))))
    return [
        WorkerSpec(i, broker.host, broker.port, fleet, tuple(str(d) for d in share), str(head))
        for i, share in enumerate(shares)
    ]


def _expect(events: Any, kind: str, count: int, timeout_s: float) -> list[Any]:
    """`count` events of `kind` from the device processes (their payloads)."""
    payloads: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(payloads) < count:
        event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        if event[0] == kind:
            payloads.append(event[2])
    return payloads


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run_result(count: int, timing: Any, tallies: list[dict[str, int]], peak: float) -> RunResult:
    update_bytes = sum(t["bytes_sent"] for t in tallies)
    accepted = sum(t["acked"] for t in tallies)
    latency = timing.model_s
    return RunResult(
        devices=count,
        round_latency_s=round(latency, 3),
        all_acked_s=round(timing.last_ack_s, 3),
        aggregator_cpu_s=round(timing.aggregator_cpu_s, 3),
        aggregator_peak_mb=round(peak, 1),
        updates_per_s=round(count / latency, 1),
        messages_per_s=round(broker_messages(count) / latency, 1),
        bytes_per_s=round(update_bytes / latency, 1),
        update_bytes=update_bytes,
        accepted=accepted,
    )


def _synthetic_head(shape: tuple[int, int, int] = DEFAULT_HEAD) -> Any:
    from edge_runtime.head import Head

    rng = np.random.default_rng(0)
    inputs, hidden, classes = shape
    weights = [
        rng.normal(0, 0.1, (inputs, hidden)),
        np.zeros(hidden),
        rng.normal(0, 0.1, (hidden, classes)),
        np.zeros(classes),
    ]
    return Head.from_weights(weights, ("relu", "softmax"))


def _raise_open_files_limit() -> None:
    """Mosquitto (our child) inherits this: 1,000 devices need well over 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def broker_messages(devices: int) -> int:
    """Messages the broker takes in and hands out in one round of `devices` devices.

    In: N updates, N acks, 1 announcement. Out: N updates to the aggregator, N acks, N
    announcements (the new model and status messages left out).
    """
    return (2 * devices + 1) + 3 * devices


def _stats(values: list[float]) -> dict[str, Any]:
    return median_of(values)


def _result(
    runs: list[RunResult], counts: list[int], repeats: int, processes: int, broker: str
) -> dict[str, Any]:
    fields = [f for f in asdict(runs[0]) if f not in ("devices", "update_bytes", "accepted")]
    by_count: dict[str, dict[str, Any]] = {
        str(n): {f: _stats([getattr(r, f) for r in runs if r.devices == n]) for f in fields}
        for n in counts
    }
    for n in counts:
        by_count[str(n)]["accepted_min"] = min(r.accepted for r in runs if r.devices == n)
    growth = _growth(by_count, counts)
    return {
        "broker": broker,
        "device_processes": processes,
        "repeats": repeats,
        "embeddings": "synthetic, of the head's input size (136); head 136-32-7 as in har (pi)",
        "codec": "int8, Ed25519-signed ModelUpdate, QoS 1, aggregator verifies via --registry",
        "by_devices": by_count,
        "growth": growth,
        "summary": {
            "round_latency_s": {n: by_count[str(n)]["round_latency_s"]["median"] for n in counts},
            "growth": growth,
        },
        "runs": [asdict(r) for r in runs],
    }


def _growth(by_count: dict[str, Any], counts: list[int]) -> dict[str, dict[str, float]]:
    """How each median grows from one device count to the next (x10 devices -> x?)."""
    growth = {}
    for small, large in itertools.pairwise(counts):
        key = f"{small}->{large}"
        growth[key] = {
            field: _ratio(by_count[str(large)][field], by_count[str(small)][field])
            for field in ("round_latency_s", "aggregator_cpu_s", "aggregator_peak_mb")
        }
    return growth


def _ratio(large: dict[str, float], small: dict[str, float]) -> float:
    return round(large["median"] / max(small["median"], 1e-9), 2)


if __name__ == "__main__":
    sys.exit(main())
