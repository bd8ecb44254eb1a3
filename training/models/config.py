"""Model configuration shared by the architectures: frozen, serialisable, sized by `--size`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

EMBEDDING_LAYER = "embedding"
HEAD_LAYERS = ("head_0", "head_1")
SIZES = ("pi", "mcu")


@dataclass(frozen=True)
class ModelConfig:
    """Widths of one architecture; `pi` for a Raspberry Pi, `mcu` to fit a 256 KB-RAM board."""

    arch: str
    size: str = "pi"
    lstm_units: int = 8
    conv_filters: tuple[int, int, int] = (128, 256, 128)
    conv_kernels: tuple[int, int, int] = (8, 5, 3)
    conv_dilations: tuple[int, int, int] = (1, 1, 1)
    lstm_dropout: float = 0.8
    head_units: int = 32
    head_dropout: float = 0.3
    l2: float = 1e-4

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys are an error so a typo is not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        for key in ("conv_filters", "conv_kernels", "conv_dilations"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def default_config(arch: str, size: str = "pi") -> ModelConfig:
    """The widths we ship for each architecture and target size."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if arch == "lstm-fcn":
        filters = (128, 256, 128) if size == "pi" else (16, 32, 16)
        return ModelConfig(
            arch=arch, size=size, lstm_units=8, conv_filters=filters, conv_dilations=(2, 8, 32)
        )
    if arch == "bilstm":
        units = 32 if size == "pi" else 12
        return ModelConfig(
            arch=arch,
            size=size,
            lstm_units=units,
            conv_filters=(32, 0, 0),
            conv_kernels=(16, 0, 0),  # 4 s at 4 Hz: a whole breath, before the 1 s pooling
            lstm_dropout=0.2,
            head_units=16,
        )
    raise ValueError(f"unknown architecture {arch!r}; choose lstm-fcn or bilstm")
