"""BiLSTM for heart-rate stress windows.

A short Conv1D front end smooths and downsamples the heart-rate series so the recurrent part runs
over fewer steps (cheaper on a microcontroller); a bidirectional LSTM reads it both ways and its
final states are the `embedding`. Converted, the backward direction needs `REVERSE_V2` in TFLM.
"""

from __future__ import annotations

from typing import Any

from training.keras_backend import import_keras
from training.models.config import EMBEDDING_LAYER, ModelConfig
from training.models.head import attach_head

_DOWNSAMPLE = 4


def build_bilstm(
    config: ModelConfig,
    window_length: int,
    num_channels: int,
    num_classes: int,
    batch_size: int | None = None,
) -> Any:
    """A tf_keras BiLSTM taking normalised windows `(batch, time, channels)`."""
    _, keras = import_keras()
    layers = keras.layers
    regulariser = keras.regularizers.l2(config.l2)
    inputs = keras.Input(shape=(window_length, num_channels), batch_size=batch_size, name="window")

    features = layers.Conv1D(
        config.conv_filters[0],
        config.conv_kernels[0],
        padding="same",
        activation="relu",
        kernel_regularizer=regulariser,
        name="conv_0",
    )(inputs)
    features = layers.AveragePooling1D(_DOWNSAMPLE, name="downsample")(features)
    features = layers.Dropout(config.lstm_dropout, name="lstm_dropout")(features)
    embedding = layers.Bidirectional(layers.LSTM(config.lstm_units), name=EMBEDDING_LAYER)(features)

    outputs = attach_head(keras, embedding, config, num_classes)
    return keras.Model(inputs, outputs, name="bilstm")
