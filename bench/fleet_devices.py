"""Lightweight emulated devices for the fleet-scale bench: many paho clients in one process.

Each device has its own Ed25519 key, update topic and ack topic; one MQTT connection carries one
device, or several (`devices_per_connection`, for 10,000 devices on a 2-core box). It skips the
int8 backbone (its embeddings are synthetic, of the head's input size) but does everything after
it the way `iomt edge` does: it fine-tunes the numpy head on its embeddings, encodes the delta as
a signed int8 `ModelUpdate` with the real wire codec, publishes it with QoS 1 on the round
announcement and waits for the aggregator's ack. With `prepare`, the fine-tuning and signing of
round 1 happen before the round opens, so the round's latency is the aggregator's, not the
emulator's.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import numpy as np

SYNTHETIC_EXAMPLES = 32
CONNECT_TIMEOUT_S = 300.0
RESEND_S = 15.0  # a device's ack timeout (`iomt edge`): then it sends the same update again
RESEND_CHECK_S = 1.0


@dataclass(frozen=True)
class WorkerSpec:
    """What one device process emulates: which devices, on which broker, with which head."""

    worker: int
    host: str
    port: int
    fleet: str
    device_ids: tuple[str, ...]
    head_path: str
    timeout_s: float = 600.0
    devices_per_connection: int = 1  # device identities sharing one MQTT connection
    prepare: bool = False  # fine-tune before the round (only the aggregator's side is timed)


@dataclass
class _Tally:
    """What the devices of one process did; guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: int = 0
    sent: int = 0
    bytes_sent: int = 0
    acked: int = 0
    refused: int = 0
    resent: int = 0
    refused_subscriptions: int = 0  # SUBACK refusals (each topic asked for again)
    done: threading.Event = field(default_factory=threading.Event)


def device_signing_key(device_id: str) -> Any:
    """A reproducible Ed25519 key per device id, so the harness can register it up front."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hashlib.sha256(f"fleet-bench/{device_id}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _seed_of(device_id: str) -> int:
    return int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:4], "little")


def run_worker(spec: WorkerSpec, events: Queue) -> None:
    """Process entry point: connect every device, report ready, take part in one round."""
    from edge_runtime.head import Head

    head = Head.from_npz(spec.head_path)
    tally = _Tally()
    step = max(1, spec.devices_per_connection)
    groups = [spec.device_ids[i : i + step] for i in range(0, len(spec.device_ids), step)]
    connections = [_Connection(spec, group, head, tally) for group in groups]
    for connection in connections:
        if spec.prepare:
            connection.prepare("int8")
        connection.connect()
    wanted = len(connections) + len(spec.device_ids)  # a round topic each, an ack topic each
    _wait_for(lambda: tally.subscribed >= wanted, CONNECT_TIMEOUT_S)
    events.put(("ready", spec.worker, len(spec.device_ids)))
    waited = 0.0
    while not tally.done.wait(RESEND_CHECK_S) and waited < spec.timeout_s:
        waited += RESEND_CHECK_S
        for connection in connections:  # as `iomt edge` does: no ack in time, send it again
            connection.resend_unacked(time.monotonic())
    events.put(("done", spec.worker, _summary(tally)))
    for connection in connections:
        connection.close()


def _wait_for(condition: Any, timeout_s: float) -> None:
    """Poll a cheap counter condition (paho callbacks update it from their own threads)."""
    finished = threading.Event()
    deadline = timeout_s
    while not condition() and deadline > 0:
        finished.wait(0.05)
        deadline -= 0.05
    if not condition():
        raise TimeoutError("devices did not all connect and subscribe in time")


def _summary(tally: _Tally) -> dict[str, int]:
    with tally.lock:
        return {
            "sent": tally.sent,
            "bytes_sent": tally.bytes_sent,
            "acked": tally.acked,
            "refused": tally.refused,
            "resent": tally.resent,
            "refused_subscriptions": tally.refused_subscriptions,
        }


class _Connection:
    """One MQTT connection speaking for `device_ids`: their keys, embeddings and the head.

    With one device per connection this is exactly one emulated device. With more, each device
    keeps its own identity on the wire (its update topic, its signature, its ack topic) but
    shares the TCP connection and paho's network thread: 10,000 paho clients would be 10,000
    threads on this 2-core box, which the emulator, not the broker, cannot afford.
    """

    def __init__(self, spec: WorkerSpec, device_ids: tuple[str, ...], head: Any, tally: _Tally):
        import paho.mqtt.client as mqtt

        from fleet_protocol.topics import ack_topic, round_topic

        self.spec, self.device_ids, self.head, self.tally = spec, device_ids, head, tally
        self.round_topic = round_topic(spec.fleet)
        self.ack_topics = {ack_topic(spec.fleet, d): d for d in device_ids}
        self.prepared: dict[str, bytes] = {}
        self.sent: dict[str, tuple[bytes, float]] = {}  # device -> its update, when sent
        self.acked: set[str] = set()
        self.answered_round: int | None = None
        self.subscribing: dict[int, list[str]] = {}  # SUBSCRIBE message id -> its topics
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{spec.fleet}-{device_ids[0]}"
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def prepare(self, codec: str) -> None:
        """Fine-tune and sign every device's update of round 1 on version 0 before the round."""
        from fleet_protocol.messages import FitConfig, RoundAnnouncement

        fit = FitConfig(local_epochs=1, learning_rate=0.1, momentum=0.9)  # as the bench announces
        first = RoundAnnouncement(self.spec.fleet, 1, 0, "0" * 64, 0.0, 1, fit, codec)
        self.prepared = {
            d: _encoded_update(self.spec, d, self.head, first) for d in self.device_ids
        }

    def connect(self) -> None:
        self.client.connect_async(self.spec.host, self.spec.port, keepalive=120)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._subscribe([self.round_topic, *self.ack_topics])

    def _subscribe(self, topics: list[str]) -> None:
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        if mid is not None:  # paho's thread: its SUBACK cannot come before this
            self.subscribing[mid] = topics

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, codes: Any, props: Any) -> None:
        """Count the granted topics; ask again for the refused ones (NATS refuses a QoS 1
        subscription whose JetStream consumer it could not create in time), as `iomt edge`'s
        link does."""
        topics = self.subscribing.pop(mid, [])
        refused = [t for t, code in zip(topics, codes, strict=False) if code.is_failure]
        with self.tally.lock:
            self.tally.subscribed += len(codes) - len(refused)
            self.tally.refused_subscriptions += len(refused)
        if refused:
            self._subscribe(refused)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == self.round_topic:
            self._on_round(bytes(message.payload))
        else:
            self._on_ack(bytes(message.payload))

    def _on_round(self, payload: bytes) -> None:
        from fleet_protocol.messages import RoundAnnouncement
        from fleet_protocol.topics import update_topic
        from fleet_protocol.wire import decode_message

        if not payload:
            return
        announcement = decode_message(payload, expected_type=RoundAnnouncement)
        assert isinstance(announcement, RoundAnnouncement)
        if announcement.deadline_unix <= time.time() or self.answered_round is not None:
            return  # a finished round, or these devices already took part in one
        self.answered_round = announcement.round_id
        usable = (announcement.round_id, announcement.model_version) == (1, 0)
        for device_id in self.device_ids:
            update = self.prepared.get(device_id) if usable else None
            if update is None:
                update = _encoded_update(self.spec, device_id, self.head, announcement)
            self.sent[device_id] = (update, time.monotonic())
            self.client.publish(update_topic(self.spec.fleet, device_id), update, qos=1)
            with self.tally.lock:
                self.tally.sent += 1
                self.tally.bytes_sent += len(update)

    def resend_unacked(self, now: float) -> None:
        """Send the same bytes again for each device without an ack `RESEND_S` after its send."""
        from fleet_protocol.topics import update_topic

        with self.tally.lock:
            due = [d for d, (_, at) in self.sent.items()
                   if d not in self.acked and now - at >= RESEND_S]  # fmt: skip
            self.tally.resent += len(due)
        for device_id in due:
            update = self.sent[device_id][0]
            self.sent[device_id] = (update, now)
            self.client.publish(update_topic(self.spec.fleet, device_id), update, 1)

    def _on_ack(self, payload: bytes) -> None:
        from fleet_protocol.messages import UpdateAck
        from fleet_protocol.wire import decode_message

        ack = decode_message(payload, expected_type=UpdateAck)
        assert isinstance(ack, UpdateAck)
        with self.tally.lock:
            if ack.device_id in self.acked:
                return  # the ack of a resend
            self.acked.add(ack.device_id)
            self.tally.acked += int(ack.accepted)
            self.tally.refused += int(not ack.accepted)
            if self.tally.acked + self.tally.refused >= len(self.spec.device_ids):
                self.tally.done.set()


def _encoded_update(spec: WorkerSpec, device_id: str, head: Any, announcement: Any) -> bytes:
    """Fine-tune the head on synthetic embeddings; a signed int8 delta on the real wire."""
    from edge_runtime.local_update import local_update
    from fleet_protocol.messages import ModelUpdate
    from fleet_protocol.wire import encode_message

    rng = np.random.default_rng(_seed_of(device_id))
    embeddings = rng.normal(size=(SYNTHETIC_EXAMPLES, head.input_size)).astype(np.float32)
    labels = rng.integers(0, head.num_classes, size=SYNTHETIC_EXAMPLES)
    trained = local_update(head, announcement.config, embeddings, labels, seed=0)
    update = ModelUpdate(
        fleet=spec.fleet,
        round_id=announcement.round_id,
        base_version=announcement.model_version,
        device_id=device_id,
        sequence=1,
        num_examples=SYNTHETIC_EXAMPLES,
        delta=trained.delta,
    )
    key = device_signing_key(device_id)
    return encode_message(update, codec=announcement.codec, signing_key=key, rng=rng)
