"""The edge federated client against a real Mosquitto, the test playing the aggregator."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aggregator.broker import LocalBroker
from edge_runtime.fed_client import (
    FedClient,
    client_subscriptions,
    last_will,
    load_or_create_key,
)
from edge_runtime.model_install import current_head
from edge_runtime.residual_store import model_key
from edge_runtime.round_core import ClientConfig
from edge_runtime.sample_store import SampleStore
from edge_runtime.secure_agg_device import SecureAggDevice
from fleet_protocol.messages import (
    DeviceStatus,
    FitConfig,
    GlobalModel,
    ModelPatch,
    ModelUpdate,
    RoundAnnouncement,
    UpdateAck,
)
from fleet_protocol.model_patch import make_patch
from fleet_protocol.mqtt_link import LinkConfig, LinkEvent, MqttLink
from fleet_protocol.secure_aggregation.client import encode_weighted_update
from fleet_protocol.secure_aggregation.messages import SecAggConfig
from fleet_protocol.topics import ack_topic, model_topic, patch_topic, round_topic, status_topic
from fleet_protocol.wire import decode_message, encode_message, message_sha256

pytestmark = pytest.mark.integration

FLEET = "client"
HEAD = [
    np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32),
    np.zeros(5, np.float32),
    np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32),
    np.zeros(3, np.float32),
]


class Aggregator:
    """The test's aggregator: publishes model and round, receives updates and statuses."""

    def __init__(self, url: str, fleet: str) -> None:
        self.fleet = fleet
        topics = (f"iomt/v1/{fleet}/update/+", f"iomt/v1/{fleet}/status/+")
        self.link = MqttLink(LinkConfig(url, f"test-agg-{fleet}", topics,
                                        persistent_session=False)).start()  # fmt: skip

    def publish_round(self, round_id: int, version: int, weights: list[np.ndarray],
                      sha: str | None = None, config: FitConfig | None = None,
                      encoding: str | None = None) -> None:  # fmt: skip
        model = GlobalModel(self.fleet, version, weights, None, round_id)
        self.link.publish(model_topic(self.fleet, version), encode_message(model), retain=True)
        sha = sha or message_sha256(weights)
        deadline = time.time() + 60
        codec = "float32" if encoding is None else "int8"
        announcement = RoundAnnouncement(
            self.fleet,
            round_id,
            version,
            sha,
            deadline,
            1,
            config or FitConfig(),
            codec,
            encoding=encoding,
        )
        self.link.publish(round_topic(self.fleet), encode_message(announcement), retain=True)

    def next_update(self, timeout_s: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            event = self.link.next_event(0.1)
            if event is not None and event.kind == "message" and "/update/" in event.topic:
                return event.payload
        raise AssertionError("no update arrived")

    def ack(self, device_id: str, round_id: int, sequence: int) -> None:
        ack = UpdateAck(self.fleet, round_id, device_id, sequence, True)
        self.link.publish(ack_topic(self.fleet, device_id), encode_message(ack))


def _store(path: Path, count: int = 24) -> SampleStore:
    store = SampleStore(path)
    rng = np.random.default_rng(3)
    for i in range(count):
        store.add_window(float(i), float(i) + 1, embedding=rng.normal(size=4).astype(np.float32))
        store.label_range(i + 0.4, i + 0.6, i % 3)
    return store


class RunningClient:
    """A FedClient with its own link, pumped by the test until a condition holds."""

    def __init__(
        self, url: str, fleet: str, device: str, directory: Path, poison: float | None = None
    ) -> None:
        path = directory / "store.sqlite"
        self.store = SampleStore(path) if path.exists() else _store(path)
        config = LinkConfig(url, f"{fleet}-{device}", client_subscriptions(fleet, device),
                            last_will(fleet, device))  # fmt: skip
        self.link = MqttLink(config).start()
        self.logs: list[dict[str, object]] = []
        config = ClientConfig(fleet, device, min_samples=8, poison_scale=poison)
        self.client = FedClient(config, self.link, self.store,
                                directory / "heads", load_or_create_key(directory),
                                log=self.logs.append)  # fmt: skip

    def pump_until(
        self, condition: Callable[[], bool], timeout_s: float = 30.0, tick: bool = True
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            event: LinkEvent | None = self.link.next_event(0.05)
            if event is not None:
                self.client.handle(event)
            if tick:
                self.client.tick()

    def close(self) -> None:
        self.link.stop()
        self.store.close()


def test_update_is_sent_once_and_resent_byte_identical_after_a_restart(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare
    aggregator = Aggregator(broker.url, "once")
    aggregator.publish_round(1, 0, HEAD)
    first = RunningClient(broker.url, "once", "dev", tmp_path)

    # Execute: the device trains and sends, then "crashes" before any ack
    first.pump_until(lambda: first.store.was_round_sent(1))
    sent = aggregator.next_update()
    first.close()
    second = RunningClient(broker.url, "once", "dev", tmp_path)
    second.pump_until(lambda: second.client.announcement is not None)
    resent = aggregator.next_update()
    aggregator.ack("dev", 1, 1)
    second.pump_until(lambda: second.store.round_outcome(1) is not None)

    # Assert
    assert resent == sent
    update = decode_message(sent, expected_type=ModelUpdate)
    assert isinstance(update, ModelUpdate)
    assert (update.round_id, update.base_version, update.sequence) == (1, 0, 1)
    assert update.num_examples == 24
    assert second.store.next_sequence() == 2
    assert second.client.rounds_acked == 1
    second.close()


def test_a_top_k_round_sends_the_largest_tenth_and_commits_the_rest_as_residual(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare
    aggregator = Aggregator(broker.url, "sparse")
    aggregator.publish_round(1, 0, HEAD, encoding="topk:0.1+zstd")
    device = RunningClient(broker.url, "sparse", "dev", tmp_path)

    # Execute
    device.pump_until(lambda: device.store.was_round_sent(1))
    payload = aggregator.next_update()
    announcement = device.client.announcement
    assert announcement is not None
    whole = device.client.releasable_update(announcement)  # the same data and seed
    residual = device.store.residual(model_key("sparse", [w.shape for w in HEAD]))
    device.close()

    # Assert
    update = decode_message(payload, expected_type=ModelUpdate)
    assert isinstance(update, ModelUpdate) and whole is not None and residual is not None
    assert [int(np.count_nonzero(d)) for d in update.delta] <= [2, 1, 2, 1]
    for sent, left, full in zip(update.delta, residual, whole.delta, strict=True):
        step = float(np.max(np.abs(sent))) / 127 + 1e-7  # one int8 step of stochastic rounding
        np.testing.assert_allclose(sent + left, full, atol=step)
    aggregator.link.stop()


def test_a_new_head_arrives_as_a_patch_and_a_bad_patch_falls_back_to_the_full_head(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare: version 0 installed (fetched in full: nothing to patch from)
    aggregator = Aggregator(broker.url, "patch")
    aggregator.publish_round(1, 0, HEAD)
    device = RunningClient(broker.url, "patch", "dev", tmp_path)
    device.pump_until(lambda: device.client.installed_version == 0, tick=False)
    new = [w.copy() for w in HEAD]
    new[0][1, 2] += 0.25
    newer = [w + np.float32(0.5) for w in new]

    # Execute: version 1 as a patch of 0; version 2 as a patch against the wrong base
    good = ModelPatch("patch", 1, 0, message_sha256(HEAD), message_sha256(new),
                      make_patch(HEAD, new) or b"")  # fmt: skip
    aggregator.link.publish(patch_topic("patch", 1), encode_message(good), retain=True)
    aggregator.publish_round(2, 1, new)
    device.pump_until(lambda: device.client.installed_version == 1, tick=False)
    bad = ModelPatch("patch", 2, 1, message_sha256(new), message_sha256(newer),
                     make_patch(HEAD, newer) or b"")  # fmt: skip
    aggregator.link.publish(patch_topic("patch", 2), encode_message(bad), retain=True)
    aggregator.publish_round(3, 2, newer)
    device.pump_until(lambda: device.client.installed_version == 2, tick=False)
    device.close()
    aggregator.link.stop()

    # Assert
    installs = [(r["version"], r["from"]) for r in device.logs if r["event"] == "installed"]
    assert installs == [(0, "full"), (1, "patch"), (2, "full")]
    fetched = [r["version"] for r in device.logs if r["event"] == "fetch_full_model"]
    assert fetched == [0, 2] and device.client.refused.get("patch") == 1
    installed = current_head(tmp_path / "heads")
    assert installed is not None
    assert message_sha256(installed.head.weights) == message_sha256(newer)


def test_model_with_a_wrong_hash_is_not_installed(broker: LocalBroker, tmp_path: Path) -> None:
    # Prepare
    aggregator = Aggregator(broker.url, "hash")
    aggregator.publish_round(1, 4, HEAD, sha="0" * 64)
    client = RunningClient(broker.url, "hash", "dev", tmp_path)

    # Execute
    client.pump_until(lambda: any(r["event"] == "model_rejected" for r in client.logs))

    # Assert
    assert current_head(tmp_path / "heads") is None
    assert not client.store.was_round_sent(1)
    client.close()


def test_status_is_retained_online_and_last_will_marks_offline(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare
    aggregator = Aggregator(broker.url, "will")
    client = RunningClient(broker.url, "will", "dev", tmp_path)
    client.client.publish_status(True)

    def next_status() -> DeviceStatus:
        while True:
            event = aggregator.link.next_event(30)
            assert event is not None
            if event.kind == "message" and event.topic == status_topic("will", "dev"):
                status = decode_message(event.payload, expected_type=DeviceStatus)
                assert isinstance(status, DeviceStatus)
                return status

    # Execute: online, then the connection dies without DISCONNECT (socket closed under paho)
    online = next_status()
    client.link._client.socket().shutdown(socket.SHUT_RDWR)  # a dead network, no DISCONNECT
    offline = next_status()

    # Assert
    assert online.online and not offline.online
    client.close()


def test_a_poisoned_device_sends_its_delta_sign_flipped_and_scaled(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare: the same data and seed on an honest and a poisoned device
    deltas = {}
    for name, poison in (("honest", None), ("poisoned", -10.0)):
        aggregator = Aggregator(broker.url, name)
        aggregator.publish_round(1, 0, HEAD)
        (tmp_path / name).mkdir()
        client = RunningClient(broker.url, name, "dev", tmp_path / name, poison=poison)

        # Execute
        client.pump_until(lambda c=client: c.store.was_round_sent(1))  # type: ignore[misc]
        update = decode_message(aggregator.next_update(), expected_type=ModelUpdate)
        assert isinstance(update, ModelUpdate)
        deltas[name] = update.delta
        client.close()

    # Assert
    for poisoned, honest in zip(deltas["poisoned"], deltas["honest"], strict=True):
        np.testing.assert_allclose(poisoned, -10.0 * honest, rtol=1e-5, atol=1e-6)
    assert any(np.abs(d).max() > 0 for d in deltas["honest"])


def test_a_model_of_another_shape_or_no_valid_head_is_refused(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare: version 0 is installed
    aggregator = Aggregator(broker.url, "shapes")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    broken = RunningClient(broker.url, "shapes-b", "dev", tmp_path / "b")
    aggregator.publish_round(1, 0, HEAD)
    client = RunningClient(broker.url, "shapes", "dev", tmp_path / "a")
    client.pump_until(lambda: client.client.installed_version == 0)

    # Execute: version 1 with other shapes; and, to a fresh device, a "head" of three tensors
    other = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]
    aggregator.publish_round(2, 1, other)  # the device fetches model/1 for the round
    client.pump_until(lambda: client.client.refused.get("shape", 0) == 1)
    other_fleet = Aggregator(broker.url, "shapes-b")
    other_fleet.publish_round(1, 0, HEAD[:3])
    broken.pump_until(lambda: broken.client.refused.get("install", 0) == 1)
    other_fleet.link.stop()

    # Assert
    assert client.client.installed_version == 0
    assert broken.client.installed_version is None
    client.close()
    broken.close()


def test_a_secure_aggregation_input_is_the_plain_update_of_the_same_data_and_seed(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # Prepare: the aggregator announces SGD with momentum (secure rounds once trained without)
    fit = FitConfig(local_epochs=3, batch_size=8, learning_rate=0.05, momentum=0.9, l2=0.01)
    aggregator = Aggregator(broker.url, "twins")
    aggregator.publish_round(1, 0, HEAD, config=fit)
    (tmp_path / "plain").mkdir()
    (tmp_path / "secure").mkdir()
    plain = RunningClient(broker.url, "twins", "dev", tmp_path / "plain")
    plain.pump_until(lambda: plain.store.was_round_sent(1))
    update = decode_message(aggregator.next_update(), expected_type=ModelUpdate)
    assert isinstance(update, ModelUpdate)
    plain.close()
    secure = RunningClient(broker.url, "twins", "dev", tmp_path / "secure")
    secure.pump_until(lambda: secure.client.installed_version == 0, tick=False)
    config = SecAggConfig(threshold=2, vector_length=sum(w.size for w in HEAD) + 1,
                          context=b"twins/1")  # fmt: skip

    # Execute
    masked_input = SecureAggDevice(secure.client, None)._make_input(1, config)

    # Assert
    expected = encode_weighted_update(update.delta, update.num_examples, config)
    np.testing.assert_array_equal(masked_input, expected)
    assert secure.store.was_round_sent(1)
    secure.close()
