"""The one local update: the announced `FitConfig` applied to a head on labelled embeddings.

Every path that trains a head calls this, so they cannot drift apart: a device's plain round,
its secure-aggregation round (the delta is then masked), on-device DP (the delta is then clipped
and noised), the aggregator's FLTrust root update, the benches and the simulation's baselines.
FedProx pulls towards the head the update started from, which is the global head of the round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from edge_runtime.fine_tune import FineTuneConfig, fine_tune, weight_delta
from edge_runtime.head import Head
from fleet_protocol.messages import FitConfig
from fleet_protocol.types import Weights

ClassWeights = tuple[float, ...] | Literal["balanced"] | None


@dataclass(frozen=True, eq=False)
class LocalUpdate:
    """`delta = trained - start` per tensor, the examples it saw, its last epoch's loss.

    `weights` is the trained head itself, for baselines that keep it; on-device DP changes
    only the delta that leaves the device.
    """

    delta: Weights
    num_examples: int
    loss: float | None
    weights: Weights

    def metrics(self) -> dict[str, float]:
        """What a device reports next to its update."""
        return {} if self.loss is None else {"loss": self.loss}


def fine_tune_config(
    fit: FitConfig, seed: int, class_weights: ClassWeights = None
) -> FineTuneConfig:
    """The optimiser settings a `FitConfig` announces (an unknown optimizer trains with SGD)."""
    return FineTuneConfig(
        epochs=fit.local_epochs,
        batch_size=fit.batch_size,
        learning_rate=fit.learning_rate,
        optimizer="adam" if fit.optimizer == "adam" else "sgd",
        momentum=fit.momentum,
        l2=fit.l2,
        proximal_mu=fit.proximal_mu,
        class_weights=class_weights,
        seed=seed,
    )


def local_update(
    head: Head,
    fit: FitConfig,
    X: NDArray[np.floating],
    y: NDArray[np.integer],
    seed: int,
    *,
    class_weights: ClassWeights = None,
) -> LocalUpdate:
    """Fine-tune `head` on embeddings X [N, D] with labels y [N]; the head is not changed.

    `class_weights` is for centrally trained baselines only; a round has none.
    """
    config = fine_tune_config(fit, seed, class_weights)
    result = fine_tune(head.weights, head.activations, X, y, config, global_weights=head.weights)
    loss = result.loss_history[-1] if result.loss_history else None
    delta = weight_delta(result.weights, head.weights)
    return LocalUpdate(delta, result.num_examples, loss, result.weights)
