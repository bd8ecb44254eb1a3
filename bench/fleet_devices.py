"""Lightweight emulated devices for the fleet-scale bench: many paho clients in one process.

Each device is a real MQTT client with its own connection and Ed25519 key. It skips the int8
backbone (its embeddings are synthetic, of the head's input size) but does everything after it
the way `iomt edge` does: on a round announcement it fine-tunes the numpy head on its embeddings,
encodes the delta as a signed int8 `ModelUpdate` with the real wire codec, publishes it with QoS 1
and waits for the aggregator's ack.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import numpy as np

SYNTHETIC_EXAMPLES = 32
CONNECT_TIMEOUT_S = 120.0


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


@dataclass
class _Tally:
    """What the devices of one process did; guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: int = 0
    sent: int = 0
    bytes_sent: int = 0
    acked: int = 0
    refused: int = 0
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
    devices = [_Device(spec, device_id, head, tally) for device_id in spec.device_ids]
    for device in devices:
        device.connect()
    _wait_for(lambda: tally.subscribed >= 2 * len(devices), CONNECT_TIMEOUT_S)
    events.put(("ready", spec.worker, len(devices)))
    tally.done.wait(spec.timeout_s)
    events.put(("done", spec.worker, _summary(tally)))
    for device in devices:
        device.close()


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
        }


class _Device:
    """One emulated device: an MQTT connection, a key, synthetic embeddings and the head."""

    def __init__(self, spec: WorkerSpec, device_id: str, head: Any, tally: _Tally) -> None:
        import paho.mqtt.client as mqtt

        from fleet_protocol.topics import ack_topic, round_topic, update_topic

        self.spec, self.device_id, self.head, self.tally = spec, device_id, head, tally
        self.key = device_signing_key(device_id)
        self.topics = (round_topic(spec.fleet), ack_topic(spec.fleet, device_id))
        self.update_topic = update_topic(spec.fleet, device_id)
        self.answered_round: int | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{spec.fleet}-{device_id}"
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def connect(self) -> None:
        self.client.connect_async(self.spec.host, self.spec.port, keepalive=120)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, codes: Any, props: Any) -> None:
        with self.tally.lock:
            self.tally.subscribed += len(codes)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == self.topics[0]:
            self._on_round(bytes(message.payload))
        else:
            self._on_ack(bytes(message.payload))

    def _on_round(self, payload: bytes) -> None:
        import time

        from fleet_protocol.messages import RoundAnnouncement
        from fleet_protocol.wire import decode_message

        announcement = decode_message(payload, expected_type=RoundAnnouncement)
        assert isinstance(announcement, RoundAnnouncement)
        if announcement.deadline_unix <= time.time() or self.answered_round is not None:
            return  # a finished round, or this device already took part in one
        self.answered_round = announcement.round_id
        update = self._encoded_update(announcement)
        self.client.publish(self.update_topic, update, qos=1)
        with self.tally.lock:
            self.tally.sent += 1
            self.tally.bytes_sent += len(update)

    def _encoded_update(self, announcement: Any) -> bytes:
        """Fine-tune the head on synthetic embeddings; a signed int8 delta on the real wire."""
        from edge_runtime.local_update import local_update
        from fleet_protocol.messages import ModelUpdate
        from fleet_protocol.wire import encode_message

        rng = np.random.default_rng(_seed_of(self.device_id))
        embeddings = rng.normal(size=(SYNTHETIC_EXAMPLES, self.head.input_size)).astype(np.float32)
        labels = rng.integers(0, self.head.num_classes, size=SYNTHETIC_EXAMPLES)
        trained = local_update(self.head, announcement.config, embeddings, labels, seed=0)
        update = ModelUpdate(
            fleet=self.spec.fleet,
            round_id=announcement.round_id,
            base_version=announcement.model_version,
            device_id=self.device_id,
            sequence=1,
            num_examples=SYNTHETIC_EXAMPLES,
            delta=trained.delta,
        )
        return encode_message(update, codec=announcement.codec, signing_key=self.key, rng=rng)

    def _on_ack(self, payload: bytes) -> None:
        from fleet_protocol.messages import UpdateAck
        from fleet_protocol.wire import decode_message

        ack = decode_message(payload, expected_type=UpdateAck)
        assert isinstance(ack, UpdateAck)
        with self.tally.lock:
            self.tally.acked += int(ack.accepted)
            self.tally.refused += int(not ack.accepted)
            if self.tally.acked + self.tally.refused >= len(self.spec.device_ids):
                self.tally.done.set()
