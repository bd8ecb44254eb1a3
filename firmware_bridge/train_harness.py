"""Build and drive the head-trainer harnesses of `firmware/tools` (test and bench only).

`head_train_tool` is the trainer built with the host gcc (a request on stdin, the reply on
stdout); `train_bench` is the same code built for the Cortex-M4 and run under
`qemu-system-arm -M mps2-an386 -icount shift=0`, which also counts the instructions training
takes. Layouts: `firmware/tools/train_request.h`.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_bridge.errors import BridgeError
from firmware_bridge.firmware_build import firmware_dir
from firmware_bridge.protocol.int8_record import Int8Record, read_int8_records

CORE_SOURCES = ("head", "head_train", "embedding_ring", "int8_codec", "rng")
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
COMMON_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
INSTRUCTIONS_PER_TICK = 40  # 25 MHz timer, 1 ns per instruction under -icount shift=0
QEMU_TIMEOUT_S = 600


@dataclass(frozen=True)
class TrainRequest:
    """What the trainer is given: fit settings, seed, the global head, int8 embeddings."""

    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    l2: float
    proximal_mu: float
    seed: int
    head_payload: bytes  # a HEAD_SET payload
    embeddings: np.ndarray = field(compare=False)  # (count, inputs) int8
    labels: np.ndarray = field(compare=False)  # (count,)
    scale: float = 1.0
    zero_point: int = 0
    stochastic: bool = True

    def to_bytes(self) -> bytes:
        fixed = struct.pack("<HHffffQBfiI", self.epochs, self.batch_size, self.learning_rate,
                            self.momentum, self.l2, self.proximal_mu, self.seed % 2**64,
                            self.stochastic, self.scale, self.zero_point,
                            len(self.head_payload))  # fmt: skip
        rows = np.asarray(self.embeddings, np.int8).view(np.uint8)
        labels = np.asarray(self.labels).astype(np.uint8)[:, None]
        entries = np.concatenate([labels, rows], axis=1).tobytes() if len(rows) else b""
        return fixed + self.head_payload + struct.pack("<I", len(rows)) + entries


@dataclass(frozen=True)
class TrainReply:
    """The trainer's answer: status (0 ok), examples, loss, float deltas, int8 records."""

    status: int
    num_examples: int
    loss: float
    delta: list[np.ndarray]
    records: list[Int8Record]
    instructions: int | None = None  # under QEMU: instructions `iomt_train_run` took


def read_reply(data: bytes) -> TrainReply:
    """Parse a reply (the QEMU bench's ends with its timer ticks)."""
    status, examples, loss = struct.unpack_from("<iIf", data)
    delta, raw, at = [], b"", 12
    for _ in range(4 if status == 0 else 0):
        (count,) = struct.unpack_from("<I", data, at)
        delta.append(np.frombuffer(data, "<f4", count, at + 4).astype(np.float32))
        at += 4 + 4 * count
        (length,) = struct.unpack_from("<I", data, at)
        raw += data[at + 4 : at + 4 + length]
        at += 4 + length
    records = read_int8_records(raw, 4) if status == 0 else []
    ticks = struct.unpack_from("<I", data, at)[0] if len(data) >= at + 4 else None
    instructions = None if ticks is None else ticks * INSTRUCTIONS_PER_TICK
    return TrainReply(status, examples, loss, delta, records, instructions)


def _sources() -> list[str]:
    firmware = firmware_dir()
    core = [firmware / "core" / f"iomt_{name}.c" for name in CORE_SOURCES]
    tools = [firmware / "tools" / "train_request.c", firmware / "tools" / "flash_ram.c"]
    return [str(p) for p in [*core, *tools]]


def _includes() -> list[str]:
    firmware = firmware_dir()
    return ["-I", str(firmware / "core"), "-I", str(firmware / "tools")]


def build_host_tool(out: Path) -> Path:
    """The trainer built with the host gcc."""
    tool = str(firmware_dir() / "tools" / "head_train_tool.c")
    _compile(["gcc", *COMMON_FLAGS, *_includes(), tool, *_sources(), "-lm", "-o", str(out)])
    return out


def run_host_tool(tool: Path, request: TrainRequest) -> TrainReply:
    """Train once with the host build."""
    result = subprocess.run([str(tool)], input=request.to_bytes(), capture_output=True, check=False)
    if result.returncode != 0:
        raise BridgeError(f"head_train_tool refused the request (exit {result.returncode})")
    return read_reply(result.stdout)


def build_qemu_bench(out: Path) -> Path:
    """The trainer's Cortex-M4 bench image (the QEMU port's startup and linker script)."""
    if shutil.which("arm-none-eabi-gcc") is None:
        raise BridgeError("arm-none-eabi-gcc not found: install the toolchain with `make firmware`")
    port = firmware_dir() / "ports" / "qemu_mps2_an386"
    harness = [str(firmware_dir() / "tools" / "train_bench.c")]
    harness += [str(port / "startup.c"), str(port / "semihosting.c")]
    command = ["arm-none-eabi-gcc", *ARM_FLAGS, *COMMON_FLAGS, "-I", str(port), *_includes()]
    command += [*harness, *_sources(), f"-T{port / 'mps2_an386.ld'}", "-Wl,--gc-sections"]
    command += ["-Wl,--defsym=IOMT_PARTITION_SIZE=0", "--specs=nano.specs", "--specs=nosys.specs"]
    # one flash page: no spill (the bench's 256 embeddings fit the RAM ring; its input buffer
    # needs the RAM a spill region would take)
    command += ["-DIOMT_TOOL_FLASH_BYTES=4096"]
    _compile([*command, "-lm", "-o", str(out)])
    return out


def run_qemu_bench(image: Path, request: TrainRequest) -> TrainReply:
    """Train once on the emulated Cortex-M4; the reply carries the instructions it took."""
    with tempfile.TemporaryDirectory(prefix="iomt-train-") as scratch:
        Path(scratch, "train.bin").write_bytes(request.to_bytes())
        command = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none"]
        command += ["-serial", "null", "-icount", "shift=0", "-semihosting-config"]
        command += ["enable=on,target=native", "-kernel", str(image.resolve())]
        result = subprocess.run(command, cwd=scratch, capture_output=True,
                                timeout=QEMU_TIMEOUT_S, check=False)  # fmt: skip
        if result.returncode != 0:
            raise BridgeError(f"QEMU training run failed: {result.stdout.decode().strip()}")
        return read_reply(Path(scratch, "reply.bin").read_bytes())


def _compile(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise BridgeError(f"trainer build failed: {lines[0]}")
