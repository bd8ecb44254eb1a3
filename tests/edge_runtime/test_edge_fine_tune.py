"""Head fine-tuning: finite-difference gradient check, learning, and parity with tf_keras."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from edge_runtime.errors import FineTuneError
from edge_runtime.fine_tune import (
    FineTuneConfig,
    class_weight_vector,
    fine_tune,
    loss_and_gradients,
    weight_delta,
)
from edge_runtime.head import Head

ACTIVATIONS = ("relu", "softmax")
KERAS_TOLERANCE = 1e-5  # max |w_numpy - w_keras| after 15 steps; measured 2.4e-7 SGD, 1.1e-6 Adam


def _start_head(seed: int = 0, features: int = 6, hidden: int = 5, classes: int = 3) -> list:
    rng = np.random.default_rng(seed)
    return [
        rng.normal(scale=0.5, size=(features, hidden)).astype(np.float32),
        rng.normal(scale=0.1, size=hidden).astype(np.float32),
        rng.normal(scale=0.5, size=(hidden, classes)).astype(np.float32),
        rng.normal(scale=0.1, size=classes).astype(np.float32),
    ]


def _data(seed: int = 1, n: int = 40, features: int = 6, classes: int = 3) -> tuple:
    """Separable-ish blobs: class k is shifted along feature k."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    X = rng.normal(size=(n, features)).astype(np.float32)
    X[np.arange(n), y] += 2.5
    return X, y


def test_gradients_match_finite_differences() -> None:
    # Prepare: every term on (class weights, L2, FedProx) so each gradient is checked
    weights = [w.astype(np.float64) for w in _start_head()]
    global_weights = [w + 0.3 for w in weights]
    X, y = _data(n=7)
    sample_weights = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 0.7])
    config = FineTuneConfig(l2=0.01, proximal_mu=0.5)
    analytic = loss_and_gradients(
        weights, ACTIVATIONS, X, y, sample_weights, config, global_weights
    )
    epsilon = 1e-6
    # Execute / Assert
    for layer, w in enumerate(weights):
        numeric = np.zeros_like(w)
        for index in np.ndindex(w.shape):
            original = w[index]
            w[index] = original + epsilon
            up = loss_and_gradients(
                weights, ACTIVATIONS, X, y, sample_weights, config, global_weights
            )
            w[index] = original - epsilon
            down = loss_and_gradients(
                weights, ACTIVATIONS, X, y, sample_weights, config, global_weights
            )
            w[index] = original
            numeric[index] = (up.loss - down.loss) / (2 * epsilon)
        np.testing.assert_allclose(analytic.gradients[layer], numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fine_tune_lowers_loss_and_keeps_inputs(optimizer: str) -> None:
    # Prepare
    start = _start_head()
    before = [w.copy() for w in start]
    X, y = _data(n=60)
    config = FineTuneConfig(
        epochs=15, batch_size=16, learning_rate=0.05, optimizer=optimizer, momentum=0.9
    )
    # Execute
    result = fine_tune(start, ACTIVATIONS, X, y, config)
    # Assert
    assert result.num_examples == 60
    assert result.loss_history[-1] < 0.6 * result.loss_history[0]
    assert all(w.dtype == np.float32 for w in result.weights)
    for a, b in zip(start, before, strict=True):
        np.testing.assert_array_equal(a, b)
    accuracy = np.mean(Head.from_weights(result.weights, ACTIVATIONS).predict(X) == y)
    assert accuracy > 0.9


def test_same_seed_gives_same_weights() -> None:
    X, y = _data()
    config = FineTuneConfig(epochs=3, batch_size=8, seed=7)
    a = fine_tune(_start_head(), ACTIVATIONS, X, y, config).weights
    b = fine_tune(_start_head(), ACTIVATIONS, X, y, config).weights
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_proximal_term_keeps_weights_closer_to_global() -> None:
    # Prepare
    start = _start_head()
    X, y = _data(n=60)
    free = FineTuneConfig(epochs=10, batch_size=10, learning_rate=0.1)
    # Execute
    loose = fine_tune(start, ACTIVATIONS, X, y, free).weights
    tight = fine_tune(start, ACTIVATIONS, X, y, replace(free, proximal_mu=5.0), start).weights

    # Assert
    def distance(weights: list) -> float:
        return sum(float(np.sum(np.square(d))) for d in weight_delta(weights, start))

    assert distance(tight) < 0.5 * distance(loose)


def test_balanced_class_weights_are_inverse_frequency() -> None:
    y = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(class_weight_vector(y, 3, "balanced"), [4 / 6, 2.0, 0.0])
    np.testing.assert_allclose(class_weight_vector(y, 3, None), [1, 1, 1])
    with pytest.raises(FineTuneError):
        class_weight_vector(y, 3, (1.0, 2.0))


def test_bad_inputs_are_fine_tune_errors() -> None:
    X, y = _data()
    with pytest.raises(FineTuneError, match="no labelled"):
        fine_tune(_start_head(), ACTIVATIONS, X[:0], y[:0], FineTuneConfig())
    with pytest.raises(FineTuneError, match="labels"):
        fine_tune(_start_head(), ACTIVATIONS, X, y + 5, FineTuneConfig())
    with pytest.raises(FineTuneError, match="optimizer"):
        fine_tune(_start_head(), ACTIVATIONS, X, y, FineTuneConfig(optimizer="rmsprop"))  # type: ignore[arg-type]
    with pytest.raises(FineTuneError, match="do not fit"):
        fine_tune(_start_head(), ACTIVATIONS, X[:, :3], y, FineTuneConfig())


def _train_keras(start: list, X: np.ndarray, y: np.ndarray, config: FineTuneConfig) -> list:
    """The same head in tf_keras, same start, same batches in the same order."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    regulariser = tf_keras.regularizers.l2(config.l2) if config.l2 else None
    model = tf_keras.Sequential(
        [
            tf_keras.Input(shape=(start[0].shape[0],)),
            tf_keras.layers.Dense(
                start[0].shape[1], activation="relu", kernel_regularizer=regulariser
            ),
            tf_keras.layers.Dense(
                start[2].shape[1], activation="softmax", kernel_regularizer=regulariser
            ),
        ]
    )
    model.set_weights(start)
    if config.optimizer == "sgd":
        optimizer = tf_keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
    else:
        optimizer = tf_keras.optimizers.Adam(config.learning_rate, epsilon=1e-7)
    model.compile(optimizer=optimizer, loss=tf_keras.losses.SparseCategoricalCrossentropy())
    class_weight = None
    if isinstance(config.class_weights, tuple):
        class_weight = dict(enumerate(config.class_weights))
    tf.random.set_seed(0)
    model.fit(
        X,
        y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=False,
        class_weight=class_weight,
        verbose=0,
    )
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.tf
@pytest.mark.parametrize(
    "config",
    [
        FineTuneConfig(
            epochs=3,
            batch_size=8,
            learning_rate=0.05,
            optimizer="sgd",
            momentum=0.9,
            l2=0.001,
            class_weights=(1.0, 2.0, 0.5),
            shuffle=False,
        ),
        FineTuneConfig(
            epochs=3,
            batch_size=8,
            learning_rate=0.01,
            optimizer="adam",
            l2=0.001,
            class_weights=(1.0, 2.0, 0.5),
            shuffle=False,
        ),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_matches_tf_keras_on_the_same_steps(config: FineTuneConfig) -> None:
    # Prepare: 36 examples, batch 8 -> 5 steps per epoch, 15 steps in all (last batch of 4)
    start = _start_head()
    X, y = _data(n=36)
    # Execute
    ours = fine_tune(start, ACTIVATIONS, X, y, config).weights
    keras = _train_keras(start, X, y, config)
    # Assert
    moved = max(float(np.max(np.abs(k - s))) for k, s in zip(keras, start, strict=True))
    assert moved > 100 * KERAS_TOLERANCE  # the comparison is not trivially between two starts
    for a, b in zip(ours, keras, strict=True):
        np.testing.assert_allclose(a, b, atol=KERAS_TOLERANCE, rtol=0)
