"""Train one model on a window dataset: dense phase with early stopping, then pruning phase.

Reads top to bottom as the recipe: split by subject, normalise with training-subject statistics,
train with augmentation and a cosine learning-rate schedule keeping the best validation weights,
then prune to the target sparsity while fine-tuning, strip the wrappers, and evaluate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.augmentation import AugmentationConfig, augment_windows
from training.datasets.normalisation import fit_normalisation
from training.datasets.window_dataset import WindowDataset
from training.evaluation import ClassificationReport, classification_report
from training.keras_backend import import_keras
from training.models import ModelConfig, build_model
from training.pruning import (
    PruningSchedule,
    measure_sparsity,
    pruning_callbacks,
    strip_pruning,
    wrap_for_pruning,
)
from training.splits import SubjectSplit
from training.weight_averaging import WeightAverage

ProgressCallback = Callable[[str, int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run, recorded in the run directory."""

    model: ModelConfig
    epochs: int = 30
    prune_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    sparsity: float = 0.5
    patience: int = 10
    average_last: int = 10
    select_on_validation: bool = True  # False: refit mode, always keep the tail average
    seed: int = 0
    augmentation: AugmentationConfig | None = field(default_factory=AugmentationConfig)


@dataclass(frozen=True)
class TrainResult:
    """The stripped model and what `metrics.json` needs."""

    model: Any
    history: list[dict[str, float | str]]  # per epoch; `phase` names the fit it belongs to
    val: ClassificationReport
    test: ClassificationReport
    sparsity: float


@dataclass(frozen=True)
class PreparedData:
    """Normalised windows of one split with their labels and subjects."""

    X: np.ndarray  # (windows, time, channels), normalised
    y: np.ndarray
    subject: np.ndarray


def _split(
    dataset: Any, subjects: tuple[int, ...], mean: np.ndarray, std: np.ndarray
) -> PreparedData:
    mask = np.isin(dataset.subject, subjects)
    return PreparedData((dataset.X[mask] - mean) / std, dataset.y[mask], dataset.subject[mask])


def train(
    dataset: WindowDataset,
    split: SubjectSplit,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
) -> tuple[TrainResult, np.ndarray, np.ndarray]:
    """Train, prune and evaluate; returns the result and the normalisation (mean, std)."""
    _, keras = import_keras()
    keras.utils.set_random_seed(config.seed)
    normalisation = fit_normalisation(dataset, split.train_subjects)
    mean, std = normalisation.mean, normalisation.std
    train_data = _split(dataset, split.train_subjects, mean, std)
    val_data = _split(dataset, split.val_subjects, mean, std)
    test_data = _split(dataset, split.test_subjects, mean, std)
    num_classes = len(dataset.labels)
    _, length, channels = dataset.X.shape
    model = build_model(config.model, length, channels, num_classes)
    rng = np.random.default_rng(config.seed)
    augment = _augmenter(config, mean, std, rng, dataset.channels)

    history = _fit_dense(model, train_data, val_data, config, augment, progress)
    sparsity = 0.0
    if config.sparsity > 0:
        model, prune_history = _fit_pruned(model, train_data, val_data, config, augment, progress)
        history += prune_history
        sparsity = measure_sparsity(model)
    val = _report(model, val_data, num_classes)
    test = _report(model, test_data, num_classes)
    return TrainResult(model, history, val, test, sparsity), mean, std


def _augmenter(
    config: TrainConfig,
    mean: np.ndarray,
    std: np.ndarray,
    rng: np.random.Generator,
    channels: tuple[str, ...],
) -> Callable[[np.ndarray], np.ndarray]:
    """Augment normalised windows by going back to raw units, where rotation is meaningful."""
    if config.augmentation is None:
        return lambda windows: windows
    aug = config.augmentation

    def apply(windows: np.ndarray) -> np.ndarray:
        raw = windows * std + mean
        return ((augment_windows(raw, aug, rng, channels) - mean) / std).astype(np.float32)

    return apply


def _compile(model: Any, learning_rate: float) -> None:
    _, keras = import_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _cosine(base: float, epoch: int, epochs: int) -> float:
    return base * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


def _fit_dense(
    model: Any,
    train_data: PreparedData,
    val_data: PreparedData,
    config: TrainConfig,
    augment: Callable[[np.ndarray], np.ndarray],
    progress: ProgressCallback | None,
) -> list[dict[str, float | str]]:
    """Epoch loop with fresh augmentation each epoch.

    Two candidates come out: the weights of the epoch with the lowest validation loss (early
    stopping) and the average of the last `average_last` epochs' weights (a tail average, which
    cuts the large seed-to-seed variance of cross-subject accuracy). Validation loss picks
    between them. Loss, not accuracy: on a few validation subjects accuracy reaches 1.0 within a
    few epochs and then stops early a model that is still improving.
    """
    _compile(model, config.learning_rate)
    rng = np.random.default_rng(config.seed + 1)
    history: list[dict[str, float | str]] = []
    best_loss, best_weights, since_best = math.inf, model.get_weights(), 0
    tail = WeightAverage()
    for epoch in range(config.epochs):
        model.optimizer.learning_rate.assign(_cosine(config.learning_rate, epoch, config.epochs))
        row = _one_epoch(model, train_data, val_data, config, augment, rng, callbacks=[])
        row.update(epoch=epoch, phase="dense")
        history.append(row)
        if progress:
            progress("dense", epoch + 1, config.epochs, row)
        if epoch >= config.epochs - config.average_last:
            tail.add(model.get_weights())
        if not config.select_on_validation:
            continue
        if row["val_loss"] < best_loss:
            best_loss, best_weights, since_best = row["val_loss"], model.get_weights(), 0
        else:
            since_best += 1
            if since_best >= config.patience:
                break
    if config.select_on_validation:
        _keep_better_on_validation(model, best_weights, best_loss, tail, val_data)
    else:
        model.set_weights(tail.mean())
    return history


def _keep_better_on_validation(
    model: Any,
    best_weights: list[np.ndarray],
    best_loss: float,
    tail: WeightAverage,
    val_data: PreparedData,
) -> None:
    if tail.count:
        model.set_weights(tail.mean())
        averaged_loss, _ = model.evaluate(val_data.X, val_data.y, batch_size=256, verbose=0)
        if averaged_loss <= best_loss:
            return
    model.set_weights(best_weights)


def _fit_pruned(
    model: Any,
    train_data: PreparedData,
    val_data: PreparedData,
    config: TrainConfig,
    augment: Callable[[np.ndarray], np.ndarray],
    progress: ProgressCallback | None,
) -> tuple[Any, list[dict[str, float | str]]]:
    """Fine-tune while sparsity ramps up over the first 70% of the phase, then strip.

    Once the masks are final, the stripped weights of each remaining epoch are averaged (the
    zeros stay zeros), as in the dense phase's tail average.
    """
    steps_per_epoch = math.ceil(len(train_data.X) / config.batch_size)
    total = steps_per_epoch * config.prune_epochs
    schedule = PruningSchedule(
        config.sparsity,
        begin_step=0,
        end_step=max(1, int(0.7 * total)),
        frequency=max(1, steps_per_epoch // 4),
    )
    pruned = wrap_for_pruning(model, schedule)
    _compile(pruned, config.learning_rate * 0.3)
    rng = np.random.default_rng(config.seed + 2)
    history: list[dict[str, float | str]] = []
    tail = WeightAverage()
    for epoch in range(config.prune_epochs):
        row = _one_epoch(pruned, train_data, val_data, config, augment, rng, pruning_callbacks())
        row.update(epoch=epoch, phase="prune")
        history.append(row)
        if progress:
            progress("prune", epoch + 1, config.prune_epochs, row)
        if (epoch + 1) * steps_per_epoch > schedule.end_step:  # masks no longer change
            tail.add(strip_pruning(pruned).get_weights())
    stripped = strip_pruning(pruned)
    if tail.count:
        stripped.set_weights(tail.mean())
    return stripped, history


def _one_epoch(
    model: Any,
    train_data: PreparedData,
    val_data: PreparedData,
    config: TrainConfig,
    augment: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    callbacks: list[Any],
) -> dict[str, Any]:
    order = rng.permutation(len(train_data.X))
    fit = model.fit(
        augment(train_data.X[order]),
        train_data.y[order],
        batch_size=config.batch_size,
        epochs=1,
        verbose=0,
        callbacks=callbacks,
    )
    val_loss, val_accuracy = model.evaluate(val_data.X, val_data.y, batch_size=256, verbose=0)
    return {
        "loss": float(fit.history["loss"][0]),
        "accuracy": float(fit.history["accuracy"][0]),
        "val_loss": float(val_loss),
        "val_accuracy": float(val_accuracy),
    }


def predict_classes(model: Any, X: np.ndarray) -> np.ndarray:
    """Top-1 class of each normalised window."""
    return np.argmax(model.predict(X, batch_size=256, verbose=0), axis=1)


def _report(model: Any, data: PreparedData, num_classes: int) -> ClassificationReport:
    return classification_report(data.y, predict_classes(model, data.X), data.subject, num_classes)
