"""The C framing (firmware side) agrees byte for byte with the Python framing.

frame_tool.c is built with the host gcc into a tmp dir; every check is batched into one
process invocation (one command per line).
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.protocol.framing import Frame, FrameDecoder, encode_frame
from firmware_bridge.protocol.test_vectors import vector_messages

RANDOM_PACKETS = 10_000

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


@pytest.fixture(scope="module")
def frame_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    firmware = Path(str(resources.files("firmware_bridge") / "firmware"))
    out = tmp_path_factory.mktemp("frame_tool") / "frame_tool"
    sources = [firmware / "tools" / "frame_tool.c", *sorted((firmware / "framing").glob("*.c"))]
    command = ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
    command += ["-I", str(firmware / "framing"), *map(str, sources), "-o", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def run_tool(tool: Path, commands: list[str]) -> list[str]:
    result = subprocess.run(
        [str(tool)], input="\n".join(commands) + "\n", capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == len(commands)
    return lines


def encode_command(frame: Frame) -> str:
    return f"E {frame.type} {frame.seq} {frame.payload.hex() or '-'}"


def python_view(wire: bytes) -> str:
    """What frame_tool prints for `D wire`, computed with the Python decoder."""
    decoder = FrameDecoder()
    frames = decoder.feed(wire)
    parts = [f"{f.type}:{f.seq}:{f.payload.hex() or '-'}" for f in frames]
    stats = decoder.stats
    counts = (stats.cobs_errors, stats.length_errors, stats.crc_errors)
    counts += (stats.version_errors, stats.oversize)
    return " ".join([str(len(frames)), *parts, "|", *map(str, counts)])


def random_frames(count: int, seed: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    sizes = np.where(
        rng.random(count) < 0.05, rng.integers(0, 3000, count), rng.integers(0, 300, count)
    )
    frames = []
    for size in sizes:
        zero_rich = rng.random() < 0.3
        payload = rng.integers(0, 3 if zero_rich else 256, int(size), dtype=np.uint8).tobytes()
        frames.append(Frame(int(rng.integers(0, 256)), int(rng.integers(0, 256)), payload))
    return frames


def test_c_encodes_every_test_vector_like_python(frame_tool: Path) -> None:
    frames = [frame for _, frame in vector_messages()]
    lines = run_tool(frame_tool, [encode_command(frame) for frame in frames])
    assert lines == [encode_frame(frame).hex() for frame in frames]


def test_c_decodes_every_test_vector_like_python(frame_tool: Path) -> None:
    wires = [encode_frame(frame) for _, frame in vector_messages()]
    lines = run_tool(frame_tool, [f"D {wire.hex()}" for wire in wires])
    assert lines == [python_view(wire) for wire in wires]


def test_random_packets_agree_in_both_directions(frame_tool: Path) -> None:
    # Prepare
    frames = random_frames(RANDOM_PACKETS, seed=7)
    wires = [encode_frame(frame) for frame in frames]
    commands = [encode_command(frame) for frame in frames] + [f"D {w.hex()}" for w in wires]
    # Execute
    lines = run_tool(frame_tool, commands)
    # Assert: C encodes like Python (Python -> C) and C decodes Python's bytes (C <- Python);
    # C's bytes decode in Python to the same frames (Python <- C).
    c_wires = lines[:RANDOM_PACKETS]
    assert c_wires == [wire.hex() for wire in wires]
    assert lines[RANDOM_PACKETS:] == [python_view(wire) for wire in wires]
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(bytes.fromhex(w) for w in c_wires)) == frames


def test_damaged_packets_are_rejected_alike(frame_tool: Path) -> None:
    rng = np.random.default_rng(11)
    wires = []
    for frame in random_frames(2000, seed=3):
        wire = bytearray(encode_frame(frame))
        cut = int(rng.integers(1, len(wire)))
        damage = rng.integers(0, 3)
        if damage == 0:
            wire[cut - 1] ^= 1 << int(rng.integers(0, 8))
        elif damage == 1:
            wire = wire[:cut] + b"\x00"
        else:
            wire = bytearray(rng.integers(0, 256, cut, dtype=np.uint8).tobytes()) + b"\x00"
        wires.append(bytes(wire))
    lines = run_tool(frame_tool, [f"D {wire.hex()}" for wire in wires])
    assert lines == [python_view(wire) for wire in wires]
