"""Model architectures: each in its own file, chosen by name."""

from __future__ import annotations

from typing import Any

from training.models.config import EMBEDDING_LAYER, HEAD_LAYERS, ModelConfig, default_config

ARCHITECTURES = ("lstm-fcn", "bilstm")


def build_model(
    config: ModelConfig,
    window_length: int,
    num_channels: int,
    num_classes: int,
    batch_size: int | None = None,
) -> Any:
    """Build the tf_keras model named by `config.arch`; batch 1 for int8 conversion."""
    if config.arch == "lstm-fcn":
        from training.models.lstm_fcn import build_lstm_fcn

        return build_lstm_fcn(config, window_length, num_channels, num_classes, batch_size)
    if config.arch == "bilstm":
        from training.models.bilstm import build_bilstm

        return build_bilstm(config, window_length, num_channels, num_classes, batch_size)
    raise ValueError(f"unknown architecture {config.arch!r}; choose one of {ARCHITECTURES}")


__all__ = [
    "ARCHITECTURES",
    "EMBEDDING_LAYER",
    "HEAD_LAYERS",
    "ModelConfig",
    "build_model",
    "default_config",
]
