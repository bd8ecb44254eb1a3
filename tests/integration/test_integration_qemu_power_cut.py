"""Power cuts during a model upload to the C firmware under QEMU: QEMU is killed (SIGKILL) at
random points of 20 uploads and booted again on the same flash file. The firmware must come
back every time with a complete model that verifies (SHA-256) and binds to its runner: the old
one, or the new one once its commit had finished. The models are the tiny bundle's backbone
with other weights (the same graph, as a retrained model would be)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.flash_image import KIND_MODEL, PartitionLayout, committed_record
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.qemu_cli import flash_bundle, load_firmware_bundle
from firmware_bridge.qemu_mcu import QemuMcu, QemuOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware_bridge"))
from qemu_support import gen_message, read_message

pytestmark = [pytest.mark.integration, pytest.mark.tf, pytest.mark.firmware, pytest.mark.slow]
TRIALS = 20
CHUNK = 256


def reweighted(model: bytes, seed: int) -> bytes:
    """The same graph with the largest int8 weight tensor drawn at random."""
    from convert.tflite_graph import read_graph

    weights = max((t for t in read_graph(model).tensors if t.data and t.type_name == "INT8"),
                  key=lambda t: len(t.data or b""))  # fmt: skip
    assert weights.data is not None and model.count(weights.data) == 1
    at = model.index(weights.data)
    drawn = np.random.default_rng(seed).integers(-127, 128, len(weights.data), dtype=np.int8)
    return model[:at] + drawn.tobytes() + model[at + len(weights.data) :]


def upload_requests(model: bytes) -> list[cmd.Message]:
    requests: list[cmd.Message] = [cmd.ModelBegin(len(model), hashlib.sha256(model).digest())]
    requests += [cmd.ModelChunk(at, model[at : at + CHUNK]) for at in range(0, len(model), CHUNK)]
    return [*requests, cmd.ModelCommit()]


def booted_info(mcu: QemuMcu) -> cmd.Info:
    """Power on, take the boot log, ask HELLO."""
    mcu.boot()
    assert mcu.link is not None
    assert read_message(mcu.link) == cmd.Log(2, "boot: model bound")
    mcu.link.sendall(gen_message(0, cmd.Hello()))
    info = read_message(mcu.link)
    assert isinstance(info, cmd.Info)
    return info


def upload_until_cut(mcu: QemuMcu, model: bytes, cut: int, delay_s: float) -> None:
    """Send the upload's requests in order; `delay_s` after request `cut`, pull the plug."""
    assert mcu.link is not None
    for index, request in enumerate(upload_requests(model)):
        mcu.link.sendall(gen_message((index + 1) % 256, request))
        if index == cut:
            time.sleep(delay_s)
            mcu.kill()
            return
        read_message(mcu.link)  # its ACK


def test_upload_cut_at_20_random_points_always_boots_a_verified_model(
    tiny_task, tiny_firmware_image: FirmwareImage, tmp_path: Path
) -> None:
    # Prepare
    rng = np.random.default_rng(20)
    bundle = load_firmware_bundle(tiny_task.bundle_path)
    flash = tmp_path / "flash.bin"
    flash_bundle(flash, tiny_firmware_image.elf, bundle)
    mcu = QemuMcu(QemuOptions(tiny_firmware_image.elf, flash, tmp_path / "qemu"))
    layout = PartitionLayout(tiny_firmware_image.partition_bytes)
    known = {hashlib.sha256(bundle.backbone).digest()}
    outcomes = []
    # Execute: 40 % of the cuts fall during MODEL_COMMIT, the rest during BEGIN or a chunk
    for trial in range(TRIALS):
        before = booted_info(mcu).model_sha256
        model = reweighted(bundle.backbone, seed=trial)
        known.add(hashlib.sha256(model).digest())
        last = len(upload_requests(model)) - 1
        cut = last if rng.random() < 0.4 else int(rng.integers(0, last))
        upload_until_cut(mcu, model, cut, delay_s=float(rng.uniform(0, 0.003)))
        after = booted_info(mcu)
        # Assert: a model we sent, whole, verified, bound (boot log), and what the flash holds
        stored = committed_record(layout, flash.read_bytes(), KIND_MODEL)
        assert after.model_sha256 in (before, hashlib.sha256(model).digest())
        assert stored is not None and hashlib.sha256(stored).digest() == after.model_sha256
        assert after.model_bytes == len(stored) and after.window_length == 16
        assert mcu.link is not None
        mcu.link.sendall(gen_message(1, cmd.InferRequest(np.zeros((16, 3), np.float32))))
        assert isinstance(read_message(mcu.link), cmd.InferResult)
        outcomes.append({"cut_after": cut, "requests": last + 1,
                         "kept_old": after.model_sha256 == before})  # fmt: skip
        mcu.kill()
    kept = sum(outcome["kept_old"] for outcome in outcomes)
    print(json.dumps({"trials": outcomes, "kept_old": kept, "committed_new": TRIALS - kept}))
