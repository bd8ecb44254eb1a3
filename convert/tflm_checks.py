"""Run an int8 model in the tflite-micro Python interpreter: outputs and the arena it needs.

The arena is measured, not guessed: the recording allocator's total (`print_allocations`)
under a generous arena, then the smallest `arena_size` with which TFLM both allocates and
invokes the model, found by bisection with each size tried in a child process. The bisected
figure (rounded up to 1 KiB) is the conservative one the manifest and the board fit use.
The LSTM's variable tensors are reset before every window, as on the device.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.errors import TflmError
from convert.native_streams import captured_fd

ARENA_ALIGNMENT = 16
ARENA_SEARCH_LIMIT = 8 * 1024 * 1024
ARENA_ROUNDING = 1024
PROBE_TIMEOUT_S = 60
_RECORDED_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


@dataclass(frozen=True)
class ArenaMeasurement:
    """Arena sizes from running the model in TFLM."""

    minimum_bytes: int  # smallest arena_size that allocated and invoked (bisection)
    recorded_bytes: int | None  # RecordingMicroAllocator total, when it could be read
    recommended_bytes: int  # minimum rounded up to ARENA_ROUNDING: what firmware should reserve

    def to_manifest(self) -> dict[str, Any]:
        return {
            "arena_bytes": self.recommended_bytes,
            "arena_minimum_bytes": self.minimum_bytes,
            "arena_recorded_bytes": self.recorded_bytes,
        }


class TflmRunner:
    """One TFLM interpreter with a fixed arena; int8 in, int8 out, state reset per window."""

    def __init__(self, model_bytes: bytes, arena_bytes: int) -> None:
        self._interpreter = _make_interpreter(model_bytes, arena_bytes)
        details = self._interpreter.get_input_details(0)
        self.input_shape = tuple(int(d) for d in details["shape"])
        self.input_dtype = np.dtype(details["dtype"])

    def run(self, quantised_window: np.ndarray) -> np.ndarray:
        """One window in the input dtype [T, C] -> the raw output row."""
        window = np.asarray(quantised_window, dtype=self.input_dtype).reshape(self.input_shape)
        try:
            self._interpreter.reset()  # recurrent state must not leak between windows
            self._interpreter.set_input(window, 0)
            self._interpreter.invoke()
        except RuntimeError as exc:
            raise TflmError(f"TFLM invoke failed: {_first_line(exc)}") from None
        return np.asarray(self._interpreter.get_output(0)).reshape(-1)

    def run_batch(self, quantised_windows: np.ndarray) -> np.ndarray:
        """Windows [N, T, C] -> raw outputs [N, K]."""
        return np.stack([self.run(window) for window in quantised_windows])


def measure_arena(model_bytes: bytes, probe_window: np.ndarray) -> ArenaMeasurement:
    """Bisect the smallest arena TFLM can allocate and invoke the model in.

    The recording allocator's total under a generous arena is a lower bound; every smaller
    size is then tried in a child process (`convert.tflm_probe`), because a near miss can
    crash tflite-micro instead of raising.
    """
    window = np.asarray(probe_window).reshape(_input_shape(model_bytes))
    generous = max(16 * 1024, 10 * len(model_bytes))
    while True:
        recorded = _recorded_total(model_bytes, generous, window)
        if recorded is not None or generous >= ARENA_SEARCH_LIMIT:
            break
        generous *= 2
    if recorded is None:
        raise TflmError(f"TFLM cannot run the model even with a {generous} B arena")
    with tempfile.TemporaryDirectory(prefix="iomt-arena-") as scratch:
        model_path, window_path = Path(scratch, "model.tflite"), Path(scratch, "window.npy")
        model_path.write_bytes(model_bytes)
        np.save(window_path, window)
        minimum = _bisect(lambda size: _probe(model_path, window_path, size), recorded, generous)
    recommended = -(-minimum // ARENA_ROUNDING) * ARENA_ROUNDING
    return ArenaMeasurement(minimum, recorded, recommended)


def _bisect(works: Callable[[int], bool], low: int, high: int) -> int:
    """Smallest size in (low - ALIGNMENT, high] that works, to ARENA_ALIGNMENT; high must work."""
    if works(low):
        return low
    while high - low > ARENA_ALIGNMENT:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle
    return high


def _probe(model_path: Path, window_path: Path, arena_bytes: int) -> bool:
    command = [sys.executable, "-m", "convert.tflm_probe", str(model_path), str(window_path)]
    result = subprocess.run(
        [*command, str(arena_bytes)], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False
    )
    return result.returncode == 0


def _recorded_total(model_bytes: bytes, arena_bytes: int, window: np.ndarray) -> int | None:
    """Allocator total under a generous arena, or None if even that arena is refused."""
    try:
        interpreter = _make_interpreter(model_bytes, arena_bytes)
    except TflmError:
        return None
    with captured_fd(2) as captured:
        interpreter.reset()
        interpreter.set_input(window, 0)
        interpreter.invoke()
        interpreter.print_allocations()
    match = _RECORDED_TOTAL.search(captured())
    if match is None:
        raise TflmError("TFLM did not report its arena allocation")
    return int(match.group(1))


def _input_shape(model_bytes: bytes) -> tuple[int, ...]:
    interpreter = _make_interpreter(model_bytes, max(16 * 1024, 10 * len(model_bytes)))
    return tuple(int(d) for d in interpreter.get_input_details(0)["shape"])


def _make_interpreter(model_bytes: bytes, arena_bytes: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_bytes))
    except (RuntimeError, ValueError) as exc:
        raise TflmError(
            f"TFLM cannot load the model in {arena_bytes} B: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
