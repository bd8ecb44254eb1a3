"""Helpers of the QEMU firmware tests: the toolchain check, the test image and board, and the
socket-level frame helpers of the scripted conversations.

The test image links the fixture backbone (c_fixtures/fixture_backbone.c), whose "model" is a
small integer matrix, so these tests need no TensorFlow; `fixture_model` builds such images.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.firmware_build import BuildRequest, BundleConfig, FirmwareImage, build_image
from firmware_bridge.flash_image import PartitionLayout, partition_image
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import Frame, FrameDecoder, encode_frame
from firmware_bridge.qemu_mcu import QemuMcu, QemuOptions

FIXTURE_BACKBONE = Path(__file__).parent / "c_fixtures" / "fixture_backbone.c"
TIME, CHANNELS, EMBEDDING, SHIFT = 16, 3, 4, 4
CONFIG = BundleConfig(CHANNELS, 200.0, (0.5, -0.25, 0.0), (2.0, 1.0, 0.5), num_labels=3)
TOOLS = ("qemu-system-arm", "arm-none-eabi-gcc", "make")


def require_toolchain() -> None:
    """Skip (saying what is missing) when the firmware toolchain is not installed."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"firmware toolchain missing ({', '.join(missing)}): run `make firmware`")


def build_test_image(out: Path) -> FirmwareImage:
    """The QEMU image with the fixture backbone and the test configuration."""
    return build_image(BuildRequest(CONFIG, out, runner_sources=(FIXTURE_BACKBONE,)))


def fixture_model(seed: int, padding: int = 0) -> bytes:
    """A fixture backbone image: header, int8 weights (channels, embedding), random padding."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-20, 21, (CHANNELS, EMBEDDING), dtype=np.int8)
    header = b"IOMTFIX1" + np.array([TIME, CHANNELS, EMBEDDING], "<u2").tobytes() + bytes([SHIFT])
    return header + weights.tobytes() + rng.integers(0, 256, padding, dtype=np.uint8).tobytes()


def fixture_embedding(model: bytes, window: np.ndarray) -> np.ndarray:
    """What the fixture backbone computes for an int8 window, dequantised (scale 0.05)."""
    weights = (
        np.frombuffer(model[15 : 15 + CHANNELS * EMBEDDING], np.int8)
        .reshape(CHANNELS, EMBEDDING)
        .astype(np.int32)
    )
    total = (window.astype(np.int32) @ weights).sum(axis=0) >> SHIFT
    return np.clip(total, -128, 127).astype(np.float32) * np.float32(0.05)


def make_head(seed: int = 0, version: int = 1) -> cmd.HeadSet:
    """A head for the fixture backbone (4 inputs, 6 hidden, 3 classes)."""
    rng = np.random.default_rng(seed)
    shapes = [(EMBEDDING, 6), (6,), (6, 3), (3,)]
    return cmd.HeadSet(version, tuple(rng.normal(size=s).astype(np.float32) for s in shapes))


def head_scores(head: cmd.HeadSet, embedding: np.ndarray) -> np.ndarray:
    """Dense ReLU, Dense softmax in numpy (what the firmware's C head computes)."""
    kernel_0, bias_0, kernel_1, bias_1 = head.tensors
    logits = np.maximum(embedding @ kernel_0 + bias_0, 0) @ kernel_1 + bias_1
    exp = np.exp(logits - logits.max())
    return (exp / exp.sum()).astype(np.float32)


def flash_file(path: Path, image: FirmwareImage, model: bytes, head: cmd.HeadSet | None) -> Path:
    """A partition file holding `model` and `head` in slot 0 (a freshly flashed board)."""
    payload = head.to_payload() if head is not None else None
    path.write_bytes(partition_image(PartitionLayout(image.partition_bytes), model, payload))
    return path


def board(image: FirmwareImage, flash: Path, workdir: Path) -> QemuMcu:
    """A QEMU board (not booted yet) on `flash`."""
    return QemuMcu(QemuOptions(image=image.elf, flash=flash, workdir=workdir))


def write_bundle(root: Path, model: bytes, head: cmd.HeadSet) -> Path:
    """A signed bundle with what `iomt bridge emulate --qemu` reads (the bridge verifies it)."""
    import hashlib
    import io

    from bundle_format.signing import generate_private_key
    from bundle_format.writer import write_bundle as write_signed

    names = ("kernel_0", "bias_0", "kernel_1", "bias_1")
    head_npz = io.BytesIO()
    np.savez(head_npz, **dict(zip(names, head.tensors, strict=True)))
    files = {"backbone.int8.tflite": model, "head.npz": head_npz.getvalue()}
    manifest = {"schema_version": 1, "labels": [f"c{i}" for i in range(CONFIG.num_labels)],
                "channels": ["x", "y", "z"], "sample_rate_hz": CONFIG.sample_rate_hz,
                "window_length": 16, "models": {}, "model_version": "qemu-test",
                "normalisation": {"mean": list(CONFIG.mean), "std": list(CONFIG.std)},
                "files": {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                          for n, d in files.items()}}  # fmt: skip
    return write_signed(root, files, manifest, generate_private_key())


# --- scripted conversations on the UART0 socket --------------------------------------------


def gen_message(seq: int, message: cmd.Message) -> bytes:
    return encode_frame(message.to_frame(seq))


def read_wire(sock: socket.socket, timeout_s: float = 10.0) -> bytes:
    """One delimited frame as it came off the line."""
    sock.settimeout(timeout_s)
    received = bytearray()
    while not received.endswith(b"\x00"):
        chunk = sock.recv(1)
        assert chunk, f"link closed; got {bytes(received).hex(' ')}"
        received += chunk
    return bytes(received)


def expect_frame(sock: socket.socket, expected: bytes) -> None:
    """Read one frame and compare it byte for byte."""
    assert read_wire(sock).hex(" ") == expected.hex(" ")


def read_message(sock: socket.socket) -> cmd.Message:
    """Read one frame and decode it."""
    frames: list[Frame] = FrameDecoder().feed(read_wire(sock))
    assert len(frames) == 1
    return cmd.message_from_frame(frames[0])
