"""Server aggregation strategies and their registry (`make_strategy("fedavg")`)."""

from __future__ import annotations

from typing import Any

from aggregator.strategies.base import HOLDS_ALL_UPDATES, HOLDS_STREAMING, Strategy
from aggregator.strategies.fedavg import FedAvg
from aggregator.strategies.fedopt import FedAdam, FedYogi
from aggregator.strategies.fedprox import FedProx
from aggregator.strategies.fltrust import FLTrust
from aggregator.strategies.krum import Krum, MultiKrum
from aggregator.strategies.median import FedMedian
from aggregator.strategies.trimmed_mean import TrimmedMean
from fleet_protocol.errors import StrategyConfigError

STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "median": FedMedian,
    "trimmed-mean": TrimmedMean,
    "krum": Krum,
    "multi-krum": MultiKrum,
    "fltrust": FLTrust,
}


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by registry name; options go to its constructor."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise StrategyConfigError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    try:
        return cls(**options)
    except TypeError as error:
        raise StrategyConfigError(f"bad options for strategy {name!r}: {error}") from None


__all__ = [
    "HOLDS_ALL_UPDATES",
    "HOLDS_STREAMING",
    "STRATEGIES",
    "FLTrust",
    "FedAdam",
    "FedAvg",
    "FedMedian",
    "FedProx",
    "FedYogi",
    "Krum",
    "MultiKrum",
    "Strategy",
    "TrimmedMean",
    "make_strategy",
]
