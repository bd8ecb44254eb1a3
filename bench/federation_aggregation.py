"""Aggregating many head updates: our streaming FedAvg against Flower's `aggregate`.

Throughput runs both on the same list of decoded updates in one process. Peak memory runs
each in its own child process, fed the way an aggregator is fed: wire bytes arrive one at a
time and are decoded. Ours folds each update in and drops it; Flower's `aggregate` takes a
list, so every update is held until the end. `tracemalloc` starts after the imports, so the
peak is what aggregating allocates (numpy reports its buffers to tracemalloc); the RSS
figure (VmHWM) includes the interpreter and the imports (Flower's are larger).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from aggregator.aggregation import WeightedMeanAccumulator
from aggregator.strategies import make_strategy
from fleet_protocol.messages import ModelUpdate
from fleet_protocol.types import Weights
from fleet_protocol.wire import decode_message, encode_message

OURS = "ours"
FLOWER = "flwr"
_FLEET = "bench"


def shapes_to_text(shapes: list[tuple[int, ...]]) -> str:
    return ",".join("x".join(str(d) for d in shape) for shape in shapes)


def shapes_from_text(text: str) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in part.split("x")) for part in text.split(",")]


def wire_updates(shapes: list[tuple[int, ...]], count: int, seed: int) -> Iterator[bytes]:
    """`count` int8 head-delta messages with random deltas of `shapes` (values do not matter)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        delta = [rng.normal(0.0, 0.01, shape).astype(np.float32) for shape in shapes]
        update = ModelUpdate(_FLEET, 0, 0, f"device-{index:05d}", 0, 50 + index % 50, delta)
        yield encode_message(update, codec="int8", rng=rng)


def decoded_updates(
    payloads: Iterator[bytes], shapes: list[tuple[int, ...]]
) -> Iterator[ModelUpdate]:
    for payload in payloads:
        message = decode_message(payload, expected_type=ModelUpdate, expected_shapes=shapes)
        assert isinstance(message, ModelUpdate)
        yield message


def aggregate_ours(updates: Iterator[ModelUpdate], shapes: list[tuple[int, ...]]) -> Weights:
    """Streaming FedAvg: validate and fold in one update at a time."""
    strategy = make_strategy("fedavg")
    zeros = [np.zeros(shape, np.float32) for shape in shapes]
    strategy.begin_round(zeros)
    for update in updates:
        strategy.accumulate(update.delta, update.num_examples, update.device_id)
    return strategy.finish_round(zeros)


def aggregate_flower(updates: Iterator[ModelUpdate]) -> Weights:
    """Flower's own weighted average (`flwr.server.strategy.aggregate.aggregate`) on a list."""
    from flwr.server.strategy.aggregate import aggregate

    results = [(update.delta, update.num_examples) for update in updates]
    return list(aggregate(results))


THROUGHPUTS = {
    "ours": "our FedAvg strategy: validates each decoded update, float64 running mean",
    "flwr": "flwr.server.strategy.aggregate.aggregate on the same decoded updates (a list)",
    "ours_accumulator": "our running mean alone (what the strategy runs after validating)",
    "ours_from_wire": "ours, decoding each wire message then folding it in",
    "flwr_from_wire": "Flower's aggregate, decoding each wire message into its list first",
}
"""Throughput figures of `throughput_run`, in updates per second."""


def throughput_run(
    payloads: list[bytes], shapes: list[tuple[int, ...]], rotation: int = 0
) -> dict[str, float]:
    """Updates per CPU-second of each variant in `THROUGHPUTS` on the same updates.

    CPU time of this process, not wall time: the machine is shared, and time spent waiting
    for a core is nobody's aggregation. `rotation` changes which variant runs first.
    """
    updates = list(decoded_updates(iter(payloads), shapes))
    work: dict[str, Callable[[], Any]] = {
        "ours": lambda: aggregate_ours(iter(updates), shapes),
        "flwr": lambda: aggregate_flower(iter(updates)),
        "ours_accumulator": lambda: _accumulate_only(updates),
        "ours_from_wire": lambda: aggregate_ours(decoded_updates(iter(payloads), shapes), shapes),
        "flwr_from_wire": lambda: aggregate_flower(decoded_updates(iter(payloads), shapes)),
    }
    names = list(work)
    names = names[rotation % len(names) :] + names[: rotation % len(names)]
    seconds, means = {}, {}
    for name in names:
        seconds[name], means[name] = _timed(work[name])
    pairs = zip(means["ours"], means["flwr"], strict=True)
    figures = {name: len(updates) / seconds[name] for name in work}
    figures["ours_to_flwr"] = seconds["flwr"] / seconds["ours"]
    figures["max_abs_difference"] = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    return figures


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = work()
    return time.process_time() - started, result


def _accumulate_only(updates: list[ModelUpdate]) -> Weights:
    mean = WeightedMeanAccumulator()
    for update in updates:
        mean.add_validated(update.delta, update.num_examples)
    return mean.result()


def peak_memory(impl: str, clients: int, shapes: list[tuple[int, ...]]) -> dict[str, float]:
    """Run one aggregation of `clients` updates in a fresh child; its peak heap and RSS in MB."""
    command = [sys.executable, "-m", "bench.federation_aggregation", impl, str(clients),
               shapes_to_text(shapes)]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"memory child {impl} {clients} failed: {completed.stderr[-500:]}")
    measured: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return measured


def _child(impl: str, clients: int, shapes: list[tuple[int, ...]]) -> dict[str, Any]:
    if impl == FLOWER:
        import flwr.server.strategy.aggregate  # noqa: F401  (imports before the measurement)
    tracemalloc.start()
    updates = decoded_updates(wire_updates(shapes, clients, seed=clients), shapes)
    if impl == OURS:
        aggregate_ours(updates, shapes)
    else:
        aggregate_flower(updates)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"peak_mb": peak / 2**20, "rss_mb": _peak_rss_kb() / 1024}


def _peak_rss_kb() -> int:
    """VmHWM of this process (ru_maxrss would carry the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], int(sys.argv[2]), shapes_from_text(sys.argv[3]))))
