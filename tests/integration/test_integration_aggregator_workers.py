"""Aggregator workers on a real Mosquitto: the single aggregator's head, and kill -9 of a worker.

The aggregator, the coordinator and the workers are real `iomt aggregator` OS processes; the
devices are one paho client in the test that sends each device's signed int8 `ModelUpdate`
(the real wire format, every signature checked against a registry) and counts the acks.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from aggregator.state_store import StateStore
from bench.fleet_devices import device_signing_key
from bench.fleet_round import write_setup
from edge_runtime.head import Head
from fleet_protocol.aggregator_identity import aggregator_verifier
from fleet_protocol.errors import SignatureError
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.topics import subscription_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

pytestmark = pytest.mark.integration

DEVICES = tuple(f"dev{i:02d}" for i in range(12))
SHAPES = [(8, 4), (4,), (4, 3), (3,)]


def _head() -> Head:
    rng = np.random.default_rng(0)
    return Head.from_weights([rng.normal(0, 0.3, s) for s in SHAPES], ("relu", "softmax"))


class FleetSim:
    """One MQTT client speaking for every device: waits for the round, sends, counts acks
    (only those `ack_key` signed, given one, as `iomt edge --ack-key` does)."""

    def __init__(self, url: str, fleet: str, ack_key: bytes | None = None) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.fleet = fleet
        self.ack_verify = aggregator_verifier(ack_key) if ack_key else None
        self.forged_acks = 0
        self.announcement: RoundAnnouncement | None = None
        self.acked: set[str] = set()
        self.refused: list[UpdateAck] = []
        self.sent: dict[str, bytes] = {}  # device -> its update, to resend as `iomt edge` does
        self.resends = 0
        self.changed = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{fleet}")
        self.client.on_message = self._on_message
        self.client.connect(host, int(port))
        self.client.subscribe([(subscription_topic(fleet, k), 1) for k in ("round", "ack")])
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        decoded = decode_message(bytes(message.payload)) if message.payload else None
        if isinstance(decoded, UpdateAck) and self.ack_verify is not None:
            try:
                decode_message(bytes(message.payload), verify_key=self.ack_verify)
            except SignatureError:
                self.forged_acks += 1
                return
        with self.changed:
            if isinstance(decoded, RoundAnnouncement) and decoded.round_id == 1:
                self.announcement = decoded
            elif isinstance(decoded, UpdateAck):
                (self.acked.add if decoded.accepted else lambda _: self.refused.append(decoded))(
                    decoded.device_id
                )
            self.changed.notify_all()

    def _wait(self, condition: Any, what: str) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout=60), f"timed out waiting for {what}"

    def send(self, devices: tuple[str, ...], *, wait: bool = True) -> None:
        """Each device's update for round 1; with `wait`, returns once all of them are acked."""
        self._wait(lambda: self.announcement is not None, "the round announcement")
        announcement = self.announcement
        assert announcement is not None
        for device in devices:
            index = int(device[3:])  # the same update whatever the order of sending
            rng = np.random.default_rng(index)
            delta = [rng.normal(0, 0.05, s).astype(np.float32) for s in SHAPES]
            update = ModelUpdate(self.fleet, 1, announcement.model_version, device, 1,
                                 10 + 3 * index, delta)  # fmt: skip
            payload = encode_message(update, codec="int8", signing_key=device_signing_key(device),
                                     rng=np.random.default_rng(100 + index))  # fmt: skip
            self.sent[device] = payload
            self.client.publish(update_topic(self.fleet, device), payload, qos=1)
        if wait:
            self.wait_acked(devices)

    def resend_unacked(self, devices: tuple[str, ...]) -> None:
        """Send the update of each of `devices` not acked yet again (the same bytes)."""
        with self.changed:
            missing = set(devices) - self.acked
        for device in sorted(missing):
            self.resends += 1
            self.client.publish(update_topic(self.fleet, device), self.sent[device], qos=1)

    def wait_acked(
        self, devices: tuple[str, ...], resend_every_s: float | None = None, timeout_s: float = 60
    ) -> None:
        """Until every one of `devices` is acked (none refused).

        With `resend_every_s`, an update still unacknowledged after that long is sent again
        (the same bytes), as a device does after its ack timeout, for up to `timeout_s`.
        """
        if resend_every_s is not None:
            for _ in range(int(timeout_s / resend_every_s)):
                with self.changed:
                    if self.changed.wait_for(lambda: set(devices) <= self.acked, resend_every_s):
                        break
                self.resend_unacked(devices)
        self._wait(lambda: set(devices) <= self.acked, f"acks of {devices}")
        assert not self.refused


def _common(url: str, fleet: str, setup: Any, state: Path) -> list[str]:
    return ["aggregator", "--broker", url, "--fleet", fleet, "--state", str(state),
            "--registry", str(setup.registry), "--json"]  # fmt: skip


def _rounds(setup: Any) -> list[str]:
    return ["--bundle", str(setup.bundle), "--rounds", "1", "--min-clients", str(len(DEVICES)),
            "--deadline", "120", "--codec", "int8"]  # fmt: skip


def _head_of(state: Path) -> list[np.ndarray]:
    with StateStore(state) as store:
        latest = store.latest_version()
        assert latest is not None and latest.version == 1
        return store.load_weights(1)


def _closed_metrics(process: Any) -> dict[str, Any]:
    line = process.wait_for('"round_closed"')
    return dict(json.loads(line))


@pytest.fixture(scope="module")
def reference_head(mosquitto, process_group_class, tmp_path_factory) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """The head one `--role single` aggregator makes of the twelve updates."""
    root = tmp_path_factory.mktemp("single")
    setup = write_setup(root, DEVICES, _head())
    group = process_group_class(root)
    args = [*_common(mosquitto.url, "single", setup, root / "a.sqlite"), *_rounds(setup)]
    single = group.start("single", args)
    sim = FleetSim(mosquitto.url, "single")
    try:
        sim.send(DEVICES)
        assert single.finish(timeout_s=60) == 0
    finally:
        sim.close()
        group.kill_all()
    return _head_of(root / "a.sqlite")


def _worker_args(url: str, fleet: str, setup: Any, state: Path, worker_id: str) -> list[str]:
    return [*_common(url, fleet, setup, state), "--role", "worker", "--worker-id", worker_id]


def _coordinator_args(url: str, fleet: str, setup: Any, state: Path) -> list[str]:
    return [*_common(url, fleet, setup, state), *_rounds(setup), "--role", "coordinator"]


def _start_workers(processes: Any, url: str, fleet: str, setup: Any, root: Path) -> list[Any]:
    return [
        processes.start(w, _worker_args(url, fleet, setup, root / f"{w}.sqlite", w))
        for w in ("w1", "w2")
    ]


def test_coordinator_and_two_workers_give_the_single_aggregators_head(
    mosquitto, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare
    setup = write_setup(tmp_path, DEVICES, _head())
    workers = _start_workers(processes, mosquitto.url, "two", setup, tmp_path)
    for worker in workers:
        worker.wait_for("0 committed updates")
    coordinator_args = _coordinator_args(mosquitto.url, "two", setup, tmp_path / "c.s")
    coordinator = processes.start("coord", coordinator_args)
    sim = FleetSim(mosquitto.url, "two")
    # Execute
    try:
        sim.send(DEVICES)
        metrics = _closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sim.close()
    # Assert: the same head to 1e-6, every update in it, both workers took a share
    for got, want in zip(_head_of(tmp_path / "c.s"), reference_head, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert metrics["participants"] == len(DEVICES)
    assert metrics["num_examples"] == sum(10 + 3 * i for i in range(len(DEVICES)))
    for worker in workers:
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.finish() == 0
    shares = [_rows(tmp_path / f"{w}.sqlite") for w in ("w1", "w2")]
    assert sum(shares) == len(DEVICES) and min(shares) > 0


def _rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM worker_update").fetchone()[0])


def _two_workers_and_coordinator(processes: Any, url: str, fleet: str, root: Path) -> Any:
    """Workers w1, w2 (subscribed), then the coordinator, and the devices' client."""
    setup = write_setup(root, DEVICES, _head())
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
        held_by_w1 = _rows(tmp_path / "w1.sqlite")
        w1.popen.send_signal(signal.SIGKILL)
        assert w1.finish() == -signal.SIGKILL
        # Execute: the other half arrives while w1 is down; w1 restarts from its file
        sim.send(DEVICES[6:], wait=False)
        w1_args = _worker_args(mosquitto.url, "kill", setup, tmp_path / "w1.sqlite", "w1")
        restarted = processes.start("w1b", w1_args)
        restarted.wait_for(f"{held_by_w1} committed updates in its file")
        sim.wait_acked(DEVICES)
        metrics = _closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sim.close()
    # Assert: w1 had acked some updates; every acked update is in the same head as a single run
    assert held_by_w1 > 0
    assert metrics["participants"] == len(DEVICES)
    for got, want in zip(_head_of(tmp_path / "c.s"), reference_head, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


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
        held_by_w1 = _rows(tmp_path / "w1.sqlite")
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
        metrics = _closed_metrics(resumed)
        assert resumed.finish(timeout_s=60) == 0
    finally:
        sim.close()
    # Assert
    assert held_by_w1 > 0
    assert metrics["participants"] == len(DEVICES)
    for got, want in zip(_head_of(tmp_path / "c.s"), reference_head, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


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
    setup = write_setup(tmp_path, DEVICES, _head())
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
    sim = FleetSim(mosquitto.url, "keyed")
    # Execute
    try:
        sim.send(DEVICES)
        metrics = _closed_metrics(coordinator)
        assert coordinator.finish(timeout_s=60) == 0
    finally:
        sim.close()
    # Assert: the same head to 1e-6, both workers' sums verified and added
    for got, want in zip(_head_of(tmp_path / "c.s"), reference_head, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert metrics["participants"] == len(DEVICES)
    assert not any("refused" in line for line in coordinator.output())
