"""Split a trained model at its `embedding` layer: an int8 backbone and a float numpy head.

The backbone (window -> embedding) stays frozen on the device; the head (the Dense layers
`head_0`, `head_1` after it) is what devices fine-tune and the fleet federates, so it ships as
float32 arrays in the `edge_runtime.head.Head` format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convert.errors import ConvertError
from edge_runtime.head import Head

EMBEDDING_LAYER = "embedding"
HEAD_LAYERS = ("head_0", "head_1")


def backbone_model(keras_model: Any) -> Any:
    """The sub-model from the window input to the `embedding` output (same weights)."""
    from training.keras_backend import import_keras

    _, keras = import_keras()
    try:
        embedding = keras_model.get_layer(EMBEDDING_LAYER).output
    except ValueError:
        raise ConvertError(f"model has no layer named {EMBEDDING_LAYER!r}") from None
    return keras.Model(keras_model.inputs, embedding, name="backbone")


def head_from_model(keras_model: Any) -> Head:
    """The float head: kernel/bias of each Dense in `HEAD_LAYERS` and its activation."""
    weights: list[np.ndarray] = []
    activations: list[str] = []
    for name in HEAD_LAYERS:
        try:
            layer = keras_model.get_layer(name)
        except ValueError:
            raise ConvertError(f"model has no head layer named {name!r}") from None
        kernel, bias = layer.get_weights()
        weights += [np.asarray(kernel, np.float32), np.asarray(bias, np.float32)]
        activations.append(_activation_name(layer))
    return Head.from_weights(weights, activations)


def embedding_size(keras_model: Any) -> int:
    """Width of the embedding the head reads."""
    return int(keras_model.get_layer(EMBEDDING_LAYER).output.shape[-1])


def _activation_name(layer: Any) -> str:
    activation = getattr(layer.activation, "__name__", str(layer.activation))
    if activation not in ("relu", "softmax", "linear"):
        raise ConvertError(f"head layer {layer.name} has unsupported activation {activation!r}")
    return activation
