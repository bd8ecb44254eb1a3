"""A federated round where one device's sensor is the C firmware under QEMU (built for the
bundle's backbone): `iomt bridge emulate --qemu` replays that device's recordings through the
firmware's sensor UART, and
`iomt edge --serial` takes its windows and button labels from the firmware's SENSOR_FRAMEs and
LABEL_EVENTs, next to a replaying device, over a real Mosquitto."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edge_runtime.head import Head
from edge_runtime.interpreter import Int8Model
from firmware_bridge.firmware_build import FirmwareImage
from firmware_bridge.protocol.commands import InferRequest, InferResult, Log
from firmware_bridge.qemu_cli import flash_bundle, load_firmware_bundle
from firmware_bridge.qemu_mcu import QemuMcu, QemuOptions
from iomt.cli import main
from iomt.environment import Environment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware_bridge"))
from qemu_support import gen_message, read_message

pytestmark = [pytest.mark.integration, pytest.mark.tf, pytest.mark.firmware]
FLEET = "qemu-round"


def test_inference_on_the_firmware_agrees_with_litert_and_the_numpy_head(
    tiny_task, tiny_firmware_image: FirmwareImage, tmp_path: Path
) -> None:
    # Prepare: the board flashed with the bundle; the host's reference on the same windows
    bundle = load_firmware_bundle(tiny_task.bundle_path)
    flash = tmp_path / "flash.bin"
    flash_bundle(flash, tiny_firmware_image.elf, bundle)
    windows = np.load(tiny_task.holdout_path)["X"]
    reference = Interpreter(model_content=bundle.backbone,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_REF)  # fmt: skip
    backbone = Int8Model(reference)  # LiteRT's reference kernels, which the firmware runs
    head = Head.from_npz(tiny_task.bundle_path / "head.npz")
    expected = head.predict_proba(np.stack([backbone.run(w) for w in windows]))  # mean 0, std 1
    # Execute: float windows, normalised and quantised on the device
    with QemuMcu(QemuOptions(tiny_firmware_image.elf, flash, tmp_path / "qemu")) as mcu:
        assert mcu.link is not None and read_message(mcu.link) == Log(2, "boot: model bound")
        replies = []
        for seq, window in enumerate(windows):
            mcu.link.sendall(gen_message(seq % 256, InferRequest(window)))
            replies.append(read_message(mcu.link))
    # Assert
    assert all(isinstance(reply, InferResult) for reply in replies)
    scores = np.stack([reply.scores for reply in replies])  # type: ignore[union-attr]
    assert (scores.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(scores, expected, atol=1e-5)  # same embeddings, float head


def test_round_with_a_qemu_microcontroller_as_one_device(
    mosquitto, tiny_task, tiny_firmware_image: FirmwareImage, processes, tmp_path: Path
) -> None:
    # Prepare: the QEMU board replaying subject 1
    image = tiny_firmware_image
    backbone = tiny_task.bundle_path / "backbone.int8.tflite"
    subject = {k: v[tiny_task.data["subject"] == 1] if k in ("X", "y", "subject") else v
               for k, v in tiny_task.data.items()}  # fmt: skip
    np.savez(tmp_path / "subject1.npz", **subject)
    emulate = ["bridge", "emulate", "--qemu", "--json", "--bundle", str(tiny_task.bundle_path),
               "--image", str(image.elf), "--replay", str(tmp_path / "subject1.npz")]  # fmt: skip
    board = processes.start("qemu", emulate)
    port = json.loads(board.wait_for('"port"'))["port"]
    metrics = tmp_path / "metrics.jsonl"
    common = ["--broker", mosquitto.url, "--fleet", FLEET, "--bundle", str(tiny_task.bundle_path)]
    aggregator = ["aggregator", *common[:4], "--bundle", str(tiny_task.bundle_path),
                  "--state", str(tmp_path / "agg.sqlite"), "--rounds", "1", "--min-clients", "2",
                  "--deadline", "120", "--metrics-out", str(metrics), "--json"]  # fmt: skip
    replaying = ["edge", *common, "--device-id", "replay", "--store", str(tmp_path / "r.sqlite"),
                 "--replay", str(tiny_task.data_path), "--subject", "0", "--speed", "0",
                 "--max-rounds", "1", "--json"]  # fmt: skip
    on_qemu = ["edge", *common, "--device-id", "mcu", "--store", str(tmp_path / "m.sqlite"),
               "--serial", port, "--min-samples", "4", "--max-rounds", "1", "--json"]  # fmt: skip
    # Execute
    started = [processes.start(name, args) for name, args in
               (("aggregator", aggregator), ("replay", replaying), ("mcu", on_qemu))]  # fmt: skip
    exit_codes = [process.finish(timeout_s=180) for process in started]
    out = io.StringIO()
    main(["bridge", "info", "--port", port, "--json"], Environment(stdout=out, stderr=out))
    info = json.loads(out.getvalue())
    board.popen.terminate()  # SIGTERM: QEMU powered off, temporary files removed
    # Assert
    assert exit_codes == [0, 0, 0]
    rounds = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert rounds[0]["participants"] == 2 and rounds[0]["status"] == "aggregated"
    records = [json.loads(line) for line in started[2].output() if line.startswith("{")]
    assert any(r.get("event") == "installed" and r.get("version") == 1 for r in records)
    assert info["model_sha256"] == hashlib.sha256(backbone.read_bytes()).hexdigest()  # it bound
    assert board.finish(timeout_s=20) == 0
