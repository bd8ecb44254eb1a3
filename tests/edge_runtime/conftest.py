"""Session fixtures: a tiny real LSTM converted to full-int8 TFLite by TensorFlow.

TensorFlow runs only here (tests that use these fixtures are marked `tf`); the edge code under
test loads the bytes with LiteRT.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

WINDOW_LENGTH = 16
NUM_CHANNELS = 3
EMBEDDING_SIZE = 8


def build_int8_lstm(seed: int = 0) -> bytes:
    """[1, 16, 3] -> LSTM(8) -> Dense(8, relu) embedding, converted to full int8."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(seed)  # python, numpy and TF: the same weights every run
    inputs = tf_keras.Input(shape=(WINDOW_LENGTH, NUM_CHANNELS), batch_size=1)
    hidden = tf_keras.layers.LSTM(8)(inputs)
    outputs = tf_keras.layers.Dense(EMBEDDING_SIZE, activation="relu", name="embedding")(hidden)
    model = tf_keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    samples = rng.normal(size=(32, WINDOW_LENGTH, NUM_CHANNELS)).astype(np.float32)

    def representative_dataset():  # type: ignore[no-untyped-def]
        for sample in samples:
            yield [sample[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


@pytest.fixture(scope="session")
def int8_lstm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "lstm.int8.tflite"
    path.write_bytes(build_int8_lstm())
    return path
