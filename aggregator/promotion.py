"""The promotion gate: publish a new head only if it is not worse than the best by a margin.

Pure: it scores heads with the holdout evaluator it is given. A head held back is kept as a
candidate by the core; the round's metrics say why (`held_back`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fleet_protocol.types import Weights


@dataclass(frozen=True)
class Verdict:
    """The promotion gate's finding: accuracy published, of the candidate, and why it waits."""

    published: float | None = None
    candidate: float | None = None
    held_back: str = ""
    best: float | None = None  # best published accuracy, this round's head included
    base: float | None = None  # of the head the round started from (the pretrained one in round 1)


def promotion_verdict(
    evaluate: Callable[[Weights], float],
    base: Weights,
    candidate: Weights | None,
    best: float | None,
    margin: float | None,
) -> Verdict:
    """Holdout accuracy of the base and the candidate, and whether the candidate may go out."""
    base_accuracy = float(evaluate(base))
    best = max(best or base_accuracy, base_accuracy)
    if candidate is None:
        return Verdict(published=base_accuracy, best=best, base=base_accuracy)
    accuracy = float(evaluate(candidate))
    if margin is None or accuracy >= best - margin:
        return Verdict(accuracy, accuracy, best=max(best, accuracy), base=base_accuracy)
    why = (f"holdout accuracy {accuracy:.4f} is more than {margin:g} below the best"
           f" {best:.4f}")  # fmt: skip
    return Verdict(base_accuracy, accuracy, held_back=why, best=best, base=base_accuracy)
