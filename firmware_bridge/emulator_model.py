"""What the emulated MCU runs: a `.tflite` model in the tflite-micro interpreter.

`tflite_micro` is imported lazily inside `TflmModel` (the only place in the edge packages that
may touch it). `load_emulator_model` reads a bundle directory's `manifest.json` tolerantly:
the model file, the normalisation (`mean`/`std`) and the head weights when present.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.errors import BridgeError

MODEL_FILE = "model.int8.tflite"


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std applied to float windows before quantisation."""

    mean: np.ndarray = field(compare=False)
    std: np.ndarray = field(compare=False)

    def apply(self, window: np.ndarray) -> np.ndarray:
        """(time, channels) sensor units -> normalised float32."""
        scaled = (window - self.mean) / np.where(self.std == 0, 1.0, self.std)
        return np.asarray(scaled, dtype=np.float32)


@dataclass(frozen=True)
class EmulatorModel:
    """Model bytes plus what the firmware would know about its input."""

    model_bytes: bytes
    normalisation: Normalisation | None = None
    head: tuple[np.ndarray, ...] = ()
    labels: tuple[str, ...] = ()


class TflmModel:
    """A model loaded in tflite-micro with a fixed arena; state reset before every window."""

    def __init__(self, model_bytes: bytes, arena_bytes: int) -> None:
        from tflite_micro.python.tflite_micro import runtime

        try:
            self._interpreter = runtime.Interpreter.from_bytes(
                bytes(model_bytes), arena_size=int(arena_bytes)
            )
        except (RuntimeError, ValueError) as exc:
            raise BridgeError(f"TFLM cannot load the model in {arena_bytes} B: {exc}") from None
        self.arena_bytes = arena_bytes
        self._input = self._interpreter.get_input_details(0)
        self._output = self._interpreter.get_output_details(0)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Model input shape without the batch dimension, e.g. (time, channels)."""
        return tuple(int(d) for d in self._input["shape"][1:])

    @property
    def input_dtype(self) -> np.dtype[Any]:
        """Element type the model takes (int8 for a full-integer model)."""
        dtype: np.dtype[Any] = np.dtype(self._input["dtype"])
        return dtype

    @property
    def input_quantisation(self) -> tuple[float, int]:
        """(scale, zero point) of the input; (0, 0) for a float input."""
        params = self._input.get("quantization_parameters", {})
        scales, zeros = params.get("scales", []), params.get("zero_points", [])
        return (float(scales[0]), int(zeros[0])) if len(scales) else (0.0, 0)

    @property
    def num_classes(self) -> int:
        """Length of the output vector."""
        return int(np.prod(self._output["shape"][1:]))

    def quantise(self, window: np.ndarray) -> np.ndarray:
        """Float window -> the model's input dtype (identity for a float model)."""
        scale, zero_point = self.input_quantisation
        if self.input_dtype == np.float32 or scale == 0.0:
            return window.astype(self.input_dtype)
        info = np.iinfo(self.input_dtype)
        quantised = np.round(window / scale) + zero_point
        return np.clip(quantised, info.min, info.max).astype(self.input_dtype)

    def run(self, window: np.ndarray) -> tuple[np.ndarray, int]:
        """Scores for one (time, channels) window in the input dtype, and latency in µs."""
        started = time.perf_counter()
        self._interpreter.reset()  # recurrent state must not leak between windows
        self._interpreter.set_input(window[np.newaxis].astype(self.input_dtype), 0)
        self._interpreter.invoke()
        scores = np.asarray(self._interpreter.get_output(0)).reshape(-1)
        return scores, int((time.perf_counter() - started) * 1e6)


def _find_normalisation(manifest: dict[str, Any]) -> Normalisation | None:
    for holder in (manifest.get("normalisation"), manifest.get("normalization"), manifest):
        if isinstance(holder, dict) and "mean" in holder and "std" in holder:
            mean = np.asarray(holder["mean"], dtype=np.float32)
            return Normalisation(mean, np.asarray(holder["std"], dtype=np.float32))
    return None


def load_head_tensors(bundle: Path) -> tuple[np.ndarray, ...]:
    """`head.npz` as float32 tensors in `[kernel_0, bias_0, kernel_1, bias_1]` order."""
    path = bundle / "head.npz"
    if not path.exists():
        return ()
    with np.load(path, allow_pickle=False) as data:
        keys = sorted(k for k in data.files if k.startswith(("kernel_", "bias_")))
        order = sorted(keys, key=lambda k: (int(k.split("_")[1]), k.startswith("bias")))
        return tuple(np.asarray(data[k], dtype=np.float32) for k in order)


def _model_file_name(manifest: dict[str, Any]) -> str:
    """`models.model.file` when the manifest names it, else the conventional file name."""
    entry = manifest.get("models", {}).get("model", {}) if isinstance(manifest, dict) else {}
    name = entry.get("file") if isinstance(entry, dict) else None
    return str(name) if name and "/" not in str(name) else MODEL_FILE


def load_emulator_model(bundle: str | Path) -> EmulatorModel:
    """The MCU model of a bundle directory (manifest read tolerantly)."""
    bundle = Path(bundle)
    manifest_path = bundle / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise BridgeError(f"cannot read {manifest_path}: {exc}") from None
    model_path = bundle / _model_file_name(manifest)
    if not model_path.exists():
        raise BridgeError(f"bundle {bundle} has no {model_path.name}")
    return EmulatorModel(
        model_bytes=model_path.read_bytes(),
        normalisation=_find_normalisation(manifest),
        head=load_head_tensors(bundle),
        labels=tuple(str(label) for label in manifest.get("labels", [])),
    )
