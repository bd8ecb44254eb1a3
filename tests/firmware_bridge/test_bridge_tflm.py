"""The emulated MCU runs a real int8 model in TFLM and agrees with LiteRT on every window."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_model import EmulatorModel, TflmModel
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.errors import BridgeError
from firmware_bridge.faults import FaultConfig
from firmware_bridge.host_driver import HostDriver
from firmware_bridge.protocol.reliability import RetryPolicy
from firmware_bridge.transport import PtyEndpoint, memory_link
from hardware.board_profiles import get_board

pytestmark = pytest.mark.tf


def litert_scores(model: bytes, window: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], window[np.newaxis])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1)


def assert_same_result(scores: np.ndarray, expected: np.ndarray) -> None:
    """TFLM and LiteRT kernels may round differently: within one int8 step, same class
    whenever LiteRT's top two classes are more than one step apart."""
    np.testing.assert_allclose(scores.astype(int), expected.astype(int), atol=1)
    top_two = np.sort(expected.astype(int))[-2:]
    if top_two[1] - top_two[0] > 1:
        assert int(np.argmax(scores)) == int(np.argmax(expected))


def test_tflm_equals_litert_on_int8_windows(tiny_model: bytes) -> None:
    # Prepare
    runtime = TflmModel(tiny_model, arena_bytes=get_board("nano33ble").model_ram_budget)
    windows = np.random.default_rng(0).normal(size=(20, 16, 3)).astype(np.float32)
    # Execute / Assert
    assert runtime.input_shape == (16, 3) and runtime.input_dtype == np.int8
    for window in windows:
        quantised = runtime.quantise(window)
        scores, _ = runtime.run(quantised)
        assert_same_result(scores, litert_scores(tiny_model, quantised))


def test_arena_too_small_is_a_clear_error(tiny_model: bytes) -> None:
    with pytest.raises(BridgeError, match="TFLM cannot load the model in 512 B"):
        TflmModel(tiny_model, arena_bytes=512)


def test_emulated_mcu_inference_matches_litert(tiny_model: bytes) -> None:
    board = get_board("nano33ble")
    mcu = EmulatedMcu(board, EmulatorModel(tiny_model))
    runtime = TflmModel(tiny_model, board.model_ram_budget)
    host_end, device_end = memory_link()
    windows = np.random.default_rng(1).normal(size=(10, 16, 3)).astype(np.float32)
    with EmulatorService(mcu, device_end), HostDriver(host_end) as driver:
        results = [driver.infer(window) for window in windows]
    for window, result in zip(windows, results, strict=True):
        expected = litert_scores(tiny_model, runtime.quantise(window))
        assert_same_result(result.scores, expected)
        assert result.predicted_class == int(np.argmax(result.scores))


@pytest.mark.integration
def test_upload_real_model_over_faulty_pty_then_infer(tiny_model: bytes) -> None:
    mcu = EmulatedMcu(get_board("nano33ble"))
    endpoint = PtyEndpoint()
    faults = FaultConfig(bitflip=0.01, drop=0.01, seed=3)
    window = np.zeros((16, 3), np.int8)
    with (
        EmulatorService(mcu, endpoint, faults),
        HostDriver.open(endpoint.path, policy=RetryPolicy(timeout_s=0.1)) as driver,
    ):
        assert not driver.info().has_model
        driver.upload_model(tiny_model, chunk_size=256)
        result = driver.infer(window)
    assert_same_result(result.scores, litert_scores(tiny_model, window))


def test_lstm_state_is_reset_before_every_window(tiny_lstm_model: bytes) -> None:
    # Prepare
    runtime = TflmModel(tiny_lstm_model, get_board("nano33ble").model_ram_budget)
    rng = np.random.default_rng(0)
    first, other = (runtime.quantise(rng.normal(size=(16, 3)).astype(np.float32)) for _ in "ab")
    # Execute
    before, _ = runtime.run(first)
    runtime.run(other)
    after, _ = runtime.run(first)
    # Assert: the same window gives the same answer whatever ran before, as in LiteRT
    np.testing.assert_array_equal(before, after)
    assert_same_result(before, litert_scores(tiny_lstm_model, first))
