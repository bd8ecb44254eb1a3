"""Build and run the firmware's model runner for a .tflite: natively (tests) and on QEMU.

The C build is `firmware_bridge/firmware/model/Makefile` (it fetches the pinned reference
kernels and generates the plan with `convert.firmware_plan`); this module drives it and feeds
it windows:

- `build_host_runner` + `run_host`: the runner compiled with the workstation's gcc; all
  windows in one process.
- `build_qemu_image` + `run_qemu`: the Cortex-M4 image (model in flash, nRF52840 linker budget)
  under `qemu-system-arm -M mps2-an386 -icount shift=0`, which also yields the instructions
  each invoke took (CMSDK timer 0 at 25 MHz: one tick is 40 instructions).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.errors import ConvertError

MODEL_DIR = Path(__file__).resolve().parent.parent / "firmware_bridge" / "firmware" / "model"
HOST_BINARY = "iomt_model_host"
QEMU_IMAGE = "iomt_model_bench.elf"
INSTRUCTIONS_PER_TICK = 40  # 25 MHz timer, 1 ns per instruction under -icount shift=0
QEMU_TIMEOUT_S = 1800
HOST_TOOLS = ("make", "gcc", "g++", "curl", "tar")
_CALIBRATION = re.compile(r"calibration (\d+) ticks for (\d+) instructions")
ARM_TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-size", "qemu-system-arm")


@dataclass(frozen=True)
class QemuImage:
    """A bench image and its footprint from `arm-none-eabi-size` (bytes)."""

    elf: Path
    text: int  # code, constants and the model (flash)
    data: int  # initialised RAM, also stored in flash
    bss: int  # zeroed RAM: the arena and the ops' parameters
    stack: int  # reserved stack (RAM)

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss + self.stack


@dataclass(frozen=True)
class QemuRun:
    """Raw int8 outputs [N, K] and instructions per invoke [N] from the QEMU image."""

    outputs: np.ndarray
    instructions: np.ndarray
    calibration: tuple[int, int]  # (measured, actual) instructions of a known loop


def missing_tools(arm: bool = False) -> list[str]:
    """Tools the build needs that are not on PATH (empty when it can run)."""
    needed = HOST_TOOLS + (ARM_TOOLS if arm else ())
    return [tool for tool in needed if shutil.which(tool) is None]


def _make(target: str, model: Path, build_dir: Path) -> None:
    command = ["make", "-s", "-C", str(MODEL_DIR), target, f"MODEL={model.resolve()}"]
    command += [f"BUILD={build_dir.resolve()}", f"PYTHON={sys.executable}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()] or lines or ["no output"]
        raise ConvertError(f"firmware runner build ({target}) failed: {errors[0]}")


def build_host_runner(model: Path, build_dir: Path) -> Path:
    """The native runner binary for `model`."""
    _make("host", model, build_dir)
    return build_dir / HOST_BINARY


def run_host(binary: Path, model: Path, windows: np.ndarray) -> np.ndarray:
    """Raw int8 windows [N, ...] -> raw int8 outputs [N, K] from the native runner."""
    windows = np.ascontiguousarray(windows, dtype=np.int8)
    result = subprocess.run(
        [str(binary), str(model), "run"], input=windows.tobytes(), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise ConvertError(f"{binary.name} failed: {result.stderr.decode().strip()}")
    return np.frombuffer(result.stdout, dtype=np.int8).reshape(len(windows), -1)


def build_qemu_image(model: Path, build_dir: Path) -> QemuImage:
    """The Cortex-M4 bench image for `model` and its section sizes."""
    _make("qemu", model, build_dir)
    elf = build_dir / QEMU_IMAGE
    sizes = _section_sizes(elf)
    return QemuImage(
        elf=elf,
        text=sizes.get(".text", 0) + sizes.get(".ARM.exidx", 0),
        data=sizes.get(".data", 0),
        bss=sizes.get(".bss", 0),
        stack=sizes.get(".stack", 0),
    )


def run_qemu(image: QemuImage, windows: np.ndarray, output_len: int) -> QemuRun:
    """Run `windows` through the image under QEMU; outputs and instructions per invoke."""
    windows = np.ascontiguousarray(windows, dtype=np.int8)
    with tempfile.TemporaryDirectory(prefix="iomt-qemu-") as scratch:
        Path(scratch, "windows.bin").write_bytes(windows.tobytes())
        command = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none"]
        command += ["-serial", "null", "-icount", "shift=0", "-semihosting-config"]
        command += ["enable=on,target=native", "-kernel", str(image.elf.resolve())]
        result = subprocess.run(
            command, cwd=scratch, capture_output=True, timeout=QEMU_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise ConvertError(f"QEMU run failed: {result.stdout.decode().strip()}")
        raw = np.frombuffer(Path(scratch, "outputs.bin").read_bytes(), dtype=np.uint8)
    rows = raw.reshape(len(windows), output_len + 4)
    ticks = rows[:, output_len:].copy().view("<u4").reshape(-1)
    outputs = rows[:, :output_len].view(np.int8).copy()
    found = _CALIBRATION.search((result.stdout + result.stderr).decode(errors="replace"))
    if found is None:
        raise ConvertError("QEMU run did not report its timer calibration")
    calibration = (int(found.group(1)) * INSTRUCTIONS_PER_TICK, int(found.group(2)))
    return QemuRun(outputs, ticks.astype(np.int64) * INSTRUCTIONS_PER_TICK, calibration)


def _section_sizes(elf: Path) -> dict[str, int]:
    result = subprocess.run(
        ["arm-none-eabi-size", "-A", "-d", str(elf)], capture_output=True, text=True, check=True
    )
    sizes = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def default_build_root() -> Path:
    """Where builds go unless told: the cache, beside the fetched kernels."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iomt-edge-fl" / "firmware-runner"
