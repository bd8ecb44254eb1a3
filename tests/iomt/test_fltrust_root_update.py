"""FLTrust's server update trains the global head exactly as a device does."""

from __future__ import annotations

import numpy as np

from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from fleet_protocol.messages import FitConfig
from iomt.commands.aggregator_serve import ROOT_SET_SEED, root_set_update


def test_the_fltrust_root_update_equals_a_devices_update_on_the_same_data() -> None:
    # Prepare: the aggregator's announced settings, momentum and FedProx included
    head, X, y = _root_set()
    announced = FitConfig(local_epochs=2, batch_size=8, learning_rate=0.05, momentum=0.9,
                          proximal_mu=0.5, l2=0.01)  # fmt: skip

    # Execute
    server = root_set_update(head.activations, X, y, announced)(head.weights)
    device = local_update(head, announced, X, y, seed=ROOT_SET_SEED)

    # Assert
    assert all(np.array_equal(s, d) for s, d in zip(server, device.delta, strict=True))


def _root_set() -> tuple[Head, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    weights = [rng.normal(0, 0.5, (6, 5)), np.zeros(5), rng.normal(0, 0.5, (5, 3)), np.zeros(3)]
    X = rng.normal(size=(40, 6)).astype(np.float32)
    return Head.from_weights(weights, ("relu", "softmax")), X, rng.integers(0, 3, 40)
