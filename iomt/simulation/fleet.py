"""Run the federated part of a simulation: broker, aggregator and devices as OS processes.

The supervisor follows the aggregator's per-round metrics file, reports each closed round, and
injects the faults it was asked for: devices that vanish mid-round (killed, back next round), a
SIGKILLed aggregator (restarted on the same state file), poisoned devices.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iomt.commands.aggregator_options import DEFAULT_BUFFER_SIZE, DEFAULT_MAX_STALENESS
from iomt.simulation.mcu_boards import start_board
from iomt.simulation.processes import ProcessGroup

POLL_S = 0.2
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class DevicePlan:
    """One device process: its replay file, whether it sends poisoned deltas, and whether a
    QEMU microcontroller trains its rounds (`--mcu-devices`)."""

    device_id: str
    replay: Path
    poisoned: bool = False
    min_train_s: float = 0.0  # a real wait: local training lasts at least this long
    mcu: bool = False


@dataclass(frozen=True)
class FleetPlan:
    """Everything the fleet run needs; built by the simulate command."""

    broker_url: str
    fleet: str
    bundle: Path
    workdir: Path
    rounds: int
    min_clients: int
    deadline_s: float
    strategy: str
    holdout: Path
    devices: list[DevicePlan]
    speed: float = 0.0
    local_epochs: int = 5
    learning_rate: float = 0.1
    momentum: float = 0.9
    codec: str = "int8"
    drop_rate: float = 0.0
    kill_aggregator_at: int | None = None
    seed: int = 0
    secure_agg: bool = False  # aggregator and devices run secure aggregation (masked sums)
    mode: str = "sync"  # or "async": buffered asynchronous rounds (`aggregator.async_core`)
    buffer_size: int = DEFAULT_BUFFER_SIZE
    max_staleness: int = DEFAULT_MAX_STALENESS
    mcu_image: Path | None = None  # the firmware image the `mcu` devices' boards run


@dataclass
class FleetOutcome:
    """What happened: per-round metrics as the aggregator wrote them, and the faults injected."""

    state: Path  # the aggregator's SQLite state, which holds every global version
    rounds: list[dict[str, Any]] = field(default_factory=list)
    drops: dict[int, list[str]] = field(default_factory=dict)
    aggregator_restarts: int = 0


def aggregator_args(plan: FleetPlan) -> list[str]:
    """The `iomt aggregator` command line of this plan."""
    return [
        "aggregator",
        "--broker",
        plan.broker_url,
        "--fleet",
        plan.fleet,
        "--bundle",
        str(plan.bundle),
        "--state",
        str(plan.workdir / "aggregator.sqlite"),
        "--rounds",
        str(plan.rounds),
        "--min-clients",
        str(plan.min_clients),
        "--deadline",
        str(plan.deadline_s),
        "--strategy",
        plan.strategy,
        "--codec",
        plan.codec,
        "--local-epochs",
        str(plan.local_epochs),
        "--learning-rate",
        str(plan.learning_rate),
        "--momentum",
        str(plan.momentum),
        "--holdout",
        str(plan.holdout),
        "--metrics-out",
        str(plan.workdir / "metrics.jsonl"),
        *(["--secure-agg"] if plan.secure_agg else []),
        *_async_args(plan),
    ]


def _async_args(plan: FleetPlan) -> list[str]:
    if plan.mode != "async":
        return []
    return ["--mode", "async", "--buffer-size", str(plan.buffer_size),
            "--max-staleness", str(plan.max_staleness)]  # fmt: skip


def device_args(plan: FleetPlan, device: DevicePlan, serial_port: str | None = None) -> list[str]:
    """The `iomt edge` command line of one device (an MCU device's with its board's pty)."""
    args = [
        "edge",
        "--broker",
        plan.broker_url,
        "--fleet",
        plan.fleet,
        "--device-id",
        device.device_id,
        "--bundle",
        str(plan.bundle),
        "--store",
        str(plan.workdir / "devices" / f"{device.device_id}.sqlite"),
        "--replay",
        str(device.replay),
        "--speed",
        str(plan.speed),
        "--min-samples",
        "8",
        "--seed",
        str(plan.seed),
        *(["--secure-agg"] if plan.secure_agg else []),
        *(["--min-train-time", str(device.min_train_s)] if device.min_train_s > 0 else []),
        *(["--serial", serial_port, "--train-on-mcu"] if serial_port else []),
    ]
    return [*args, "--poison"] if device.poisoned else args


def run_fleet(plan: FleetPlan, on_round: Callable[[dict[str, Any]], None]) -> FleetOutcome:
    """Start everything, follow the rounds to the end, stop everything (also on Ctrl-C)."""
    (plan.workdir / "devices").mkdir(parents=True, exist_ok=True)
    metrics_path = plan.workdir / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    outcome = FleetOutcome(state=plan.workdir / "aggregator.sqlite")
    rng = np.random.default_rng(plan.seed)
    with ProcessGroup(plan.workdir / "logs") as group:
        ports = {d.device_id: _start_board(plan, group, d) for d in plan.devices if d.mcu}
        for device in plan.devices:  # boards first: every device process starts together
            group.start(device.device_id, device_args(plan, device, ports.get(device.device_id)))
        _wait_until_connected(group, plan.devices)
        group.start("aggregator", aggregator_args(plan))
        _follow(plan, group, metrics_path, outcome, rng, on_round)
    return outcome


def _wait_until_connected(group: ProcessGroup, devices: list[DevicePlan]) -> None:
    """Every device on the broker before the aggregator opens round 1.

    Otherwise round 1 closes at quorum with whoever started fastest (a QEMU board's relay or a
    loaded machine makes that a race), and the fleet's first round is not the fleet's.
    """
    for device in devices:
        child = group.children[device.device_id]
        if child.wait_for_line(lambda line: ": connected to " in line, STARTUP_TIMEOUT_S) is None:
            raise RuntimeError(
                f"{device.device_id} did not connect to the broker ({child.last_log_line()});"
                f" see {child.log_path}"
            )


def _start_board(plan: FleetPlan, group: ProcessGroup, device: DevicePlan) -> str:
    if plan.mcu_image is None:
        raise RuntimeError("MCU devices need the firmware image (FleetPlan.mcu_image)")
    return start_board(group, device.device_id, plan.bundle, plan.mcu_image, device.replay)


def _follow(
    plan: FleetPlan,
    group: ProcessGroup,
    metrics_path: Path,
    outcome: FleetOutcome,
    rng: np.random.Generator,
    on_round: Callable[[dict[str, Any]], None],
) -> None:
    reader = _JsonLines(metrics_path)
    dropped: list[str] = []
    last_progress = time.monotonic()
    while True:
        for metrics in reader.new_records():
            last_progress = time.monotonic()
            outcome.rounds.append(metrics)
            on_round(metrics)
            _revive(group, dropped)
            next_round = int(metrics["round"]) + 1
            if next_round <= plan.rounds:
                dropped = _drop_devices(plan, group, rng)
                if dropped:
                    outcome.drops[next_round] = dropped
                if plan.kill_aggregator_at == next_round:
                    _kill_and_restart_aggregator(group, outcome)
        aggregator = group.children["aggregator"]
        if not aggregator.alive:
            for metrics in reader.new_records():
                outcome.rounds.append(metrics)
                on_round(metrics)
            if aggregator.process.returncode != 0:
                raise RuntimeError(
                    f"the aggregator exited with code "
                    f"{aggregator.process.returncode}; see {aggregator.log_path}"
                )
            return
        if time.monotonic() - last_progress > STARTUP_TIMEOUT_S + plan.deadline_s:
            raise RuntimeError(
                f"no round closed for {STARTUP_TIMEOUT_S + plan.deadline_s:.0f} s;"
                f" see the logs in {plan.workdir / 'logs'}"
            )
        time.sleep(POLL_S)


def _drop_devices(plan: FleetPlan, group: ProcessGroup, rng: np.random.Generator) -> list[str]:
    """Kill each device with probability `drop_rate` as the next round opens."""
    if plan.drop_rate <= 0:
        return []
    chosen = [d.device_id for d in plan.devices if rng.random() < plan.drop_rate]
    for device_id in chosen:
        group.kill(device_id)
    return chosen


def _revive(group: ProcessGroup, dropped: list[str]) -> None:
    for device_id in dropped:
        group.restart(device_id)


def _kill_and_restart_aggregator(group: ProcessGroup, outcome: FleetOutcome) -> None:
    """SIGKILL the aggregator just after it opened a round, and start it on the same state."""
    time.sleep(1.0)  # let the round open and the first updates arrive: a real mid-round crash
    group.kill("aggregator")
    group.restart("aggregator")
    outcome.aggregator_restarts += 1


class _JsonLines:
    """Reads records appended to a JSON-lines file since the last call (partial lines wait)."""

    def __init__(self, path: Path) -> None:
        self._path, self._offset, self._buffer = path, 0, b""

    def new_records(self) -> list[dict[str, Any]]:
        if not self._path.exists():
            return []
        with self._path.open("rb") as stream:
            stream.seek(self._offset)
            chunk = stream.read()
        self._offset += len(chunk)
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in complete if line.strip()]
