"""Run an int8 model in the tflite-micro Python interpreter: outputs and the arena it needs.

The arena is measured, not guessed: the smallest `arena_size` with which TFLM both allocates
and invokes the model is found by bisection (a failed allocation is cheap). The recording
allocator's own total (`print_allocations`) is read as well; it is what the kernels and
tensors take, without the Python wrapper's bookkeeping, so the bisected figure is the
conservative one and the one the board fit uses. The LSTM's variable tensors are reset
before every window, as on the device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from convert.errors import TflmError
from convert.native_streams import captured_fd

ARENA_ALIGNMENT = 16
ARENA_SEARCH_LIMIT = 8 * 1024 * 1024
ARENA_ROUNDING = 1024
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
    """Bisect the smallest arena TFLM can allocate and invoke the model in."""
    high = max(4096, 10 * len(model_bytes))
    while not _arena_works(model_bytes, high, probe_window):
        if high >= ARENA_SEARCH_LIMIT:
            raise TflmError(f"TFLM cannot run the model even with a {high} B arena")
        high *= 2
    low = 0
    while high - low > ARENA_ALIGNMENT:
        middle = (low + high) // 2
        if _arena_works(model_bytes, middle, probe_window):
            high = middle
        else:
            low = middle
    recommended = -(-high // ARENA_ROUNDING) * ARENA_ROUNDING
    return ArenaMeasurement(high, _recorded_total(model_bytes, high, probe_window), recommended)


def _arena_works(model_bytes: bytes, arena_bytes: int, probe_window: np.ndarray) -> bool:
    try:
        with captured_fd(2):  # TFLM prints every failed allocation to fd 2
            TflmRunner(model_bytes, arena_bytes).run(probe_window)
    except TflmError:
        return False
    return True


def _recorded_total(model_bytes: bytes, arena_bytes: int, probe_window: np.ndarray) -> int | None:
    interpreter = _make_interpreter(model_bytes, arena_bytes)
    runner_input = np.asarray(probe_window).reshape(
        tuple(int(d) for d in interpreter.get_input_details(0)["shape"])
    )
    with captured_fd(2) as captured:
        interpreter.reset()
        interpreter.set_input(runner_input, 0)
        interpreter.invoke()
        interpreter.print_allocations()
    match = _RECORDED_TOTAL.search(captured())
    return int(match.group(1)) if match else None


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
