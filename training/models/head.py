"""The dense head both architectures share: what devices fine-tune after the int8 backbone."""

from __future__ import annotations

from typing import Any

from training.models.config import HEAD_LAYERS, ModelConfig


def attach_head(keras: Any, embedding: Any, config: ModelConfig, num_classes: int) -> Any:
    """Dropout, `head_0` (ReLU) and `head_1` (softmax) on top of the embedding tensor."""
    layers = keras.layers
    regulariser = keras.regularizers.l2(config.l2)
    hidden = layers.Dropout(config.head_dropout, name="head_dropout")(embedding)
    hidden = layers.Dense(config.head_units, activation="relu", kernel_regularizer=regulariser,
                          name=HEAD_LAYERS[0])(hidden)  # fmt: skip
    return layers.Dense(num_classes, activation="softmax", name=HEAD_LAYERS[1])(hidden)
