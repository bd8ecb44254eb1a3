"""`iomt simulate` from start to finish; reads top to bottom as the recipe.

prepare data and bundle (cached) -> embed windows for the harness's own scoring -> partition
subjects into devices -> write each device's replay file -> broker, aggregator, devices as
processes over real MQTT -> baselines -> report.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fleet_protocol.messages import FitConfig
from iomt.commands.aggregator_options import DEFAULT_BUFFER_SIZE, DEFAULT_MAX_STALENESS
from iomt.simulation import baselines
from iomt.simulation.baselines import DeviceData, Split
from iomt.simulation.fleet import DevicePlan, FleetOutcome, FleetPlan, run_fleet
from iomt.simulation.model_cache import ModelRequest, prepare_data, prepare_model
from iomt.simulation.partition import (
    DeviceShard,
    cut_groups,
    partition_by_subject,
    partition_dirichlet,
)
from iomt.simulation.pooled import pooled_head
from iomt.simulation.report import PooledChoice, Summary, build_report, round_rows, write_report
from iomt.simulation.tasks import TASKS, device_subjects


@dataclass(frozen=True)
class SimulationConfig:
    """What `iomt simulate` was asked for (defaults come from the task preset)."""

    task: str
    devices: int | None
    rounds: int
    out: Path
    cache_dir: Path
    data: Path | None = None
    broker: str | None = None
    strategy: str = "fedavg"
    codec: str = "int8"
    partition: str = "subject"
    alpha: float = 0.5
    pretrain_subjects: tuple[int, ...] | None = None
    test_subjects: tuple[int, ...] | None = None
    epochs: int | None = None
    model_size: str | None = None
    min_agreement: float = 0.98
    local_epochs: int = 5
    learning_rate: float | None = None  # None: the task preset's (`resolved` fills it in)
    momentum: float = 0.9
    deadline_s: float = 20.0
    speed: float = 0.0
    eval_fraction: float = 0.3
    drop_rate: float = 0.0
    poison: int = 0
    kill_aggregator_at: int | None = None
    seed: int = 0
    secure_agg: bool = False
    mode: str = "sync"  # or "async" (buffered asynchronous rounds)
    buffer_size: int = DEFAULT_BUFFER_SIZE
    max_staleness: int = DEFAULT_MAX_STALENESS
    train_time_s: float = 0.0  # every device's local training lasts at least this long
    slow_fraction: float = 0.0  # this share of devices trains `slowdown` times longer
    slowdown: float = 5.0
    mcu_devices: int = 0  # the last N devices train on a QEMU microcontroller


def run_simulation(
    config: SimulationConfig,
    announce: Callable[[str], None],
    on_round: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Run everything and write the report; returns `report.json`'s content."""
    started = time.monotonic()
    preset = TASKS[config.task]
    config = resolved(config)
    pretrain = config.pretrain_subjects or preset.pretrain_subjects
    test = config.test_subjects or preset.test_subjects
    data = prepare_data(preset, config.data, config.cache_dir, config.seed, announce)
    dataset = _load(data)
    members = device_subjects(
        preset, sorted(int(s) for s in np.unique(dataset["subject"])), pretrain, test
    )
    epochs, size = config.epochs or preset.epochs, config.model_size or preset.size
    request = ModelRequest(preset, pretrain, test, epochs, size, config.min_agreement, config.seed)
    model = prepare_model(request, data, config.cache_dir, announce)
    prepared_s = time.monotonic() - started

    shards = _partition(config, dataset, members, config.devices or preset.default_devices)
    workdir = config.out / "fleet"
    _fresh(workdir)
    replay_paths = _write_replays(workdir, dataset, shards)
    test_index = np.flatnonzero(np.isin(dataset["subject"], test))
    holdout = _write_subset(workdir / "holdout.npz", dataset, test_index)
    from edge_runtime.device_loop import read_bundle_parts

    parts = read_bundle_parts(model.bundle)
    embedded, test_split = _embed(parts, dataset, shards, test_index)

    plan = _fleet_plan(config, model.bundle, workdir, holdout, shards, replay_paths)
    if config.mcu_devices:
        from iomt.simulation.mcu_boards import build_mcu_image

        announce(f"firmware image for {config.mcu_devices} MCU devices")
        plan = replace(plan, mcu_image=build_mcu_image(model.bundle, config.cache_dir))
    fleet_started = time.monotonic()
    outcome = _run_with_broker(config, plan, announce, on_round)
    fleet_s = time.monotonic() - fleet_started

    global_head = _final_head(outcome, parts.head)
    fleet_fit = FitConfig(local_epochs=config.local_epochs, learning_rate=_learning_rate(config),
                          momentum=config.momentum)  # what the aggregator announces  # fmt: skip
    pooled = pooled_head(parts.head, embedded, fleet_fit, config.rounds, config.seed)
    summary, per_device = _score(parts.head, global_head, embedded, test_split, pooled.head)
    per_test_subject = baselines.accuracy_per_subject(
        {"pretrained": parts.head, "federated": global_head},
        test_split,
        dataset["subject"][test_index],
    )
    for device in plan.devices:  # which device trained where, and what personalising gave it
        row = per_device[device.device_id]
        row["trained_on"] = "mcu" if device.mcu else "pi"
        row["personalisation_gain"] = row["personalised"] - row["global"]
    report = build_report(
        config=_config_record(config, preset.name, pretrain, test, members, len(shards), model),
        rows=round_rows(outcome.rounds),
        summary=summary,
        per_device=per_device,
        per_test_subject=per_test_subject,
        faults=_faults(config, plan, outcome),
        timings={"prepare": round(prepared_s, 1), "fleet": round(fleet_s, 1),
                 "total": round(time.monotonic() - started, 1)},
        pooled=PooledChoice(pooled.recipe, pooled.validation, pooled.fleet_recipe,
                            pooled.pretrained_recipe),
    )  # fmt: skip
    write_report(config.out, report)
    return report


def resolved(config: SimulationConfig) -> SimulationConfig:
    """`config` with the task preset's value wherever it left the choice to the task."""
    if config.learning_rate is not None:
        return config
    return replace(config, learning_rate=TASKS[config.task].learning_rate)


def _learning_rate(config: SimulationConfig) -> float:
    learning_rate = resolved(config).learning_rate
    assert learning_rate is not None  # resolved from the preset
    return learning_rate


def _faults(config: SimulationConfig, plan: FleetPlan, outcome: FleetOutcome) -> dict[str, Any]:
    """What was injected and what it caused, for `report.json`."""
    return {
        "drop_rate": config.drop_rate,
        "drops": outcome.drops,
        "poisoned_devices": [d.device_id for d in plan.devices if d.poisoned],
        "kill_aggregator_at": config.kill_aggregator_at,
        "aggregator_restarts": outcome.aggregator_restarts,
    }


def _fresh(workdir: Path) -> None:
    """Each simulation starts from nothing: a previous run's aggregator state would resume."""
    if workdir.exists():
        shutil.rmtree(workdir)


def _load(path: Path) -> dict[str, np.ndarray]:
    from training.datasets.window_dataset import load_window_dataset, window_dataset_to_arrays

    return window_dataset_to_arrays(load_window_dataset(path))


def _partition(
    config: SimulationConfig, dataset: dict[str, np.ndarray], members: list[int], num_devices: int
) -> list[DeviceShard]:
    recording = dataset.get("recording")
    sessions = cut_groups(dataset["y"], recording)
    if config.partition == "dirichlet":
        return partition_dirichlet(
            dataset["y"],
            sessions,
            dataset["subject"],
            members,
            num_devices,
            config.alpha,
            config.eval_fraction,
            config.seed,
        )
    return partition_by_subject(
        sessions, dataset["subject"], recording, members, num_devices, config.eval_fraction
    )


_PER_WINDOW = ("X", "y", "subject", "recording", "start_s")


def _write_subset(path: Path, dataset: dict[str, np.ndarray], index: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    per_window = {k: v[index] for k, v in dataset.items() if k in _PER_WINDOW}
    shared = {k: v for k, v in dataset.items() if k not in _PER_WINDOW}
    save: Any = np.savez  # numpy's stub types **kwds as its allow_pickle flag
    save(path, allow_pickle=False, **per_window, **shared)
    return path


def _write_replays(
    workdir: Path, dataset: dict[str, np.ndarray], shards: list[DeviceShard]
) -> dict[str, Path]:
    """Each device gets only its earlier windows: its later ones stay with the harness."""
    return {
        s.device_id: _write_subset(
            workdir / "replay" / f"{s.device_id}.npz", dataset, s.train_index
        )
        for s in shards
    }


def _embed(
    parts: Any, dataset: dict[str, np.ndarray], shards: list[DeviceShard], test_index: np.ndarray
) -> tuple[list[DeviceData], Split]:
    """Backbone embeddings for the harness's scoring (each device computes its own too)."""
    backbone = parts.backbone()
    X, y = dataset["X"], dataset["y"]

    def split(index: np.ndarray) -> Split:
        return Split(parts.embed_windows(X[index], backbone), y[index])

    devices = [
        DeviceData(s.device_id, s.subject, split(s.train_index), split(s.eval_index))
        for s in shards
    ]
    return devices, split(test_index)


def _fleet_plan(
    config: SimulationConfig,
    bundle: Path,
    workdir: Path,
    holdout: Path,
    shards: list[DeviceShard],
    replays: dict[str, Path],
) -> FleetPlan:
    slow = _slow_devices(config, len(shards))
    first_mcu = len(shards) - config.mcu_devices
    devices = [
        DevicePlan(s.device_id, replays[s.device_id], poisoned=i < config.poison,
                   min_train_s=config.train_time_s * (config.slowdown if i in slow else 1.0),
                   mcu=i >= first_mcu)
        for i, s in enumerate(shards)
    ]  # fmt: skip
    return FleetPlan(
        broker_url=config.broker or "",
        fleet=f"sim-{config.task}",
        bundle=bundle,
        workdir=workdir,
        rounds=config.rounds,
        min_clients=max(1, round(0.5 * len(devices))),
        deadline_s=config.deadline_s,
        strategy=config.strategy,
        holdout=holdout,
        devices=devices,
        speed=config.speed,
        local_epochs=config.local_epochs,
        learning_rate=_learning_rate(config),
        momentum=config.momentum,
        codec=config.codec,
        drop_rate=config.drop_rate,
        kill_aggregator_at=config.kill_aggregator_at,
        seed=config.seed,
        secure_agg=config.secure_agg,
        mode=config.mode,
        buffer_size=config.buffer_size,
        max_staleness=config.max_staleness,
    )


def _slow_devices(config: SimulationConfig, num_devices: int) -> set[int]:
    """Which devices are the slow ones: a seeded draw of `slow_fraction` of them."""
    count = round(config.slow_fraction * num_devices)
    rng = np.random.default_rng(config.seed)
    return {int(i) for i in rng.permutation(num_devices)[:count]}


def _run_with_broker(
    config: SimulationConfig,
    plan: FleetPlan,
    announce: Callable[[str], None],
    on_round: Callable[[dict[str, Any]], None],
) -> FleetOutcome:
    if config.broker:
        return run_fleet(plan, on_round)
    from aggregator.broker import LocalBroker

    with LocalBroker() as broker:
        announce(f"broker: {broker.kind} at {broker.url}")
        return run_fleet(replace(plan, broker_url=broker.url), on_round)


def _final_head(outcome: FleetOutcome, pretrained: Any) -> Any:
    from aggregator.state_store import StateStore
    from edge_runtime.head import Head

    with StateStore(outcome.state) as store:
        latest = store.latest_version()
        if latest is None:
            return pretrained
        return Head.from_weights(store.load_weights(latest.version), pretrained.activations)


def _score(
    pretrained: Any,
    global_head: Any,
    devices: list[DeviceData],
    test: Split,
    pooled: Any,
) -> tuple[Summary, dict[str, dict[str, Any]]]:
    local = baselines.local_only(pretrained, devices, test)
    personal = baselines.personalisation(global_head, devices)
    per_device: dict[str, dict[str, Any]] = {
        d.device_id: {
            "subject": d.subject,
            "global": personal[d.device_id][0],
            "personalised": personal[d.device_id][1],
            "local_only": local[d.device_id],
            "train_windows": len(d.train.y),
            "later_windows": len(d.later.y),
        }
        for d in devices
    }
    summary = Summary(
        pretrained=baselines.accuracy(pretrained, test),
        federated=baselines.accuracy(global_head, test),
        personalised=float(np.mean([p[1] for p in personal.values()])),
        federated_on_device=float(np.mean([p[0] for p in personal.values()])),
        pooled_upper_bound=baselines.accuracy(pooled, test),
        local_only=float(np.mean(list(local.values()))),
    )
    return summary, per_device


def _config_record(
    config: SimulationConfig,
    task: str,
    pretrain: tuple[int, ...],
    test: tuple[int, ...],
    members: list[int],
    num_devices: int,
    model: Any,
) -> dict[str, Any]:
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    record.update(
        task=task,
        devices=num_devices,
        pretrain_subjects=list(pretrain),
        test_subjects=list(test),
        device_subjects=members,
        # the simulator records these people in a lab; a user's --data decides for itself
        lab_subjects=[] if config.data else list(TASKS[task].lab_subjects),
        bundle=str(model.bundle),
        bundle_cached=model.cached,
    )
    return record
