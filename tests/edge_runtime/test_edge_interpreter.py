"""Int8Model on a real converted LSTM, run by LiteRT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.errors import InferenceError, ModelLoadError
from edge_runtime.interpreter import BACKEND_NAME, Int8Model, Quantisation

WINDOW_LENGTH, NUM_CHANNELS, EMBEDDING_SIZE = 16, 3, 8  # the conftest model


def test_backend_is_litert_when_installed() -> None:
    assert BACKEND_NAME == "ai_edge_litert"


def test_quantisation_round_trip_within_half_a_step() -> None:
    # Prepare
    quantisation = Quantisation(scale=0.05, zero_point=-3, dtype=np.int8)
    values = np.array([-1.0, 0.0, 0.33, 2.0], dtype=np.float32)
    # Execute
    restored = quantisation.dequantise(quantisation.quantise(values))
    # Assert
    assert np.max(np.abs(restored - values)) <= 0.025 + 1e-6


def test_quantisation_saturates_at_int8_limits() -> None:
    quantisation = Quantisation(scale=0.01, zero_point=0, dtype=np.int8)
    assert quantisation.quantise(np.array([100.0, -100.0])).tolist() == [127, -128]


@pytest.mark.tf
def test_model_reports_int8_shapes_and_quantisation(int8_lstm_path: Path) -> None:
    model = Int8Model.from_path(int8_lstm_path)
    assert model.input_shape == (1, WINDOW_LENGTH, NUM_CHANNELS)
    assert model.window_shape == (WINDOW_LENGTH, NUM_CHANNELS)
    assert model.output_size == EMBEDDING_SIZE
    assert model.input_quantisation.dtype == np.int8
    assert model.input_quantisation.scale > 0
    assert model.output_quantisation.scale > 0


@pytest.mark.tf
def test_identical_windows_give_identical_outputs_after_other_windows(int8_lstm_path: Path) -> None:
    # Prepare
    model = Int8Model.from_path(int8_lstm_path)
    rng = np.random.default_rng(1)
    window_a, window_b = rng.normal(size=(2, WINDOW_LENGTH, NUM_CHANNELS)).astype(np.float32)
    # Execute
    first = model.run(window_a)
    model.run(window_b)
    model.run(window_b)
    again = model.run(window_a)
    # Assert
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)


@pytest.mark.tf
def test_run_batch_matches_run(int8_lstm_path: Path) -> None:
    model = Int8Model.from_path(int8_lstm_path, num_threads=2)
    windows = np.random.default_rng(2).normal(size=(4, WINDOW_LENGTH, NUM_CHANNELS))
    batch = model.run_batch(windows)
    assert batch.shape == (4, EMBEDDING_SIZE)
    np.testing.assert_array_equal(batch[2], model.run(windows[2]))
    assert model.run_batch(np.zeros((0, WINDOW_LENGTH, NUM_CHANNELS))).shape == (0, EMBEDDING_SIZE)


@pytest.mark.tf
def test_wrong_window_shape_is_one_line_inference_error(int8_lstm_path: Path) -> None:
    model = Int8Model.from_path(int8_lstm_path)
    with pytest.raises(InferenceError, match="window shape") as info:
        model.run(np.zeros((WINDOW_LENGTH + 1, NUM_CHANNELS)))
    assert "\n" not in str(info.value)


def test_corrupt_model_is_one_line_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"TFL3 this is not a flatbuffer" * 10)
    with pytest.raises(ModelLoadError) as info:
        Int8Model.from_path(path)
    assert "\n" not in str(info.value)


def test_missing_and_empty_model_files_are_model_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot read"):
        Int8Model.from_path(tmp_path / "absent.tflite")
    with pytest.raises(ModelLoadError, match="empty"):
        Int8Model.from_bytes(b"")


@pytest.mark.tf
def test_converted_lstm_keeps_state_without_reset(int8_lstm_path: Path) -> None:
    """Why `run` resets: the raw interpreter drifts when the same window is invoked twice."""
    # Prepare
    model = Int8Model.from_path(int8_lstm_path)
    interpreter = model.interpreter
    index_in = interpreter.get_input_details()[0]["index"]
    index_out = interpreter.get_output_details()[0]["index"]
    window = np.random.default_rng(3).normal(size=(1, WINDOW_LENGTH, NUM_CHANNELS))
    quantised = model.input_quantisation.quantise(window)
    # Execute
    outputs = []
    for _ in range(2):
        interpreter.set_tensor(index_in, quantised)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(index_out).copy())
    # Assert
    assert not np.array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(model.run(window[0]), model.run(window[0]))
