"""BiLSTM for heart-rate stress windows.

A short Conv1D front end smooths and downsamples the heart-rate series so the recurrent part runs
over fewer steps (cheaper on a microcontroller); a bidirectional LSTM reads it both ways and its
final states are the `embedding`. The front end's kernel spans 4 s, a whole breath at rest, so
its filters can tell breathing rates apart before pooling to 1 Hz blurs them: on
simulated-stress (train 1-11, validation 12-15) a 5-sample kernel with 16 filters stayed at
or below 0.56 validation accuracy over its first 8 epochs, 16 samples with 32 filters reached
0.85 in 20, 24 samples 0.83. Converted, the backward direction needs `REVERSE_V2` in TFLM.

Window features beside the LSTM (a band-pass bank, learned or fixed, or a soft arg-max
breathing rate with LF and spread, concatenated into the embedding) were tried and lost to this
plain form on subjects 1-15 of simulated-stress; training on more people (`--refit`) helped
(docs/data.md, third pass).
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
