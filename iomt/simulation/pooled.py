"""The pooled row: what one central trainer holding every device's earlier windows would ship.

Pure: embeddings in, a head and its validation out. The central trainer has what a fleet has
(the same int8 backbone, the same pretrained head, the devices' earlier windows and nothing
else) plus one thing a fleet lacks: it can hold whole devices out and see how a recipe carries
over to people it was not trained on. It picks among `central_recipes` by leave-one-device-out
accuracy (`choose_recipe`), then trains the chosen one on every device's windows.

One candidate is the fleet's own procedure, FedAvg over the device partitions with the devices'
`local_update` and round seeds, run centrally. So on the central trainer's validation the chosen
recipe scores at least what federation's procedure does, by construction: that is the sense in
which the row is an upper bound. On new people (the test subjects) it is an estimate, not a
guarantee: a recipe that carries over best to held-out devices can still score below another one
on the test subjects, and the report says which way it went.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from aggregator.strategies.fedavg import FedAvg
from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from edge_runtime.round_core import round_seed
from fleet_protocol.messages import FitConfig
from iomt.simulation.baselines import DeviceData, Split, accuracy, trained_head

PULL = 1.0  # weight decay toward the pretrained head (FedProx's term, run centrally)
KEEP_PRETRAINED = "pretrained head (no training)"


@dataclass(frozen=True)
class Recipe:
    """One way to train the head centrally: `fit` on the pooled windows, or FedAvg `rounds`.

    `fit` None keeps the pretrained head.
    """

    name: str
    fit: FitConfig | None
    rounds: int = 0  # > 0: FedAvg over the device partitions for this many rounds of `fit`


@dataclass(frozen=True)
class PooledResult:
    """The shipped head, its recipe, and every candidate's leave-one-device-out accuracy."""

    head: Head
    recipe: str
    validation: dict[str, float]
    fleet_recipe: str
    pretrained_recipe: str = KEEP_PRETRAINED


def fleet_procedure(fleet: FitConfig, rounds: int) -> Recipe:
    """The fleet's own procedure, as a central trainer would run it."""
    return Recipe(f"fedavg {rounds} rounds (the fleet's procedure)", fleet, rounds=rounds)


def central_recipes(fleet: FitConfig, rounds: int) -> list[Recipe]:
    """The candidates: keep the pretrained head; SGD on the pooled windows for the fleet's passes
    with weight decay toward the pretrained head; the fleet's own procedure.

    Few on purpose. Thirteen candidates (also shares of the passes, a tenth of the step, a
    weaker pull, full-batch steps) let six held-out devices pick a winner by luck: on 20 probe
    fleets the choice then scored 0.757 on new people, these three 0.760 (docs/data.md).
    """
    passes = max(1, rounds * fleet.local_epochs)
    pulled = replace(fleet, local_epochs=passes, proximal_mu=PULL)
    return [
        Recipe(KEEP_PRETRAINED, None),
        Recipe(f"sgd on the pooled windows, {passes} passes, pull {PULL:g} to pretrained", pulled),
        fleet_procedure(fleet, rounds),
    ]


def train(recipe: Recipe, start: Head, devices: list[DeviceData], seed: int) -> Head:
    """`recipe` run from `start` on `devices`' earlier windows."""
    if recipe.fit is None:
        return start
    if recipe.rounds:
        return federated_average(start, devices, recipe.fit, recipe.rounds, seed)
    return trained_head(start, Split.concatenate([d.train for d in devices]), recipe.fit)


def federated_average(
    start: Head, devices: list[DeviceData], fit: FitConfig, rounds: int, seed: int
) -> Head:
    """FedAvg as the fleet runs it (every device, every round, rounds numbered from 1)."""
    strategy, weights = FedAvg(), start.weights
    for round_id in range(1, rounds + 1):
        head = Head(weights, start.activations)
        strategy.begin_round(weights)
        for d in devices:
            update = local_update(head, fit, d.train.X, d.train.y,
                                  round_seed(seed, d.device_id, round_id))  # fmt: skip
            strategy.accumulate(update.delta, update.num_examples, d.device_id)
        weights = strategy.finish_round(weights)
    return Head(weights, start.activations)


def leave_one_device_out(
    recipe: Recipe, start: Head, devices: list[DeviceData], seed: int
) -> float:
    """Mean accuracy on each device's earlier windows of `recipe` trained on the others'."""
    return float(
        np.mean(
            [
                accuracy(train(recipe, start, [o for o in devices if o is not d], seed), d.train)
                for d in devices
            ]
        )
    )


def choose_recipe(
    recipes: list[Recipe], start: Head, devices: list[DeviceData], seed: int
) -> tuple[Recipe, dict[str, float]]:
    """The recipe with the best leave-one-device-out accuracy (the earlier one on a tie)."""
    scores = {r.name: leave_one_device_out(r, start, devices, seed) for r in recipes}
    best = max(recipes, key=lambda r: (scores[r.name], -recipes.index(r)))
    return best, scores


def pooled_head(
    pretrained: Head, devices: list[DeviceData], fleet: FitConfig, rounds: int, seed: int
) -> PooledResult:
    """Choose a recipe on held-out devices, then train it on every device's earlier windows.

    With fewer than two devices there is nothing to hold out: the fleet's procedure is kept.
    """
    recipes = central_recipes(fleet, rounds)
    federated = fleet_procedure(fleet, rounds)
    chosen, scores = federated, dict[str, float]()
    if len(devices) >= 2:
        chosen, scores = choose_recipe(recipes, pretrained, devices, seed)
    head = train(chosen, pretrained, devices, seed)
    return PooledResult(head, chosen.name, scores, federated.name)
