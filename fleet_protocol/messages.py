"""Every message of the federated round, as frozen dataclasses (wire format: `protocol/wire.py`).

Messages holding tensors (`GlobalModel`, `ModelUpdate`) compare by identity (`eq=False`):
comparing numpy arrays with `==` has no single truth value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from fleet_protocol.types import Metrics, Weights


@dataclass(frozen=True)
class FitConfig:
    """How a device fine-tunes the head in a round (FedProx sets `proximal_mu` > 0)."""

    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.0
    proximal_mu: float = 0.0
    l2: float = 0.0


@dataclass(frozen=True)
class RoundAnnouncement:
    """Aggregator -> fleet (retained on `round`): a round is open on a global model version."""

    fleet: str
    round_id: int
    model_version: int
    model_sha256: str
    deadline_unix: float
    quorum: int
    config: FitConfig = field(default_factory=FitConfig)
    codec: str = "int8"
    max_staleness: int | None = None  # asynchronous mode: accepted up to this many versions old
    encoding: str | None = None  # top-k / zstd (`update_encoding`); absent: plain `codec`
    sampling_rate: float | None = None  # Poisson sampling: see fleet_protocol.device_sampling
    sampling_seed: str | None = None


@dataclass(frozen=True, eq=False)
class GlobalModel:
    """Aggregator -> fleet (retained on `model/{version}`): the global head weights."""

    fleet: str
    model_version: int
    weights: Weights
    parent_version: int | None
    round_id: int
    dp_epsilon: float | None = None  # (epsilon, delta) of central DP this head was trained with
    dp_delta: float | None = None


@dataclass(frozen=True)
class ModelPatch:
    """Aggregator -> fleet (retained on `patch/{version}`): a head as a patch of its parent.

    `patch` is `fleet_protocol.model_patch` bytes; applied to `base_version` (whose hash is
    `base_sha256`) it gives the head hashing to `model_sha256`. The full head stays on
    `model/{version}` for devices that cannot apply it.
    """

    fleet: str
    model_version: int
    base_version: int
    base_sha256: str
    model_sha256: str
    patch: bytes
    dp_epsilon: float | None = None  # the stamp of the head it gives (`GlobalModel`)
    dp_delta: float | None = None


@dataclass(frozen=True, eq=False)
class ModelUpdate:
    """Device -> aggregator (on `update/{device_id}`): a weight delta (new - base) for a round."""

    fleet: str
    round_id: int
    base_version: int
    device_id: str
    sequence: int
    num_examples: int
    delta: Weights
    metrics: Metrics = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateAck:
    """Aggregator -> device (on `ack/{device_id}`): the update was stored, or why it was not."""

    fleet: str
    round_id: int
    device_id: str
    sequence: int
    accepted: bool
    reason: str = ""


@dataclass(frozen=True)
class DeviceStatus:
    """Device -> fleet (retained on `status/{device_id}`, also the last will): online or not.

    The health fields are optional on the wire (absent when unknown), so a device that sends
    none and an aggregator that reads none stay compatible with this version.
    """

    fleet: str
    device_id: str
    online: bool
    model_version: int | None = None
    detail: str = ""
    free_disk_bytes: int | None = None
    cpu_temp_c: float | None = None
    store_bytes: int | None = None
    outbox_backlog: int | None = None


Message = Union[  # noqa: UP007
    RoundAnnouncement, GlobalModel, ModelPatch, ModelUpdate, UpdateAck, DeviceStatus
]

MESSAGE_TYPE_NAMES: dict[type, str] = {
    RoundAnnouncement: "round_announcement",
    GlobalModel: "global_model",
    ModelPatch: "model_patch",
    ModelUpdate: "model_update",
    UpdateAck: "update_ack",
    DeviceStatus: "device_status",
}
"""Wire name of each message type (the envelope's `type`)."""
