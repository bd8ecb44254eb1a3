"""LSTM-FCN (Karim et al. 2017) for multichannel activity windows.

Two branches read the same window: a dimension-shuffled LSTM (each *channel* is a time step, so the
LSTM sees C steps of T features: cheap, and the shape converts to a fused int8 LSTM) and a fully
convolutional branch of three Conv1D-BN-ReLU blocks with global average pooling. Their
concatenation is the `embedding`; the dense `head_0`/`head_1` after it is what devices fine-tune.

The shipped LSTM-FCN dilates its convolutions (2, 8, 32): the receptive field grows from 14
samples (0.28 s) to 111 (2.2 s), a whole repetition of a shoulder exercise, at no cost in
weights. Cross-validated on watch subjects 1-7 (three folds, seeds 0 and 2): 0.841 undilated,
0.852 with (1, 4, 16), 0.860 with (2, 8, 32).
"""

from __future__ import annotations

from typing import Any

from training.keras_backend import import_keras
from training.models.config import EMBEDDING_LAYER, ModelConfig
from training.models.head import attach_head


def build_lstm_fcn(
    config: ModelConfig,
    window_length: int,
    num_channels: int,
    num_classes: int,
    batch_size: int | None = None,
) -> Any:
    """A tf_keras LSTM-FCN taking normalised windows `(batch, time, channels)`."""
    _, keras = import_keras()
    layers = keras.layers
    regulariser = keras.regularizers.l2(config.l2)
    inputs = keras.Input(shape=(window_length, num_channels), batch_size=batch_size, name="window")

    shuffled = layers.Permute((2, 1), name="dimension_shuffle")(inputs)  # (batch, channels, time)
    lstm = layers.LSTM(config.lstm_units, name="lstm")(shuffled)
    lstm = layers.Dropout(config.lstm_dropout, name="lstm_dropout")(lstm)

    conv = inputs
    for index, (filters, kernel, dilation) in enumerate(
        zip(config.conv_filters, config.conv_kernels, config.conv_dilations, strict=True)
    ):
        conv = layers.Conv1D(
            filters,
            kernel,
            padding="same",
            dilation_rate=dilation,
            kernel_regularizer=regulariser,
            name=f"conv_{index}",
        )(conv)
        conv = layers.BatchNormalization(name=f"bn_{index}")(conv)
        conv = layers.ReLU(name=f"relu_{index}")(conv)
    pooled = layers.GlobalAveragePooling1D(name="gap")(conv)

    embedding = layers.Concatenate(name=EMBEDDING_LAYER)([lstm, pooled])
    outputs = attach_head(keras, embedding, config, num_classes)
    return keras.Model(inputs, outputs, name="lstm_fcn")
