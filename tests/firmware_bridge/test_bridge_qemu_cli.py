"""`iomt bridge emulate --qemu` as its own process, and every `iomt bridge` command against it."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from bridge_fakes import write_window_dataset
from qemu_support import fixture_model, make_head, write_bundle

from firmware_bridge.firmware_build import FirmwareImage
from iomt.cli import main
from iomt.environment import Environment


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Environment(stdout=out, stderr=err, interactive=False))
    return status, out.getvalue(), err.getvalue()


def test_missing_image_is_one_line_error(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", fixture_model(0), make_head(0))
    missing = tmp_path / "none.elf"
    status, _, err = run_cli(
        "bridge", "emulate", "--qemu", "--bundle", str(bundle), "--image", str(missing)
    )
    assert status == 1 and err.count("\n") == 1
    assert f"no firmware image at {missing}" in err or "qemu-system-arm not found" in err


def test_qemu_without_bundle_is_one_line_error() -> None:
    status, _, err = run_cli("bridge", "emulate", "--qemu")
    assert status == 2 and "--qemu needs --bundle" in err and err.count("\n") == 1


@pytest.mark.firmware
@pytest.mark.integration
def test_emulate_qemu_serves_info_infer_stream_and_bundle_upload(
    firmware_image: FirmwareImage, tmp_path: Path
) -> None:
    # Prepare
    bundle = write_bundle(tmp_path / "b", fixture_model(0), make_head(0))
    replay = write_window_dataset(tmp_path / "w.npz")
    command = [sys.executable, "-m", "iomt.cli", "bridge", "emulate", "--qemu", "--json"]
    command += [
        "--bundle",
        str(bundle),
        "--image",
        str(firmware_image.elf),
        "--replay",
        str(replay),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = json.loads(process.stdout.readline())["port"]
        # Execute
        info = json.loads(run_cli("bridge", "info", "--port", port, "--json")[1])
        infer = run_cli("bridge", "infer", "--port", port, "--data", str(replay), "--json")
        stream = run_cli("bridge", "stream", "--port", port, "--seconds", "0.5", "--json")
        new = write_bundle(tmp_path / "new", fixture_model(5, padding=3000), make_head(1))
        upload = run_cli("bridge", "upload", str(new), "--port", port, "--json")
        after = json.loads(run_cli("bridge", "info", "--port", port, "--json")[1])
    finally:
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=20)
    # Assert
    assert info["board"] == "qemu-mps2-an386" and info["window_length"] == 16
    assert info["model_sha256"] == hashlib.sha256(fixture_model(0)).hexdigest()
    rows = [json.loads(line) for line in infer[1].splitlines()]
    assert infer[0] == 0 and rows[-1]["windows"] == 6
    samples = [json.loads(line) for line in stream[1].splitlines()]
    assert stream[0] == 0 and any("samples" in row for row in samples)
    assert any("label" in row for row in samples)
    assert upload[0] == 0 and json.loads(upload[1])["head"] is True
    model = (new / "backbone.int8.tflite").read_bytes()
    assert after["model_sha256"] == hashlib.sha256(model).hexdigest()
    assert exit_code == 0
