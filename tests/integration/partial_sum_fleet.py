"""A twelve-device fleet speaking the real wire format, for the workers', sites' and NATS
queue-group tests: the devices' client, the aggregator command lines, the head a state file
holds, and the single aggregator's head that every split of the work must reproduce.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from aggregator.state_store import StateStore
from bench.fleet_devices import device_signing_key
from bench.fleet_round import write_setup
from edge_runtime.head import Head
from fleet_protocol.aggregator_identity import aggregator_verifier, decode_signed_by_any
from fleet_protocol.errors import SignatureError
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.topics import subscription_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

DEVICES = tuple(f"dev{i:02d}" for i in range(12))
SHAPES = [(8, 4), (4,), (4, 3), (3,)]


def make_head() -> Head:
    rng = np.random.default_rng(0)
    return Head.from_weights([rng.normal(0, 0.3, s) for s in SHAPES], ("relu", "softmax"))


class FleetSim:
    """One MQTT client speaking for every device: waits for the round, sends, counts acks
    (only those one of `ack_keys` signed, given any, as `iomt edge --site-key` does)."""

    def __init__(
        self, url: str, fleet: str, ack_keys: tuple[bytes, ...] = (), name: str = "sim"
    ) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.fleet = fleet
        self.ack_verify = tuple(aggregator_verifier(key) for key in ack_keys)
        self.forged_acks = 0
        self.announcement: RoundAnnouncement | None = None
        self.acked: set[str] = set()
        self.refused: list[UpdateAck] = []
        self.sent: dict[str, bytes] = {}  # device -> its update, to resend as `iomt edge` does
        self.resends = 0
        self.changed = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{fleet}")
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, int(port))
        self.client.loop_start()

    def _on_connect(self, client: Any, *args: Any) -> None:
        """Subscribe on every (re)connect, as `iomt edge`'s link does: NATS closes a connection
        whose QoS 1 publish it cannot store during a failover, and this session is clean."""
        client.subscribe([(subscription_topic(self.fleet, k), 1) for k in ("round", "ack")])

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, codes: Any, props: Any) -> None:
        """Ask again when the SUBACK refuses (NATS, its JetStream consumer not made in time
        during a failover), as the link does."""
        if any(code.is_failure for code in codes):
            self._on_connect(client)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        decoded = decode_message(bytes(message.payload)) if message.payload else None
        if isinstance(decoded, UpdateAck) and self.ack_verify:
            try:
                decode_signed_by_any(bytes(message.payload), UpdateAck, self.ack_verify)
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
        assert not self.refused, [(ack.device_id, ack.reason) for ack in self.refused]


def aggregator_args(url: str, fleet: str, setup: Any, state: Path) -> list[str]:
    return ["aggregator", "--broker", url, "--fleet", fleet, "--state", str(state),
            "--registry", str(setup.registry), "--json"]  # fmt: skip


def round_args(setup: Any, deadline_s: int = 120) -> list[str]:
    return ["--bundle", str(setup.bundle), "--rounds", "1", "--min-clients", str(len(DEVICES)),
            "--deadline", str(deadline_s), "--codec", "int8"]  # fmt: skip


def head_of(state: Path) -> list[np.ndarray]:
    with StateStore(state) as store:
        latest = store.latest_version()
        assert latest is not None and latest.version == 1
        return store.load_weights(1)


def closed_metrics(process: Any) -> dict[str, Any]:
    line = process.wait_for('"round_closed"')
    return dict(json.loads(line))


def worker_rows(path: Path) -> int:
    """How many updates a worker's state file holds."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM worker_update").fetchone()[0])


def assert_same_head(state: Path, reference: list[np.ndarray], atol: float = 1e-6) -> None:
    """The head version 1 of `state` is `reference`, tensor by tensor, to `atol`."""
    for got, want in zip(head_of(state), reference, strict=True):
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def single_aggregator_head(
    process_group_class: Any, root: Path, broker_url: str, devices_url: str, fleet: str
) -> list[np.ndarray]:
    """The head one `--role single` aggregator makes of the twelve updates."""
    setup = write_setup(root, DEVICES, make_head())
    group = process_group_class(root)
    args = [*aggregator_args(broker_url, fleet, setup, root / "a.s"), *round_args(setup)]
    single = group.start("single", args)
    sim = FleetSim(devices_url, fleet)
    try:
        sim.send(DEVICES)
        assert single.finish(timeout_s=60) == 0
    finally:
        sim.close()
        group.kill_all()
    return head_of(root / "a.s")
