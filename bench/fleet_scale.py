"""Fleet scale on one machine: up to 10,000 emulated devices through one Mosquitto, against one
aggregator or a coordinator with 1, 2 or 4 workers (`iomt aggregator --role worker`).

Real parts: Mosquitto (`aggregator.broker.LocalBroker`), the `iomt aggregator` processes with a
device registry (every update's Ed25519 signature is verified) and `--min-clients N`, and devices
speaking the real wire protocol (`bench/fleet_devices.py`: paho clients in a few processes, each
MQTT connection carrying `--devices-per-connection` device identities, each with its own key,
update topic and ack topic). The devices' embeddings are synthetic (of the head's input size) and
their round-1 updates are fine-tuned and signed before the round opens: what is timed is the
aggregator's side, not the emulator's.

Per run: round latency (announcement seen -> new global model seen, with every ack seen too),
CPU seconds of every aggregator process together (per update), peak RSS (VmHWM per process,
summed), broker throughput over the round. Each configuration runs `--repeats` times; median,
min and max go to `bench/results/fleet.json`, and the figures block of `docs/scaling.md`.

    python -m bench.fleet_scale [--devices 100,1000,10000] [--workers 0,1,2,4] [--repeats 1]

`--broker nats` runs the same rounds on a fresh 3-node NATS cluster per run, workers in a NATS
queue group (`bench/fleet_nats.py`; `bench/results/fleet-nats.json`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import queue
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import median_of, write_results
from bench.fleet_devices import WorkerSpec, run_worker
from bench.fleet_liveness import FleetProcessDiedError, FleetWatch
from bench.fleet_report import report_section, update_scaling_doc
from bench.fleet_round import (
    AggregatorExitedError,
    AggregatorProcess,
    RoundObserver,
    peak_mb_of,
    start_aggregator,
    start_worker,
    wait_for_log,
    write_setup,
)

RESULTS = Path(__file__).parent / "results" / "fleet.json"
__all__ = ["main", "measure_round", "report_section", "run_bench"]
DEFAULT_HEAD = (136, 32, 7)  # the har task's LSTM-FCN head (pi): embedding -> 32 -> 7 classes


@dataclass(frozen=True)
class RunResult:
    """One round with N devices and W aggregator workers (0: the single aggregator)."""

    devices: int
    workers: int
    round_latency_s: float
    all_acked_s: float
    aggregator_cpu_s: float
    cpu_per_update_ms: float  # every aggregator process's CPU together, per update
    busiest_process_cpu_per_update_ms: float  # what one process spends per update of the fleet
    aggregator_peak_mb: float  # the sum of every aggregator process's own peak
    largest_process_peak_mb: float
    updates_per_s: float
    messages_per_s: float
    bytes_per_s: float
    update_bytes: int
    accepted: int
    resent: int  # updates the devices sent again after no ack within 15 s
    refused_subscriptions: int = 0  # device subscriptions the broker refused (asked again)


@dataclass(frozen=True)
class BenchPlan:
    """What to run: device counts, worker counts, repeats, and how devices are emulated."""

    counts: list[int]
    workers: list[int]
    repeats: int
    processes: int
    devices_per_connection: int


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = BenchPlan([int(n) for n in args.devices.split(",")],
                     [int(w) for w in args.workers.split(",")], args.repeats, args.processes,
                     args.devices_per_connection)  # fmt: skip
    try:
        if args.broker == "nats":
            from bench import fleet_nats

            result = fleet_nats.run_bench(plan, args.out or fleet_nats.RESULTS)
        else:
            result = run_bench(plan, args.out or RESULTS)
    except (AggregatorExitedError, FleetProcessDiedError) as exc:
        print(f"fleet bench: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result["summary"], indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scale", description=__doc__)
    parser.add_argument("--devices", default="100,1000,10000", help="device counts")
    parser.add_argument(
        "--workers", default="0,1,2,4", help="aggregator workers per run (0: one single aggregator)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration")
    parser.add_argument("--processes", type=int, default=4, help="device processes")
    parser.add_argument(
        "--devices-per-connection",
        type=int,
        default=25,
        help="device identities sharing one MQTT connection",
    )
    parser.add_argument(
        "--broker",
        choices=("mosquitto", "nats"),
        default="mosquitto",
        help="one Mosquitto, or a fresh 3-node NATS cluster per run (workers in a queue group)",
    )
    parser.add_argument("--out", type=Path, help="results file (default: bench/results/)")
    return parser  # fmt: skip


def run_bench(plan: BenchPlan, out: Path | None) -> dict[str, Any]:
    """Every (count, workers) `repeats` times through one broker; writes `out` and returns it."""
    from aggregator.broker import LocalBroker

    raise_open_files_limit()
    runs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp, LocalBroker() as broker:
        for count, workers, repeat in itertools.product(plan.counts, plan.workers,
                                                        range(plan.repeats)):  # fmt: skip
            workdir = Path(tmp) / f"n{count}-w{workers}-r{repeat}"
            runs.append(measure_round(broker, count, workers, plan, workdir))
            print(f"fleet: {count} devices, {workers} workers: {runs[-1]}", file=sys.stderr)
        broker_kind = broker.kind
    result = results_of(runs, plan, broker_kind)
    if out is not None:
        write_results("fleet", result, out)
        if out == RESULTS:
            update_scaling_doc(json.loads(out.read_text()))
    return result


def measure_round(
    broker: Any, count: int, workers: int, plan: BenchPlan, workdir: Path
) -> RunResult:
    """One round with `count` devices against fresh aggregator processes on their own fleet."""
    fleet = workdir.name.replace("-", "")
    device_ids = tuple(f"d{i:05d}" for i in range(count))
    setup = write_setup(workdir, device_ids, _synthetic_head())
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    specs = _worker_specs(broker, fleet, device_ids, setup.head, plan)
    emulators = [context.Process(target=run_worker, args=(spec, events), daemon=True)
                 for spec in specs]  # fmt: skip
    for emulator in emulators:
        emulator.start()
    watch = FleetWatch(emulators, [], getattr(broker, "dead", lambda: None))
    aggregators = watch.aggregators
    try:
        _expect(events, "ready", len(emulators), 900.0, watch.check)
        with RoundObserver(broker.host, broker.port, fleet) as observer:
            options = getattr(broker, "worker_options", None)  # a NATS cluster's queue group
            aggregators += _start_aggregators(broker.url, fleet, setup, count, workers, workdir,
                                              options)  # fmt: skip
            observer.watch([p.pid for p in aggregators])
            pids = [p.pid for p in aggregators]
            reports = DeviceReports(events, len(emulators))
            timing = observer.wait_round(pids, count, 900.0, watch.check, reports.all_done)
            tallies = reports.payloads
            peaks = peak_mb_of(pids, timing.peak_rss_mb)
    finally:
        for process in aggregators:
            _stop(process.popen)
        for emulator in emulators:
            emulator.join(timeout=30)
            if emulator.is_alive():
                emulator.terminate()
    return _run_result(count, workers, timing, tallies, peaks)


def _start_aggregators(
    url: str,
    fleet: str,
    setup: Any,
    count: int,
    workers: int,
    workdir: Path,
    worker_options: Callable[[int], tuple[str, tuple[str, ...]]] | None = None,
) -> list[AggregatorProcess]:
    """The single aggregator, or W workers (subscribed first) and their coordinator.

    `worker_options(w)`: worker w's `--broker` and extra options (a NATS cluster's queue group);
    by default every process gets `url`.
    """
    if workers == 0:
        return [start_aggregator(url, fleet, setup, count, workdir)]
    options = worker_options or (lambda w: (url, ()))
    started = []
    for w in range(1, workers + 1):
        worker_url, extra = options(w)
        started.append(start_worker(worker_url, fleet, setup, w, workdir, extra))
    try:
        for worker in started:
            wait_for_log(worker, "committed updates in its file", 120.0)
    except BaseException:
        for worker in started:
            _stop(worker.popen)
        raise
    time.sleep(0.5)  # their SUBACKs: a shared subscription must exist before updates flow
    return [*started, start_aggregator(url, fleet, setup, count, workdir, role="coordinator")]


def _worker_specs(
    broker: Any, fleet: str, device_ids: tuple[str, ...], head: Path, plan: BenchPlan
) -> list[WorkerSpec]:
    shares = np.array_split(np.array(device_ids), max(1, min(plan.processes, len(device_ids))))
    address = getattr(broker, "device_address", lambda i: (broker.host, broker.port))
    return [
        WorkerSpec(i, address(i)[0], address(i)[1], fleet, tuple(str(d) for d in share), str(head),
                   devices_per_connection=plan.devices_per_connection, prepare=True)
        for i, share in enumerate(shares)
    ]  # fmt: skip


@dataclass
class DeviceReports:
    """The device processes' `done` reports (each: every device of it heard its ack), drained
    without blocking while the round is watched."""

    events: Any
    count: int
    payloads: list[Any] = field(default_factory=list)

    def all_done(self) -> bool:
        while len(self.payloads) < self.count:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return False
            if event[0] == "done":
                self.payloads.append(event[2])
        return True


def _expect(
    events: Any, kind: str, count: int, timeout_s: float, check: Callable[[], None]
) -> list[Any]:
    """`count` events of `kind` from the device processes (their payloads); `check` raises
    between polls if a process the round needs died."""
    payloads: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(payloads) < count:
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(payloads)} of {count} device processes {kind} in time")
        try:
            event = events.get(timeout=1.0)
        except queue.Empty:
            continue
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


def _run_result(
    count: int, workers: int, timing: Any, tallies: list[dict[str, int]], peaks: dict[int, float]
) -> RunResult:
    update_bytes = sum(t["bytes_sent"] for t in tallies)
    accepted = sum(t["acked"] for t in tallies)
    latency = timing.model_s
    return RunResult(
        devices=count,
        workers=workers,
        round_latency_s=round(latency, 3),
        all_acked_s=round(timing.last_ack_s, 3),
        aggregator_cpu_s=round(timing.aggregator_cpu_s, 3),
        cpu_per_update_ms=round(1000 * timing.aggregator_cpu_s / count, 3),
        busiest_process_cpu_per_update_ms=round(
            1000 * max(timing.cpu_by_process_s.values()) / count, 3
        ),
        aggregator_peak_mb=round(sum(peaks.values()), 1),
        largest_process_peak_mb=round(max(peaks.values()), 1),
        updates_per_s=round(count / latency, 1),
        messages_per_s=round(broker_messages(count) / latency, 1),
        bytes_per_s=round(update_bytes / latency, 1),
        update_bytes=update_bytes,
        accepted=accepted,
        resent=sum(t["resent"] for t in tallies),
        refused_subscriptions=sum(t.get("refused_subscriptions", 0) for t in tallies),
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


def raise_open_files_limit() -> None:
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


def setup_label(workers: int) -> str:
    """How a configuration is named in the results."""
    return "single" if workers == 0 else f"{workers} worker{'s' if workers > 1 else ''}"


def results_of(runs: list[RunResult], plan: BenchPlan, broker: str) -> dict[str, Any]:
    counts = ("devices", "workers", "update_bytes", "accepted", "resent", "refused_subscriptions")
    fields = [f for f in asdict(runs[0]) if f not in counts]
    by_count: dict[str, dict[str, Any]] = {}
    for n, w in itertools.product(plan.counts, plan.workers):
        mine = [r for r in runs if r.devices == n and r.workers == w]
        stats: dict[str, Any] = {f: _stats([getattr(r, f) for r in mine]) for f in fields}
        stats["accepted_min"] = min(r.accepted for r in mine)
        stats["resent_max"] = max(r.resent for r in mine)
        stats["refused_subscriptions_max"] = max(r.refused_subscriptions for r in mine)
        by_count.setdefault(str(n), {})[setup_label(w)] = stats
    growth = _growth(by_count, plan)
    return {
        "broker": broker,
        "device_processes": plan.processes,
        "devices_per_connection": plan.devices_per_connection,
        "repeats": plan.repeats,
        "embeddings": "synthetic, of the head's input size (136); head 136-32-7 as in har (pi)",
        "codec": "int8, Ed25519-signed ModelUpdate, QoS 1, aggregator verifies via --registry",
        "devices_prepared": "fine-tuned and signed before the round opens (aggregator timed)",
        "by_devices": by_count,
        "growth": growth,
        "summary": {
            "round_latency_s": _medians(by_count, "round_latency_s"),
            "cpu_per_update_ms": _medians(by_count, "cpu_per_update_ms"),
            "growth": growth,
        },
        "runs": [asdict(r) for r in runs],
    }


def _medians(by_count: dict[str, Any], field: str) -> dict[str, dict[str, float]]:
    return {n: {label: stats[field]["median"] for label, stats in by_label.items()}
            for n, by_label in by_count.items()}  # fmt: skip


def _growth(by_count: dict[str, Any], plan: BenchPlan) -> dict[str, dict[str, Any]]:
    """How each median grows from one device count to the next, per configuration."""
    growth: dict[str, dict[str, Any]] = {}
    for small, large in itertools.pairwise(plan.counts):
        for w in plan.workers:
            label = setup_label(w)
            small_stats, large_stats = by_count[str(small)][label], by_count[str(large)][label]
            growth.setdefault(f"{small}->{large}", {})[label] = {
                "devices": round(large / small, 2),
                **{field: _ratio(large_stats[field], small_stats[field])
                   for field in ("round_latency_s", "aggregator_cpu_s", "aggregator_peak_mb")},
            }  # fmt: skip
    return growth


def _ratio(large: dict[str, float], small: dict[str, float]) -> float:
    return round(large["median"] / max(small["median"], 1e-9), 2)


if __name__ == "__main__":
    sys.exit(main())
