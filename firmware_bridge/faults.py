"""Seeded line faults for the emulated MCU: bit flips, dropped and truncated frames, resets.

Rates are per frame: `bitflip=0.01` flips one random bit in 1% of frames. Pure logic with an
explicit seed, so a faulty run can be replayed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from firmware_bridge.errors import BridgeError

BAD_FAULT_SPEC = "bad --fault {spec!r}: use NAME=RATE[,NAME=RATE] with NAME in {names}, 0<=RATE<=1"


@dataclass(frozen=True)
class FaultConfig:
    """Per-frame probabilities of each fault, and the seed of their random draws."""

    bitflip: float = 0.0
    drop: float = 0.0
    truncate: float = 0.0
    reset: float = 0.0
    seed: int = 0

    @property
    def any(self) -> bool:
        """True when at least one fault can happen."""
        return any((self.bitflip, self.drop, self.truncate, self.reset))


def parse_fault_spec(spec: str, seed: int = 0) -> FaultConfig:
    """`"bitflip=0.01,drop=0.01"` -> FaultConfig; a bad spec is a `BridgeError`."""
    names = [f.name for f in fields(FaultConfig) if f.name != "seed"]
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        try:
            rate = float(value)
        except ValueError:
            raise BridgeError(BAD_FAULT_SPEC.format(spec=spec, names=names)) from None
        if name not in names or not 0.0 <= rate <= 1.0:
            raise BridgeError(BAD_FAULT_SPEC.format(spec=spec, names=names))
        rates[name] = rate
    return FaultConfig(seed=seed, **rates)


@dataclass
class FaultStats:
    """How many of each fault were injected."""

    bitflips: int = 0
    drops: int = 0
    truncations: int = 0
    resets: int = 0


class FaultInjector:
    """Damages encoded frames (delimiter included) according to a `FaultConfig`."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.stats = FaultStats()
        self._rng = np.random.default_rng(config.seed)

    def damage(self, wire: bytes) -> bytes:
        """The bytes that actually reach the other side (may be empty)."""
        if not self.config.any or not wire:
            return wire
        if self._chance(self.config.drop):
            self.stats.drops += 1
            return b""
        if self._chance(self.config.truncate) and len(wire) > 2:
            self.stats.truncations += 1
            cut = int(self._rng.integers(1, len(wire) - 1))
            wire = wire[:cut] + wire[-1:]
        if self._chance(self.config.bitflip):
            self.stats.bitflips += 1
            wire = self._flip_bit(wire)
        return wire

    def should_reset(self) -> bool:
        """True when the device should reboot now."""
        if self._chance(self.config.reset):
            self.stats.resets += 1
            return True
        return False

    def _chance(self, rate: float) -> bool:
        return rate > 0.0 and bool(self._rng.random() < rate)

    def _flip_bit(self, wire: bytes) -> bytes:
        data = bytearray(wire)
        position = int(self._rng.integers(0, max(1, len(data) - 1)))  # keep the delimiter
        data[position] ^= 1 << int(self._rng.integers(0, 8))
        return bytes(data)
