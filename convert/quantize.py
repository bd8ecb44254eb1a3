"""Keras model -> TFLite bytes: full-integer int8 for deployment, float32 for comparison.

The int8 converter is calibrated on windows from the training subjects only, so no test
subject leaks into the quantisation ranges, clipped to +-`CALIBRATION_CLIP_SD` (see
`calibration_windows`). Models must be built with batch size 1: the fused int8
`UNIDIRECTIONAL_SEQUENCE_LSTM` (what TFLM runs) needs a static batch. The legacy (non-MLIR)
quantizer is used on purpose; see `convert_int8`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from convert.errors import ConvertError
from convert.native_streams import captured_fd

DEFAULT_CALIBRATION_WINDOWS = 300
# Inputs are z-scored. The model's input is one int8 tensor, so its range is set by the most
# extreme value of any channel: heart-rate steps spike to 20 sd at a detector glitch, which gave
# the stress BiLSTM 0.105-0.116 per int8 step on every channel. Clipped at 6 sd: 0.047 per step,
# mean |int8 - float| stress probability 0.014 -> 0.011 and agreement 0.985 -> 0.988 on training
# windows held out of calibration (4 sd: worse, 0.983). The LSTM-FCN's IMU inputs reach 8 sd:
# its step goes 0.058 -> 0.047, its agreement and error stay as they were. Larger values
# saturate at the int8 range, on every device.
CALIBRATION_CLIP_SD = 6.0


def convert_int8(keras_model: Any, representative_windows: np.ndarray) -> bytes:
    """Full-integer conversion: int8 weights, activations, input and output."""
    tf, _ = _tensorflow()
    windows = np.asarray(representative_windows, dtype=np.float32)  # (N, T, C), normalised
    if windows.ndim != 3 or len(windows) == 0:
        raise ConvertError(f"representative windows must be [N, T, C], got {windows.shape}")

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for window in windows:
            yield [window[np.newaxis]]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # The MLIR quantizer gives an LSTM whose output feeds a CONCATENATION (LSTM-FCN, BiLSTM)
    # the concat's output scale while the kernel keeps writing with its hidden-state scale:
    # the int8 LSTM output is then off by whole units (measured: mean error 2.5 against a
    # float range of +-1, in LiteRT and TFLM alike). The legacy quantizer keeps them equal.
    converter.experimental_new_quantizer = False
    return _run_converter(converter, "int8")


def convert_float32(keras_model: Any) -> bytes:
    """Plain float32 TFLite of the same model, the baseline for the size ratio."""
    tf, _ = _tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    return _run_converter(converter, "float32")


def calibration_windows(
    normalised_windows: np.ndarray, max_windows: int = DEFAULT_CALIBRATION_WINDOWS, seed: int = 0
) -> np.ndarray:
    """A deterministic subset of (training-subject) windows for calibration, clipped to
    +-`CALIBRATION_CLIP_SD` so that rare spikes do not set the int8 input range."""
    count = len(normalised_windows)
    chosen = np.arange(count)
    if count > max_windows:
        chosen = np.sort(np.random.default_rng(seed).choice(count, size=max_windows, replace=False))
    windows = np.asarray(normalised_windows[chosen], dtype=np.float32)
    return np.clip(windows, -CALIBRATION_CLIP_SD, CALIBRATION_CLIP_SD)


def _run_converter(converter: Any, kind: str) -> bytes:
    try:
        with warnings.catch_warnings(), captured_fd(1), captured_fd(2):
            warnings.simplefilter("ignore")  # "Statistics for quantized inputs ..." is expected
            return bytes(converter.convert())  # the converter prints its settings from C++
    except Exception as exc:  # the converter raises many private types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConvertError(f"{kind} TFLite conversion failed: {first}") from exc


def _tensorflow() -> tuple[Any, Any]:
    from training.keras_backend import import_keras

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return import_keras()
