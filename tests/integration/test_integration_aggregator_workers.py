"""Aggregator workers on a real Mosquitto: the single aggregator's head, and kill -9 of a worker.

The aggregator, the coordinator and the workers are real `iomt aggregator` OS processes; the
devices are one paho client in the test that sends each device's signed int8 `ModelUpdate`
(the real wire format, every signature checked against a registry) and counts the acks.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.fleet_round import write_setup
from tests.integration.partial_sum_fleet import (
    DEVICES,
    FleetSim,
    aggregator_args,
    assert_same_head,
    closed_metrics,
    make_head,
    round_args,
    single_aggregator_head,
    worker_rows,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference_head(mosquitto, process_group_class, tmp_path_factory) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """The head one `--role single` aggregator makes of the twelve updates."""
    root = tmp_path_factory.mktemp("single")
    return single_aggregator_head(process_group_class, root, mosquitto.url, mosquitto.url, "single")


def _worker_args(
    url: str, fleet: str, setup: Any, state: Path, worker_id: str, update_client: str = "auto"
) -> list[str]:
    return [
        *aggregator_args(url, fleet, setup, state),
        "--role",
        "worker",
        "--worker-id",
        worker_id,
        "--update-client",
        update_client,
    ]


def _coordinator_args(url: str, fleet: str, setup: Any, state: Path) -> list[str]:
    return [*aggregator_args(url, fleet, setup, state), *round_args(setup), "--role", "coordinator"]


def _start_workers(
    processes: Any, url: str, fleet: str, setup: Any, root: Path, update_client: str = "auto"
) -> list[Any]:
    return [
        processes.start(w, _worker_args(url, fleet, setup, root / f"{w}.sqlite", w, update_client))
        for w in ("w1", "w2")
    ]


@pytest.mark.parametrize("update_client", ["auto", "paho"])
def test_coordinator_and_two_workers_give_the_single_aggregators_head(
    mosquitto, processes, reference_head, tmp_path: Path, update_client: str
) -> None:
    """auto takes the updates through libmosquitto here; paho is the fallback everywhere."""
    # Prepare
    fleet = f"two-{update_client}"  # the broker is the module's: the other run's retained state
    setup = write_setup(tmp_path, DEVICES, make_head())
    workers = _start_workers(processes, mosquitto.url, fleet, setup, tmp_path, update_client)
    for worker in workers:
        worker.wait_for("0 committed updates")
    coordinator_args = _coordinator_args(mosquitto.url, fleet, setup, tmp_path / "c.s")
    coordinator = processes.start("coord", coordinator_args)
    sim = FleetSim(mosquitto.url, fleet)
    # Execute
    try:
        sim.send(DEVICES)
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sim.close()
    # Assert: the same head to 1e-6, every update in it, both workers took a share
    assert_same_head(tmp_path / "c.s", reference_head)
    assert metrics["participants"] == len(DEVICES)
    assert metrics["num_examples"] == sum(10 + 3 * i for i in range(len(DEVICES)))
    for worker in workers:
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.finish() == 0
    shares = [worker_rows(tmp_path / f"{w}.sqlite") for w in ("w1", "w2")]
    assert sum(shares) == len(DEVICES) and min(shares) > 0
    through_libmosquitto = [
        any("through libmosquitto" in line for line in worker.output()) for worker in workers
    ]
    assert through_libmosquitto == [update_client == "auto"] * 2


def _two_workers_and_coordinator(processes: Any, url: str, fleet: str, root: Path) -> Any:
    """Workers w1, w2 (subscribed), then the coordinator, and the devices' client."""
    setup = write_setup(root, DEVICES, make_head())
    w1, w2 = _start_workers(processes, url, fleet, setup, root)
    for worker in (w1, w2):
        worker.wait_for("0 committed updates")
    coordinator_args = _coordinator_args(url, fleet, setup, root / "c.s")
    coordinator = processes.start("coord", coordinator_args)
    return setup, w1, coordinator_args, coordinator, FleetSim(url, fleet)


def test_kill_9_of_a_worker_mid_round_loses_no_acknowledged_update(
    mosquitto, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare: half the fleet acked, then worker w1 dies by SIGKILL
    started = _two_workers_and_coordinator(processes, mosquitto.url, "kill", tmp_path)
    setup, w1, _, coordinator, sim = started
    try:
        sim.send(DEVICES[:6])
        held_by_w1 = worker_rows(tmp_path / "w1.sqlite")
        w1.popen.send_signal(signal.SIGKILL)
        assert w1.finish() == -signal.SIGKILL
        # Execute: the other half arrives while w1 is down; w1 restarts from its file
        sim.send(DEVICES[6:], wait=False)
        w1_args = _worker_args(mosquitto.url, "kill", setup, tmp_path / "w1.sqlite", "w1")
        restarted = processes.start("w1b", w1_args)
        restarted.wait_for(f"{held_by_w1} committed updates in its file")
        sim.wait_acked(DEVICES)
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sim.close()
    # Assert: w1 had acked some updates; every acked update is in the same head as a single run
    assert held_by_w1 > 0
    assert metrics["participants"] == len(DEVICES)
    assert_same_head(tmp_path / "c.s", reference_head)


def test_a_killed_workers_acknowledged_updates_come_back_from_its_file_alone(
    mosquitto, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare: half the fleet acked; then w1 and the coordinator die by SIGKILL and w1's
    # retained partial sum is cleared, so its updates can only come back from w1's own file
    from fleet_protocol.topics import partial_topic

    started = _two_workers_and_coordinator(processes, mosquitto.url, "file", tmp_path)
    setup, w1, coordinator_args, coordinator, sim = started
    try:
        sim.send(DEVICES[:6])
        held_by_w1 = worker_rows(tmp_path / "w1.sqlite")
        for victim in (w1, coordinator):
            victim.popen.send_signal(signal.SIGKILL)
            assert victim.finish() == -signal.SIGKILL
        sim.client.publish(partial_topic("file", "w1"), b"", qos=1, retain=True).wait_for_publish()
        # Execute: the rest of the fleet reports, the coordinator resumes, then w1 restarts
        sim.send(DEVICES[6:], wait=False)
        resumed = processes.start("coord-2", coordinator_args)
        resumed.wait_for("round 1: resumed")
        w1_args = _worker_args(mosquitto.url, "file", setup, tmp_path / "w1.sqlite", "w1")
        processes.start("w1b", w1_args).wait_for(f"{held_by_w1} committed updates in its file")
        sim.wait_acked(DEVICES)
        metrics = closed_metrics(resumed)
        assert resumed.finish(timeout_s=60) == 0
    finally:
        sim.close()
    # Assert
    assert held_by_w1 > 0
    assert metrics["participants"] == len(DEVICES)
    assert_same_head(tmp_path / "c.s", reference_head)


def test_workers_with_keys_of_their_own_give_the_single_aggregators_head(
    mosquitto, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare: a key pair per worker and the coordinator's; the workers' in a signers registry
    from aggregator.device_registry import DeviceRegistry
    from bundle_format.signing import write_key_pair

    pairs = {name: write_key_pair(tmp_path / name) for name in ("coord", "w1", "w2")}
    signers = DeviceRegistry(tmp_path / "signers.json")
    for worker in ("w1", "w2"):
        signers.add(worker, pairs[worker].public_key)
    signers.save()
    setup = write_setup(tmp_path, DEVICES, make_head())
    workers = [processes.start(w, [
        *_worker_args(mosquitto.url, "keyed", setup, tmp_path / f"{w}.sqlite", w),
        "--worker-key", str(pairs[w].private_path),
        "--aggregator-key", str(pairs["coord"].public_path),
        "--partial-signers", str(signers.path),
    ]) for w in ("w1", "w2")]  # fmt: skip
    for worker in workers:
        worker.wait_for("0 committed updates")
    coordinator = processes.start("coord", [
        *_coordinator_args(mosquitto.url, "keyed", setup, tmp_path / "c.s"),
        "--model-signing-key", str(pairs["coord"].private_path),
        "--partial-signers", str(signers.path),
    ])  # fmt: skip
    # the devices take acks signed by either worker (`iomt edge --site-key w1 --site-key w2`);
    # a listener trusting only w1 sees w2's acks as forged
    worker_keys = tuple(pairs[w].public_key for w in ("w1", "w2"))
    sim = FleetSim(mosquitto.url, "keyed", worker_keys)
    w1_only = FleetSim(mosquitto.url, "keyed", worker_keys[:1], name="w1-only")
    # Execute
    try:
        sim.send(DEVICES)
        metrics = closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sim.close()
        w1_only.close()
    # Assert: the same head to 1e-6, both workers' sums verified and added, every ack verified
    assert_same_head(tmp_path / "c.s", reference_head)
    assert metrics["participants"] == len(DEVICES)
    assert not any("refused" in line for line in coordinator.output())
    assert sim.acked == set(DEVICES) and sim.forged_acks == 0
    assert w1_only.acked and w1_only.forged_acks > 0  # both workers acked, each with its own key
