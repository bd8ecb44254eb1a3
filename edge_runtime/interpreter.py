"""One int8 TFLite model behind the lightest interpreter the device has.

Backend preference: `ai_edge_litert` (LiteRT), then `tflite_runtime` (armv7 wheels), then
`tensorflow.lite` only when neither is installed (a workstation). The choice is made once, at
import, by looking for installed packages without importing them; the backend module itself is
imported on first use.

Converted LSTMs keep their state in variable tensors between invocations, so `Int8Model.run`
resets every variable before each window: otherwise window k sees the state left by window
k-1 and accuracy collapses.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_runtime.errors import InferenceError, ModelLoadError
from edge_runtime.native_output import quiet_native_stderr

_BACKENDS: tuple[tuple[str, str, str], ...] = (
    # (name, package looked up at import, module:attribute loaded on first use)
    ("ai_edge_litert", "ai_edge_litert", "ai_edge_litert.interpreter:Interpreter"),
    ("tflite_runtime", "tflite_runtime", "tflite_runtime.interpreter:Interpreter"),
    ("tensorflow.lite", "tensorflow", "tensorflow.lite:Interpreter"),
)


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _choose_backend() -> str:
    for name, package, _ in _BACKENDS:
        if _installed(package):
            return name
    return "none"


BACKEND_NAME: str = _choose_backend()
"""Which interpreter this process uses: ai_edge_litert | tflite_runtime | tensorflow.lite | none."""

NO_BACKEND_MESSAGE = "no TFLite interpreter installed: pip install 'iomt-edge-fl[edge]'"


def interpreter_class() -> Any:
    """The backend's `Interpreter` class, imported on first call."""
    for name, _, target in _BACKENDS:
        if name == BACKEND_NAME:
            module_name, attribute = target.split(":")
            return getattr(importlib.import_module(module_name), attribute)
    raise ModelLoadError(NO_BACKEND_MESSAGE)


@dataclass(frozen=True)
class Quantisation:
    """Affine int8 quantisation of one tensor: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int
    dtype: type[np.generic]

    @property
    def is_quantised(self) -> bool:
        return self.scale != 0.0

    def quantise(self, values: NDArray[np.floating]) -> NDArray[np.generic]:
        if not self.is_quantised:
            return np.asarray(values, dtype=self.dtype)
        info = np.iinfo(self.dtype)  # type: ignore[type-var]
        q = np.round(np.asarray(values, dtype=np.float32) / self.scale) + self.zero_point
        quantised: NDArray[np.generic] = np.clip(q, info.min, info.max).astype(self.dtype)
        return quantised

    def dequantise(self, values: NDArray[np.generic]) -> NDArray[np.float32]:
        if not self.is_quantised:
            return np.asarray(values, dtype=np.float32)
        return (self.scale * (values.astype(np.float32) - self.zero_point)).astype(np.float32)


def _quantisation_of(detail: dict[str, Any]) -> Quantisation:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return Quantisation(float(scale), int(zero_point), detail["dtype"])


class Int8Model:
    """One interpreter: float window in, float output out, quantisation handled here."""

    def __init__(self, interpreter: Any, source: str = "<model>") -> None:
        self._interpreter = interpreter
        self.source = source
        try:
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"cannot allocate {source}: {_first_line(exc)}") from exc
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(
                f"{source}: expected 1 input and 1 output, got {len(inputs)}/{len(outputs)}"
            )
        self._input, self._output = inputs[0], outputs[0]
        self.input_quantisation = _quantisation_of(self._input)
        self.output_quantisation = _quantisation_of(self._output)

    @classmethod
    def from_path(cls, path: str | Path, num_threads: int = 1) -> Int8Model:
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model {path}: {exc.strerror}") from exc
        return cls.from_bytes(content, num_threads=num_threads, source=str(path))

    @classmethod
    def from_bytes(cls, content: bytes, num_threads: int = 1, source: str = "<bytes>") -> Int8Model:
        if not content:
            raise ModelLoadError(f"model {source} is empty")
        backend = interpreter_class()
        with quiet_native_stderr():  # LiteRT announces its CPU delegate on every creation
            try:
                interpreter = backend(model_content=bytes(content), num_threads=num_threads)
            except (RuntimeError, ValueError) as exc:
                raise ModelLoadError(f"corrupt model {source}: {_first_line(exc)}") from exc
            return cls(interpreter, source)

    @property
    def interpreter(self) -> Any:
        """The backend interpreter itself, for diagnostics and benchmarks."""
        return self._interpreter

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the interpreter input, batch included (e.g. (1, T, C))."""
        return tuple(int(d) for d in self._input["shape"])

    @property
    def window_shape(self) -> tuple[int, ...]:
        """Shape of one window (the input shape without its batch dimension)."""
        return self.input_shape[1:]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._output["shape"])

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape[1:]))

    def run(self, window: NDArray[np.floating]) -> NDArray[np.float32]:
        """One normalised window [T, C] -> dequantised output, shape output_shape[1:]."""
        values = np.asarray(window, dtype=np.float32)
        if values.shape != self.window_shape:
            raise InferenceError(f"window shape {values.shape} != model input {self.window_shape}")
        interpreter = self._interpreter
        try:
            interpreter.reset_all_variables()  # converted LSTMs keep state between invokes
            interpreter.set_tensor(
                self._input["index"], self.input_quantisation.quantise(values[None])
            )
            interpreter.invoke()
            raw: NDArray[np.generic] = interpreter.get_tensor(self._output["index"])
        except (RuntimeError, ValueError) as exc:
            raise InferenceError(f"{self.source}: {_first_line(exc)}") from exc
        output: NDArray[np.float32] = self.output_quantisation.dequantise(raw)[0]
        return output

    def run_batch(
        self, windows: Sequence[NDArray[np.floating]] | NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """Windows [N, T, C] -> outputs [N, D], one invoke per window (batch 1 models)."""
        outputs = [self.run(window).reshape(-1) for window in windows]
        if not outputs:
            return np.zeros((0, self.output_size), dtype=np.float32)
        return np.stack(outputs)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
