"""Power cuts during a model upload: QEMU is killed (SIGKILL) at random points of 20 uploads
and booted again on the same flash file; the firmware must come back with a complete,
verified model every time (the old one, or the new one if its commit had finished)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from qemu_support import (
    board,
    fixture_model,
    flash_file,
    gen_message,
    make_head,
    read_message,
)

from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.flash_image import KIND_MODEL, PartitionLayout, committed_record
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.qemu_mcu import QemuMcu

pytestmark = [pytest.mark.firmware, pytest.mark.slow]
TRIALS = 20
MODEL_PADDING = 8_000
CHUNK = 512


def booted_info(mcu: QemuMcu) -> cmd.Info:
    """Boot, take the boot log, ask HELLO."""
    mcu.boot()
    assert mcu.link is not None
    boot_log = read_message(mcu.link)
    assert boot_log == cmd.Log(2, "boot: model bound"), boot_log
    mcu.link.sendall(gen_message(0, cmd.Hello()))
    info = read_message(mcu.link)
    assert isinstance(info, cmd.Info)
    return info


def upload_requests(model: bytes) -> list[cmd.Message]:
    requests: list[cmd.Message] = [cmd.ModelBegin(len(model), hashlib.sha256(model).digest())]
    requests += [cmd.ModelChunk(at, model[at : at + CHUNK]) for at in range(0, len(model), CHUNK)]
    return [*requests, cmd.ModelCommit()]


def upload_until_cut(mcu: QemuMcu, model: bytes, cut: int, delay_s: float) -> None:
    """Send the upload's requests in order; right after request `cut`, pull the plug."""
    assert mcu.link is not None
    for seq, request in enumerate(upload_requests(model), start=1):
        mcu.link.sendall(gen_message(seq % 256, request))
        if seq - 1 == cut:
            time.sleep(delay_s)
            mcu.kill()
            return
        read_message(mcu.link)  # the ACK


def test_upload_cut_at_20_random_points_always_boots_a_verified_model(
    firmware_image: FirmwareImage, tmp_path: Path
) -> None:
    # Prepare
    rng = np.random.default_rng(20)
    first = fixture_model(seed=100)
    flash = flash_file(tmp_path / "flash.bin", firmware_image, first, make_head(0))
    mcu = board(firmware_image, flash, tmp_path / "qemu")
    known = {hashlib.sha256(first).digest(): first}
    outcomes = []
    # Execute
    for trial in range(TRIALS):
        before = booted_info(mcu).model_sha256
        model = fixture_model(seed=trial, padding=MODEL_PADDING)
        known[hashlib.sha256(model).digest()] = model
        requests = len(upload_requests(model))  # 40 % of the cuts fall during the commit
        cut = requests - 1 if rng.random() < 0.4 else int(rng.integers(0, requests - 1))
        upload_until_cut(mcu, model, cut, delay_s=float(rng.uniform(0, 0.003)))
        after = booted_info(mcu)
        # Assert: a model we sent, whole, and the one the flash file holds
        stored = committed_record(PartitionLayout(firmware_image.partition_bytes),
                                  flash.read_bytes(), KIND_MODEL)  # fmt: skip
        assert after.model_sha256 in known and after.model_bytes == len(known[after.model_sha256])
        assert stored is not None and hashlib.sha256(stored).digest() == after.model_sha256
        assert after.model_sha256 in (before, hashlib.sha256(model).digest())
        assert mcu.link is not None
        mcu.link.sendall(gen_message(1, cmd.InferRequest(np.ones((16, 3), np.int8))))
        assert isinstance(read_message(mcu.link), cmd.InferResult)
        outcomes.append({"cut_after_request": cut, "requests": requests,
                         "kept_old": after.model_sha256 == before})  # fmt: skip
        mcu.kill()
    print(json.dumps({"trials": outcomes}))
    kept = sum(o["kept_old"] for o in outcomes)
    print(
        f"power cuts: {TRIALS} trials, old model kept {kept}, new model committed {TRIALS - kept}"
    )
