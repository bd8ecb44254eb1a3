"""Limits that every update and every candidate head must respect (pure, no I/O).

A single well-formed update can still be hostile: a finite delta of 1e38 turns a FedAvg mean
into infinity. So, before a delta touches the strategy, its largest magnitude and its L2 norm
are compared with limits derived from the scale of the round's base head (a device fine-tunes
that head, so an honest delta is of its order), unless the operator set them explicitly. A
candidate head is refused unless it is finite, of sane magnitude, and moved no further from the
base than one bounded update could move it. The same test tells a state file that already holds
a bad head (from an older release) that it must roll back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fleet_protocol.types import Weights

DEFAULT_BOUND_FACTOR = 10.0  # an honest delta stays well under 10x the head's own scale
HEAD_ABS_LIMIT = 1e6  # no classifier head weight is anywhere near this
_SCALE_FLOOR = 1.0  # a fresh (zero or tiny) head still allows unit-sized steps per weight


@dataclass(frozen=True)
class BoundsPolicy:
    """What the operator chose: explicit limits, or a factor of the head's scale."""

    max_norm: float | None = None  # L2 norm of a whole delta
    max_abs: float | None = None  # largest magnitude of any delta element
    factor: float = DEFAULT_BOUND_FACTOR


@dataclass(frozen=True)
class UpdateBounds:
    """The limits in force for one round."""

    max_norm: float
    max_abs: float


def _flat64(weights: Weights) -> np.ndarray:
    return np.concatenate([np.asarray(t, dtype=np.float64).reshape(-1) for t in weights])


def bounds_for_head(base: Weights, policy: BoundsPolicy = BoundsPolicy()) -> UpdateBounds:
    """The round's limits: explicit ones, else `factor` times the base head's scale."""
    flat = _flat64(base)
    finite = flat[np.isfinite(flat)]
    norm = float(np.linalg.norm(finite)) if finite.size else 0.0
    peak = float(np.max(np.abs(finite))) if finite.size else 0.0
    norm_floor = _SCALE_FLOOR * math.sqrt(flat.size)  # as if every weight were unit-sized
    max_norm = policy.max_norm or policy.factor * max(norm, norm_floor)
    max_abs = policy.max_abs or policy.factor * max(peak, _SCALE_FLOOR)
    return UpdateBounds(max_norm=max_norm, max_abs=max_abs)


def update_violation(delta: Weights, bounds: UpdateBounds) -> str | None:
    """Why a delta is out of bounds (one line), or None when it is within them."""
    return flat_violation(_flat64(delta), bounds)


def flat_violation(flat: np.ndarray, bounds: UpdateBounds) -> str | None:
    """`update_violation` of a delta already flattened to one float64 vector."""
    peak = max(float(flat.max()), -float(flat.min())) if flat.size else 0.0  # no |flat| copy
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught just below
        norm = math.sqrt(float(np.dot(flat, flat)))  # what np.linalg.norm does, minus its checks
    if not (math.isfinite(peak) and math.isfinite(norm)):
        return "delta holds NaN or infinity"
    if peak > bounds.max_abs:
        return f"largest delta element {peak:.3g} exceeds {bounds.max_abs:.3g}"
    if norm > bounds.max_norm:
        return f"delta norm {norm:.3g} exceeds {bounds.max_norm:.3g}"
    return None


def head_violation(head: Weights) -> str | None:
    """Why a head may not be stored or served (non-finite, absurd magnitude), or None."""
    flat = _flat64(head)
    if not np.all(np.isfinite(flat)):
        return "non_finite"
    if flat.size and float(np.max(np.abs(flat))) > HEAD_ABS_LIMIT:
        return "out_of_bounds"
    return None


def candidate_violation(candidate: Weights, base: Weights, bounds: UpdateBounds) -> str | None:
    """Why a round's new head is refused, or None: it must be sane and one bounded step away."""
    reason = head_violation(candidate)
    if reason is not None:
        return reason
    step = _flat64(candidate) - _flat64(base)
    too_far = float(np.max(np.abs(step))) > bounds.max_abs if step.size else False
    return "out_of_bounds" if too_far or float(np.linalg.norm(step)) > bounds.max_norm else None
