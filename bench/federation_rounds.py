"""Federated rounds on the head task, in process, with the real codecs and strategies.

Every client delta goes through what a device and the aggregator really run:
`edge_runtime.local_update` -> top-k with error feedback (`edge_runtime.sparse_uplink`, for a
`topk:` codec) -> `ModelUpdate` -> `encode_message(codec)`, signed -> bytes ->
`decode_message` -> `Strategy.accumulate`. Only the MQTT hop is left out (bytes are bytes).
Each new head is published as the aggregator does (`aggregator.model_patches`): the signed full
head, and the patch against its parent when smaller; what a device holding the parent
downloads is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from aggregator.model_patches import smaller_patch
from aggregator.round_memory import StoredVersion
from aggregator.strategies import Strategy, make_strategy
from edge_runtime.device_loop import POISON_SCALE
from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from edge_runtime.sparse_uplink import sparsify_delta
from fleet_protocol.messages import FitConfig, GlobalModel, ModelUpdate
from fleet_protocol.signing import private_key_from_bytes
from fleet_protocol.types import Weights
from fleet_protocol.update_encoding import parse_update_encoding
from fleet_protocol.wire import decode_message, encode_message, message_sha256

FLEET = "bench"
ROOT_SET_SIZE = 100  # windows of public subjects the server holds for FLTrust
DEVICE_KEY = private_key_from_bytes(bytes(range(32)))  # signs every update, as a device does


@dataclass(frozen=True)
class HeadTask:
    """Embeddings [N, D], labels [N], subject [N] and who plays which part."""

    embeddings: NDArray[np.float32]
    labels: NDArray[np.int64]
    subjects: NDArray[np.int64]
    device_subjects: tuple[int, ...]
    test_subjects: tuple[int, ...]
    public_subjects: tuple[int, ...]
    head: Head

    def rows_of(self, subjects: tuple[int, ...]) -> NDArray[np.int64]:
        return np.flatnonzero(np.isin(self.subjects, subjects))

    def accuracy(self, weights: Weights) -> float:
        """Accuracy of a head on the test subjects' windows."""
        test = self.rows_of(self.test_subjects)
        head = Head.from_weights(weights, self.head.activations)
        return float(np.mean(head.predict(self.embeddings[test]) == self.labels[test]))


@dataclass(frozen=True)
class RoundsConfig:
    """One federated run: strategy, codec (`--codec` text, e.g. `topk:0.05+zstd`), rounds,
    local training, seed, poisoned clients."""

    strategy: str
    codec: str
    rounds: int
    fit: FitConfig
    seed: int
    poisoned: frozenset[int] = frozenset()


def split_clients(task: HeadTask, num_clients: int, seed: int) -> list[NDArray[np.int64]]:
    """Rows of each client: client i takes a share of device subject i mod S's windows."""
    rng = np.random.default_rng(seed)
    subjects = task.device_subjects
    assigned: dict[int, NDArray[np.int64]] = {}
    for s_index, subject in enumerate(subjects):
        owners = list(range(s_index, num_clients, len(subjects)))
        rows = rng.permutation(task.rows_of((subject,)))
        for owner, part in zip(owners, np.array_split(rows, max(len(owners), 1)), strict=False):
            assigned[owner] = part
    return [assigned[i] for i in range(num_clients)]


def root_set(task: HeadTask, seed: int) -> NDArray[np.int64]:
    """The server's small clean set for FLTrust, drawn from the public (pretraining) subjects."""
    rows = task.rows_of(task.public_subjects)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, size=min(ROOT_SET_SIZE, len(rows)), replace=False))


@dataclass(frozen=True)
class RoundsOutcome:
    """The final global head, its test accuracy, the size of every signed update sent, and
    per round the bytes of the full new head and of what a device holding its parent fetches
    (the patch when smaller, else the full head)."""

    weights: Weights
    accuracy: float
    update_bytes: tuple[int, ...] = ()
    head_bytes: tuple[int, ...] = ()
    downlink_bytes: tuple[int, ...] = ()


def run_rounds(
    task: HeadTask, clients: list[NDArray[np.int64]], config: RoundsConfig
) -> RoundsOutcome:
    """FedAvg-style rounds from the task's head; the final global head and its accuracy."""
    weights = [np.array(w, dtype=np.float32) for w in task.head.weights]
    activations = task.head.activations
    strategy = _strategy(task, config)
    codec_rng = np.random.default_rng(config.seed)
    shapes = [tuple(w.shape) for w in weights]
    encoding = parse_update_encoding(config.codec)
    residuals: list[Weights | None] = [None] * len(clients)  # each device's top-k leftovers
    sizes: list[int] = []
    downlinks: list[tuple[int, int]] = []
    for round_id in range(config.rounds):
        strategy.begin_round(weights)
        for index, rows in enumerate(clients):
            seed = config.seed * 100_003 + round_id * 1000 + index
            delta = local_update(Head(weights, activations), config.fit, task.embeddings[rows],
                                 task.labels[rows], seed).delta  # fmt: skip
            if index in config.poisoned:
                delta = [(d * np.float32(POISON_SCALE)).astype(np.float32) for d in delta]
            sparse = sparsify_delta(delta, encoding, residuals[index])
            residuals[index] = sparse.residual
            update = _update(round_id, index, len(rows), sparse.sent)
            payload = encode_message(update, codec=encoding.codec, signing_key=DEVICE_KEY,
                                     rng=codec_rng, compact=encoding.compact,
                                     zstd=encoding.zstd)  # fmt: skip
            sizes.append(len(payload))
            decoded = decode_message(payload, expected_type=ModelUpdate, expected_shapes=shapes)
            assert isinstance(decoded, ModelUpdate)
            strategy.accumulate(decoded.delta, decoded.num_examples, decoded.device_id)
        new = strategy.finish_round(weights)
        downlinks.append(_downlink(round_id, weights, new))
        weights = new
    heads, fetched = zip(*downlinks, strict=True) if downlinks else ((), ())
    return RoundsOutcome(weights, task.accuracy(weights), tuple(sizes), heads, fetched)


def _downlink(round_id: int, base: Weights, new: Weights) -> tuple[int, int]:
    """Bytes of the signed full head and of what a device holding `base` downloads."""
    sign = lambda message: encode_message(message, signing_key=DEVICE_KEY)  # noqa: E731
    model = GlobalModel(FLEET, round_id + 1, new, round_id, round_id + 1)
    full = len(sign(model))
    parent = StoredVersion(round_id, base, message_sha256(base))
    patch = smaller_patch(model, parent, message_sha256(new), full, sign)
    return full, full if patch is None else len(patch)


def _update(round_id: int, index: int, num_examples: int, delta: Weights) -> ModelUpdate:
    return ModelUpdate(
        fleet=FLEET,
        round_id=round_id,
        base_version=round_id,
        device_id=f"device-{index:04d}",
        sequence=round_id,
        num_examples=num_examples,
        delta=delta,
    )


def _strategy(task: HeadTask, config: RoundsConfig) -> Strategy:
    if config.strategy == "krum":
        return make_strategy("krum", num_malicious=max(len(config.poisoned), 1))
    if config.strategy != "fltrust":
        return make_strategy(config.strategy)
    root = root_set(task, config.seed)

    def server_update(global_weights: Weights) -> Weights:
        head = Head.from_weights(global_weights, task.head.activations)
        return local_update(head, config.fit, task.embeddings[root], task.labels[root],
                            config.seed).delta  # fmt: skip

    return make_strategy("fltrust", server_update_fn=server_update)


def example_update(task: HeadTask, fit: FitConfig) -> ModelUpdate:
    """A real round-0 delta of the first device subject, as a device would send it."""
    rows = task.rows_of(task.device_subjects[:1])
    update = local_update(task.head, fit, task.embeddings[rows], task.labels[rows], seed=0)
    return _update(0, 0, len(rows), update.delta)


def synthetic_task(seed: int = 0, dim: int = 16, hidden: int = 8, classes: int = 4) -> HeadTask:
    """Gaussian class clusters with a per-subject shift, the watch roles, a random head (no TF)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 2.0, (classes, dim))
    rows_per_subject = 60
    subjects = np.repeat(np.arange(1, 11), rows_per_subject)
    labels = rng.integers(0, classes, subjects.size)
    shift = rng.normal(0.0, 0.5, (11, dim))[subjects]
    embeddings = centres[labels] + shift + rng.normal(0.0, 1.0, (subjects.size, dim))
    weights = [
        rng.uniform(-0.5, 0.5, (dim, hidden)),
        np.zeros(hidden),
        rng.uniform(-0.5, 0.5, (hidden, classes)),
        np.zeros(classes),
    ]
    head = Head.from_weights(weights, ("relu", "softmax"))
    roles = {"device_subjects": (4, 5, 6, 7), "test_subjects": (8, 9, 10),
             "public_subjects": (1, 2, 3)}  # fmt: skip
    return HeadTask(embeddings.astype(np.float32), labels.astype(np.int64),
                    subjects.astype(np.int64), head=head, **roles)  # fmt: skip
