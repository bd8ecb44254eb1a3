"""`iomt edge --train-on-mcu`: the C firmware under QEMU trains the round, the host relays it.

A real Mosquitto, the device's FedClient with the microcontroller's trainer behind a real pty,
and numpy's `local_update` with the Pi's int8 codec as the reference: the update on the broker
is signed by the device's key and carries the delta the MCU computed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aggregator.broker import LocalBroker
from edge_runtime.fed_client import FedClient, client_subscriptions, load_or_create_key
from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from edge_runtime.mcu_training import McuTrainer, Quantisation
from edge_runtime.model_install import install_head
from edge_runtime.round_core import ClientConfig, round_seed
from edge_runtime.sample_store import SampleStore
from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.protocol.reliability import RetryPolicy
from firmware_bridge.qemu_service import QemuService
from firmware_bridge.transport import PtyEndpoint
from fleet_protocol.messages import FitConfig, ModelUpdate, RoundAnnouncement
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.portable_rng import PortableRng
from fleet_protocol.signing import public_key_from_bytes
from fleet_protocol.tensor_codecs import decode_tensor, encode_tensor
from fleet_protocol.topics import round_topic
from fleet_protocol.wire import decode_message, encode_message, message_sha256

sys.path.insert(0, str(Path(__file__).parents[1] / "firmware_bridge"))
from qemu_support import (
    EMBEDDING,
    board,
    build_test_image,
    fixture_model,
    flash_file,
    make_head,
    require_toolchain,
)

pytestmark = [pytest.mark.integration, pytest.mark.firmware]
FLEET, DEVICE, SCALE = "mcufleet", "watch-mcu", 0.05  # the fixture backbone's output scale
FIT = FitConfig(local_epochs=3, batch_size=8, learning_rate=0.05, momentum=0.9, proximal_mu=0.01)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> FirmwareImage:
    require_toolchain()
    return build_test_image(tmp_path_factory.mktemp("firmware"))


@pytest.fixture
def driver(image: FirmwareImage, tmp_path: Path) -> Iterator[HostDriver]:
    flash = flash_file(tmp_path / "flash.bin", image, fixture_model(0), make_head(0))
    mcu = board(image, flash, tmp_path / "qemu").boot()
    with QemuService(mcu, PtyEndpoint()) as service:
        path = service.endpoint.path  # type: ignore[attr-defined]
        with HostDriver.open(path, policy=RetryPolicy(timeout_s=2.0, max_attempts=5)) as host:
            yield host


def labelled_store(path: Path, count: int = 40) -> tuple[SampleStore, np.ndarray, np.ndarray]:
    """A store of the backbone's dequantised int8 embeddings, labelled as a device labels."""
    rng = np.random.default_rng(7)
    y = np.arange(count) % 3
    q = np.clip(rng.integers(-30, 30, (count, EMBEDDING)) + 20 * y[:, None], -128, 127)
    X = (np.float32(SCALE) * q.astype(np.float32)).astype(np.float32)
    store = SampleStore(path)
    for i in range(count):
        store.add_window(float(i), float(i) + 1, embedding=X[i])
        store.label_range(i + 0.4, i + 0.6, int(y[i]))
    return store, X, y


def test_the_mcu_trains_the_round_and_the_host_signs_its_int8_delta(
    broker: LocalBroker, driver: HostDriver, tmp_path: Path
) -> None:
    # Prepare: the global head installed as version 2, a round on it announced with int8
    url = broker.url
    head = make_head(seed=5, version=2)
    install_head(tmp_path / "heads", 2, list(head.tensors))
    store, X, y = labelled_store(tmp_path / "store.sqlite")
    key = load_or_create_key(tmp_path)
    trainer = McuTrainer(driver, Quantisation(SCALE, 0))
    device_link = MqttLink(
        LinkConfig(url, f"{FLEET}-{DEVICE}", client_subscriptions(FLEET, DEVICE))
    )
    watcher = MqttLink(LinkConfig(url, "watcher", (f"iomt/v1/{FLEET}/update/+",),
                                  persistent_session=False)).start()  # fmt: skip
    client = FedClient(ClientConfig(FLEET, DEVICE, min_samples=8, seed=3), device_link.start(),
                       store, tmp_path / "heads", key, mcu=trainer)  # fmt: skip
    announcement = RoundAnnouncement(FLEET, 4, 2, message_sha256(list(head.tensors)),
                                     time.time() + 60, 1, FIT, "int8")  # fmt: skip
    watcher.publish(round_topic(FLEET), encode_message(announcement), retain=True)
    # Execute: pump the client until its update is on the broker
    payload, deadline = None, time.monotonic() + 60
    while payload is None:
        assert time.monotonic() < deadline, "no update from the MCU's host"
        event = device_link.next_event(0.05)
        if event is not None:
            client.handle(event)
        client.tick()
        seen = watcher.next_event(0.0)
        if seen is not None and seen.kind == "message" and "/update/" in seen.topic:
            payload = seen.payload
    device_link.stop()
    watcher.stop()
    store.close()
    # Assert: signed by the device's key, the delta the Pi's code computes and codes
    public = public_key_from_bytes(key.public_key().public_bytes_raw())
    update = decode_message(payload, verify_key=lambda signer: public if signer == DEVICE else None)
    assert isinstance(update, ModelUpdate) and update.num_examples == 40
    assert update.metrics["trained_on_mcu"] == 1.0
    seed = round_seed(3, DEVICE, 4)
    start = Head.from_weights(list(head.tensors), ("relu", "softmax"))
    reference = local_update(start, FIT, X, y, seed).delta
    rng = PortableRng(seed)
    pi = [decode_tensor(encode_tensor(d, "int8", rng)) for d in reference]
    same = 0  # elements on the same int8 step (scales differ only in the float rounding)
    for ours, theirs in zip(update.delta, pi, strict=True):
        half_step = 0.5 * float(np.max(np.abs(theirs))) / 127
        same += int(np.sum(np.abs(ours - theirs) < half_step))
    assert same / sum(d.size for d in reference) >= 0.99
