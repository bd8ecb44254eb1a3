"""Fine-tune the numpy head on local labelled embeddings (pure: values in, values out).

Loss per batch, matching Keras so the two can be compared step by step:

    mean_i( class_weight[y_i] * CE(softmax(logits_i), y_i) )       (divided by batch size)
    + l2 * sum_i ||kernel_i||^2                                    (Keras `l2(l2)` on kernels)
    + proximal_mu / 2 * ||w - w_global||^2                         (FedProx, all weights)

Batches are shuffled each epoch by `fleet_protocol.portable_rng` from `seed`, the stream the
firmware's trainer (`firmware/core/iomt_head_train.c`) draws too.

Optimisers follow tf_keras: SGD `v = momentum * v - lr * g; w += v`, and Adam with
beta_1=0.9, beta_2=0.999, epsilon=1e-7 and bias correction folded into the step size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from edge_runtime.errors import FineTuneError
from edge_runtime.head import Weights, apply_activation, softmax, validate_head
from fleet_protocol.portable_rng import PortableRng

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-7


@dataclass(frozen=True)
class FineTuneConfig:
    """How to fine-tune; `class_weights` is per class index, "balanced", or None (all 1)."""

    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.01
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.0
    l2: float = 0.0
    proximal_mu: float = 0.0
    class_weights: tuple[float, ...] | Literal["balanced"] | None = None
    seed: int = 0
    shuffle: bool = True


@dataclass(frozen=True)
class FineTuneResult:
    """New head weights, mean training loss per epoch, and examples used (for FedAvg)."""

    weights: Weights
    loss_history: list[float] = field(default_factory=list)
    num_examples: int = 0


@dataclass(frozen=True)
class LossAndGradients:
    loss: float
    gradients: list[NDArray[np.float64]]


def fine_tune(
    head_weights: Sequence[NDArray[np.floating]],
    activations: Sequence[str],
    X: NDArray[np.floating],
    y: NDArray[np.integer],
    config: FineTuneConfig,
    global_weights: Sequence[NDArray[np.floating]] | None = None,
) -> FineTuneResult:
    """Train a copy of the head on embeddings X [N, D] with labels y [N]; inputs untouched."""
    weights = [np.array(w, dtype=np.float64) for w in head_weights]
    features, labels = _check_inputs(weights, activations, X, y, config)
    anchor = _proximal_anchor(weights, global_weights, config)
    per_class = class_weight_vector(labels, int(weights[-1].shape[0]), config.class_weights)
    optimiser = _Optimiser(config, weights)
    rng = PortableRng(config.seed)  # the firmware shuffles with the same stream
    history = []
    for _ in range(config.epochs):
        batch_losses = []
        for batch in _batches(len(labels), config, rng):
            result = loss_and_gradients(
                weights,
                activations,
                features[batch],
                labels[batch],
                per_class[labels[batch]],
                config,
                anchor,
            )
            optimiser.step(weights, result.gradients)
            batch_losses.append(result.loss)
        history.append(float(np.mean(batch_losses)))
    new_weights = [w.astype(np.float32) for w in weights]
    return FineTuneResult(new_weights, history, len(labels))


def loss_and_gradients(
    weights: Sequence[NDArray[np.floating]],
    activations: Sequence[str],
    X: NDArray[np.floating],
    y: NDArray[np.integer],
    sample_weights: NDArray[np.floating],
    config: FineTuneConfig,
    global_weights: Sequence[NDArray[np.floating]] | None = None,
) -> LossAndGradients:
    """Loss of one batch and its gradient w.r.t. every weight (the last layer is read as logits)."""
    inputs, pre_activations = _forward_cache(weights, activations, X)
    logits = pre_activations[-1]  # (batch, classes)
    batch = logits.shape[0]
    probs = softmax(logits)
    picked = np.clip(probs[np.arange(batch), y], 1e-12, 1.0)
    loss = float(np.sum(sample_weights * -np.log(picked)) / batch)
    delta = probs.copy()
    delta[np.arange(batch), y] -= 1.0
    delta *= (sample_weights / batch)[:, None]
    gradients = _backward(weights, activations, inputs, pre_activations, delta)
    loss += _add_regularisers(weights, gradients, config, global_weights)
    return LossAndGradients(loss, gradients)


def class_weight_vector(
    y: NDArray[np.integer], num_classes: int, class_weights: tuple[float, ...] | str | None
) -> NDArray[np.float64]:
    """Per-class weight [K]: ones, the given tuple, or balanced = N / (K_present * count_k)."""
    if class_weights is None:
        return np.ones(num_classes)
    if class_weights == "balanced":
        counts = np.bincount(y, minlength=num_classes).astype(np.float64)
        present = max(int(np.count_nonzero(counts)), 1)
        return np.where(counts > 0, len(y) / (present * np.maximum(counts, 1.0)), 0.0)
    if isinstance(class_weights, str) or len(class_weights) != num_classes:
        raise FineTuneError(f"class_weights must be 'balanced' or {num_classes} numbers")
    return np.asarray(class_weights, dtype=np.float64)


def weight_delta(
    new: Sequence[NDArray[np.floating]], base: Sequence[NDArray[np.floating]]
) -> Weights:
    """new - base, layer by layer, float32 (what a device sends)."""
    return [
        (np.asarray(n, np.float64) - np.asarray(b, np.float64)).astype(np.float32)
        for n, b in zip(new, base, strict=True)
    ]


def _forward_cache(
    weights: Sequence[NDArray[np.floating]], activations: Sequence[str], X: NDArray[np.floating]
) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """Inputs and pre-activations of every layer; the last pre-activation is the logits."""
    h = np.asarray(X, dtype=np.float64)
    inputs, pre_activations = [], []
    for layer, name in enumerate(activations):
        inputs.append(h)
        z = h @ weights[2 * layer] + weights[2 * layer + 1]
        pre_activations.append(z)
        if layer < len(activations) - 1:
            h = apply_activation(name, z)
    return inputs, pre_activations


def _backward(
    weights: Sequence[NDArray[np.floating]],
    activations: Sequence[str],
    inputs: list[NDArray[np.float64]],
    pre_activations: list[NDArray[np.float64]],
    delta: NDArray[np.float64],
) -> list[NDArray[np.float64]]:
    gradients: list[NDArray[np.float64]] = [np.zeros(0)] * len(weights)
    for layer in reversed(range(len(activations))):
        gradients[2 * layer] = inputs[layer].T @ delta
        gradients[2 * layer + 1] = delta.sum(axis=0)
        if layer == 0:
            break
        delta = delta @ np.asarray(weights[2 * layer]).T
        if activations[layer - 1] == "relu":
            delta = delta * (pre_activations[layer - 1] > 0)
        elif activations[layer - 1] != "linear":
            raise FineTuneError(f"hidden activation {activations[layer - 1]!r} is not trainable")
    return gradients


def _add_regularisers(
    weights: Sequence[NDArray[np.floating]],
    gradients: list[NDArray[np.float64]],
    config: FineTuneConfig,
    global_weights: Sequence[NDArray[np.floating]] | None,
) -> float:
    """Add L2 (kernels) and FedProx terms to `gradients` in place; return their loss."""
    extra = 0.0
    if config.l2:
        for i in range(0, len(weights), 2):
            extra += config.l2 * float(np.sum(np.square(weights[i])))
            gradients[i] = gradients[i] + 2.0 * config.l2 * weights[i]
    if config.proximal_mu and global_weights is not None:
        for i, (w, anchor) in enumerate(zip(weights, global_weights, strict=True)):
            diff = w - anchor
            extra += 0.5 * config.proximal_mu * float(np.sum(np.square(diff)))
            gradients[i] = gradients[i] + config.proximal_mu * diff
    return extra


class _Optimiser:
    """SGD with momentum or Adam, updating float64 weights in place like tf_keras does."""

    def __init__(self, config: FineTuneConfig, weights: Sequence[NDArray[np.float64]]) -> None:
        self.config = config
        self.step_count = 0
        self.first = [np.zeros_like(w) for w in weights]
        self.second = [np.zeros_like(w) for w in weights]

    def step(
        self, weights: list[NDArray[np.float64]], gradients: list[NDArray[np.float64]]
    ) -> None:
        self.step_count += 1
        lr = self.config.learning_rate
        if self.config.optimizer == "sgd":
            for i, g in enumerate(gradients):
                if self.config.momentum:
                    self.first[i] = self.config.momentum * self.first[i] - lr * g
                    weights[i] += self.first[i]
                else:
                    weights[i] -= lr * g
            return
        t = self.step_count
        step_size = lr * np.sqrt(1.0 - ADAM_BETA_2**t) / (1.0 - ADAM_BETA_1**t)
        for i, g in enumerate(gradients):
            self.first[i] = ADAM_BETA_1 * self.first[i] + (1.0 - ADAM_BETA_1) * g
            self.second[i] = ADAM_BETA_2 * self.second[i] + (1.0 - ADAM_BETA_2) * np.square(g)
            weights[i] -= step_size * self.first[i] / (np.sqrt(self.second[i]) + ADAM_EPSILON)


def _batches(num_examples: int, config: FineTuneConfig, rng: PortableRng) -> list[NDArray[np.intp]]:
    order = rng.permutation(num_examples) if config.shuffle else np.arange(num_examples)
    return [order[i : i + config.batch_size] for i in range(0, num_examples, config.batch_size)]


def _check_inputs(
    weights: Sequence[NDArray[np.floating[Any]]],
    activations: Sequence[str],
    X: NDArray[np.floating],
    y: NDArray[np.integer],
    config: FineTuneConfig,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    validate_head(weights, activations)
    if activations[-1] not in ("softmax", "linear"):
        raise FineTuneError(f"last activation must be softmax or linear, not {activations[-1]!r}")
    if config.optimizer not in ("sgd", "adam"):
        raise FineTuneError(f"optimizer must be 'sgd' or 'adam', not {config.optimizer!r}")
    if config.epochs < 0 or config.batch_size < 1 or config.learning_rate <= 0:
        raise FineTuneError("epochs >= 0, batch_size >= 1 and learning_rate > 0 are required")
    features = np.asarray(X, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    if (
        features.ndim != 2
        or features.shape[1] != weights[0].shape[0]
        or len(labels) != len(features)
    ):
        raise FineTuneError(
            f"X {features.shape} / y {labels.shape} do not fit a head of input"
            f" {weights[0].shape[0]}"
        )
    if len(labels) == 0:
        raise FineTuneError("no labelled examples to fine-tune on")
    num_classes = weights[-1].shape[0]
    if labels.min() < 0 or labels.max() >= num_classes:
        raise FineTuneError(f"labels must be in [0, {num_classes})")
    return features, labels


def _proximal_anchor(
    weights: Sequence[NDArray[np.floating[Any]]],
    global_weights: Sequence[NDArray[np.floating]] | None,
    config: FineTuneConfig,
) -> list[NDArray[np.float64]] | None:
    """FedProx pulls towards the global head; by default that is the starting head."""
    if not config.proximal_mu:
        return None
    source = global_weights if global_weights is not None else weights
    return [np.array(w, dtype=np.float64) for w in source]
