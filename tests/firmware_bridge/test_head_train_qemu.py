"""Training on the C firmware under QEMU through the host driver (docs/serial-protocol.md
section 7): embeddings pushed or kept from the device's own inference, a round trained on the
Cortex-M4, the delta read back in chunks, and numpy's `local_update` computing the same."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qemu_support import EMBEDDING, board, fixture_embedding, fixture_model, flash_file, make_head

from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from firmware_bridge.errors import DeviceError
from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.mcu_trainer import (
    label_last_inference,
    push_embeddings,
    read_float_delta,
    reset_ring,
    train_round,
)
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.reliability import RetryPolicy
from firmware_bridge.qemu_service import QemuService
from firmware_bridge.train_harness import TrainRequest, build_qemu_bench, run_qemu_bench
from firmware_bridge.transport import PtyEndpoint
from fleet_protocol.messages import FitConfig
from fleet_protocol.portable_rng import PortableRng
from fleet_protocol.tensor_codecs import encode_tensor

pytestmark = pytest.mark.firmware
MODEL = fixture_model(seed=0)
GLOBAL = make_head(seed=2, version=5)
FIT = FitConfig(local_epochs=3, batch_size=16, learning_rate=0.05, momentum=0.9,
                proximal_mu=0.01, l2=1e-4)  # fmt: skip
SCALE = 0.05  # the fixture backbone's output scale (zero point 0)


@pytest.fixture
def driver(firmware_image: FirmwareImage, tmp_path: Path) -> Iterator[HostDriver]:
    flash = flash_file(tmp_path / "flash.bin", firmware_image, MODEL, GLOBAL)
    mcu = board(firmware_image, flash, tmp_path / "qemu").boot()
    with QemuService(mcu, PtyEndpoint()) as service:
        path = service.endpoint.path  # type: ignore[attr-defined]
        with HostDriver.open(path, policy=RetryPolicy(timeout_s=2.0, max_attempts=5)) as host:
            yield host


def round_request(round_id: int, seed: int, head_version: int = 5) -> cmd.TrainRound:
    f = FIT
    settings = (f.local_epochs, f.batch_size, f.learning_rate, f.momentum, f.l2, f.proximal_mu)
    return cmd.TrainRound(round_id, head_version, *settings, seed)


def numpy_update(X: np.ndarray, y: np.ndarray, seed: int) -> list[np.ndarray]:
    head = Head.from_weights(list(GLOBAL.tensors), ("relu", "softmax"))
    return local_update(head, FIT, X, y, seed).delta


def test_pushed_embeddings_train_to_numpys_delta_and_the_pis_int8(driver: HostDriver) -> None:
    # Prepare: 120 labelled int8 embeddings of the fixture's width
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 120)
    spread = rng.integers(-30, 30, (120, EMBEDDING)) + 25 * y[:, None]
    q = np.clip(spread, -128, 127).astype(np.int8)
    X = (np.float32(SCALE) * q.astype(np.float32)).astype(np.float32)
    seed = 4_000_000_123
    # Execute
    assert driver.info().training_version == 1
    capacity = reset_ring(driver, EMBEDDING, SCALE, 0)
    held = push_embeddings(driver, q, y)
    update = train_round(driver, round_request(7, seed))
    flat = read_float_delta(driver, update.result)
    # Assert: the float delta within 1e-4 relative, the int8 codec's bytes as the Pi's
    reference = numpy_update(X, y, seed)
    assert capacity >= 120 and held == update.result.num_examples == 120
    ours = np.split(flat, np.cumsum([d.size for d in reference])[:-1])
    for tensor, theirs in zip(ours, reference, strict=True):
        error = np.linalg.norm(tensor - theirs.reshape(-1)) / np.linalg.norm(theirs)
        assert error <= 1e-4
    codec_rng = PortableRng(seed)
    pi = [encode_tensor(d, "int8", codec_rng) for d in reference]
    same = sum(int(np.sum(np.frombuffer(r.values, np.int8) == np.frombuffer(p.values, np.int8)))
               for r, p in zip(update.records, pi, strict=True))  # fmt: skip
    assert same / sum(d.size for d in reference) >= 0.99


def test_embeddings_beyond_the_ram_ring_spill_to_flash_and_train_to_numpys_delta(
    driver: HostDriver, tmp_path: Path
) -> None:
    # Prepare: 2,500 embeddings, past the 1,024 entries the RAM ring holds
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 2500)
    q = np.clip(rng.integers(-30, 30, (2500, EMBEDDING)) + 25 * y[:, None], -128, 127)
    q = q.astype(np.int8)
    X = (np.float32(SCALE) * q.astype(np.float32)).astype(np.float32)
    # Execute
    capacity = reset_ring(driver, EMBEDDING, SCALE, 0)
    held = push_embeddings(driver, q, y)
    update = train_round(driver, round_request(9, seed=31))
    flat = read_float_delta(driver, update.result)
    # Assert: every entry kept (RAM + 7 pages of (4096 - 12) // 5, capped at 4,096) and trained
    reference = np.concatenate([d.reshape(-1) for d in numpy_update(X, y, 31)])
    assert capacity == 4096 and held == update.result.num_examples == 2500
    assert np.linalg.norm(flat - reference) / np.linalg.norm(reference) <= 1e-4
    # and the 1,476 spilled entries are in the partition file's last 8 pages, two of them used
    spill = (tmp_path / "flash.bin").read_bytes()[-8 * 4096 :]
    per_page = (4096 - 12) // (1 + EMBEDDING)
    for page, first in enumerate((0, per_page)):
        header = spill[page * 4096 : page * 4096 + 12]
        assert header[:4] == b"ISPL" and int.from_bytes(header[4:8], "little") == first
        entry = spill[page * 4096 + 12 : page * 4096 + 12 + 1 + EMBEDDING]
        assert entry[0] == y[first] and entry[1:] == q[first].tobytes()
    assert spill[2 * 4096 : 3 * 4096] == b"\xff" * 4096


def test_the_devices_own_inferences_fill_the_ring(driver: HostDriver) -> None:
    # Prepare: windows the device infers and the host labels afterwards
    rng = np.random.default_rng(2)
    windows = rng.integers(-60, 60, (40, 16, 3), dtype=np.int8)
    y = rng.integers(0, 3, 40)
    X = np.stack([fixture_embedding(MODEL, w) for w in windows])
    # Execute
    for window, label in zip(windows, y, strict=True):
        driver.infer(window)
        held = label_last_inference(driver, int(label))
    update = train_round(driver, round_request(8, seed=99))
    flat = read_float_delta(driver, update.result)
    # Assert
    reference = np.concatenate([d.reshape(-1) for d in numpy_update(X, y, 99)])
    assert held == 40
    assert np.linalg.norm(flat - reference) / np.linalg.norm(reference) <= 1e-4


def test_a_round_on_another_head_or_an_empty_ring_is_refused(driver: HostDriver) -> None:
    # Execute / Assert
    with pytest.raises(DeviceError, match="no labelled embeddings"):
        train_round(driver, round_request(1, seed=1))
    reset_ring(driver, EMBEDDING, SCALE, 0)
    push_embeddings(driver, np.zeros((3, EMBEDDING), np.int8), np.array([0, 1, 2]))
    with pytest.raises(DeviceError, match="round is on head 6"):
        train_round(driver, round_request(1, seed=1, head_version=6))
    with pytest.raises(DeviceError, match="no delta of round 1"):
        driver.request(cmd.DeltaRead(1, cmd.DeltaForm.INT8_RECORDS, 0, 64), cmd.DeltaChunk)


def test_the_bench_image_trains_alike_and_counts_more_instructions_for_more_epochs(
    firmware_image: FirmwareImage, tmp_path: Path
) -> None:
    # Prepare: the bench harness (train_bench.c) on 64 pushed embeddings
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 64)
    q = rng.integers(-40, 40, (64, EMBEDDING)).astype(np.int8)
    X = (np.float32(SCALE) * q.astype(np.float32)).astype(np.float32)
    image = build_qemu_bench(tmp_path / "train_bench.elf")
    payload = GLOBAL.to_payload()
    requests = [TrainRequest(epochs, FIT.batch_size, FIT.learning_rate, FIT.momentum, FIT.l2,
                             FIT.proximal_mu, 11, payload, q, y, SCALE, 0)
                for epochs in (1, 2)]  # fmt: skip
    # Execute
    one, two = (run_qemu_bench(image, r) for r in requests)
    # Assert
    assert one.instructions and two.instructions and two.instructions > one.instructions
    fit = dataclasses.replace(FIT, local_epochs=2)
    head = Head.from_weights(list(GLOBAL.tensors), ("relu", "softmax"))
    reference = local_update(head, fit, X, y, 11).delta
    for ours, theirs in zip(two.delta, reference, strict=True):
        assert np.linalg.norm(ours - theirs.reshape(-1)) / np.linalg.norm(theirs) <= 1e-4
