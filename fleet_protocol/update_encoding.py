"""How devices encode their updates in a round: value codec, top-k density, zstd.

The aggregator's `--codec` is one of `int8`, `float16`, `float32` or `topk:<density>` (int8
values of the top `density` fraction of each tensor, e.g. `topk:0.05` or `topk:5%`), each
optionally followed by `+zstd`. It travels in the round announcement: `codec` keeps the value
codec every release reads, and `encoding` (absent for a plain codec, so older devices keep
joining int8 rounds) carries the full text. A device that finds no `encoding` sends the plain
codec, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet_protocol.errors import CodecError
from fleet_protocol.tensor_codecs import CODEC_DTYPES

TOPK = "topk"
ZSTD_SUFFIX = "+zstd"
CODEC_CHOICES = f"{', '.join(CODEC_DTYPES)} or {TOPK}:<density>, each optionally +zstd"
_MIN_DENSITY = 1e-4


@dataclass(frozen=True)
class UpdateEncoding:
    """Value codec, fraction of each tensor sent (None: all of it) and envelope compression."""

    codec: str = "int8"
    density: float | None = None
    zstd: bool = False

    @property
    def is_plain(self) -> bool:
        """What every release understands: a dense delta in `codec`, no compression."""
        return self.density is None and not self.zstd

    @property
    def compact(self) -> bool:
        """Whether a sender may use compact sparse indices and zstd (the receiver reads them)."""
        return not self.is_plain

    @property
    def announced(self) -> str | None:
        """The announcement's `encoding` field: None for a plain codec (older devices join)."""
        return None if self.is_plain else self.to_text()

    def to_text(self) -> str:
        """The `--codec` text this encoding parses from (canonical form)."""
        base = self.codec if self.density is None else f"{TOPK}:{self.density:g}"
        return base + (ZSTD_SUFFIX if self.zstd else "")


def parse_update_encoding(text: str) -> UpdateEncoding:
    """Parse `--codec` text; `CodecError` with one line when it is not one of the forms."""
    if not isinstance(text, str):
        raise CodecError(f"codec must be text, got {type(text).__name__}")
    zstd = text.endswith(ZSTD_SUFFIX)
    base = text[: -len(ZSTD_SUFFIX)] if zstd else text
    if base in CODEC_DTYPES:
        return UpdateEncoding(base, None, zstd)
    name, _, value = base.partition(":")
    if name != TOPK or not value:
        raise CodecError(f"unknown codec {text!r}; expected {CODEC_CHOICES}")
    return UpdateEncoding("int8", _density(value, text), zstd)


def _density(value: str, text: str) -> float | None:
    percent = value.endswith("%")
    try:
        number = float(value[:-1] if percent else value)
    except ValueError:
        number = math.nan
    fraction = number / 100 if percent else number
    if not _MIN_DENSITY <= fraction <= 1.0:  # also false for NaN
        raise CodecError(f"top-k density in {text!r} must be in [{_MIN_DENSITY:g}, 1] (or %)")
    return None if fraction == 1.0 else fraction


def announced_encoding(codec: str, encoding: str | None) -> UpdateEncoding:
    """What a round announcement asks for: its `encoding` if present, else the plain codec."""
    return parse_update_encoding(encoding if encoding is not None else codec)
