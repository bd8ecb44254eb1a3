"""What goes into and comes out of the device's round core (`edge_runtime.round_core`).

Events are facts the shell observed (a message arrived, the clock ticked, a request it was
given finished); effects are what the core asks the shell to do (publish, persist, train).
Requests pair up with replies: `CountLabelled` / `LabelledCounted`, `TrainForRound` /
`UpdateEncoded` or `TooFewExamples`, `InstallHead` or `ApplyPatch` / `HeadInstalled` or
`HeadInstallFailed`,
`ReadOutbox` / `OutboxRead`. Heavy I/O and training therefore stay in the shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from edge_runtime.model_privacy import ModelPrivacy
from fleet_protocol.messages import ModelPatch, RoundAnnouncement
from fleet_protocol.publish import Publish
from fleet_protocol.types import Weights

LogRecord = dict[str, object]
"""One structured log line (`{"event": name, ...}`), JSON-serialisable."""


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """The MQTT link (re)connected: announce ourselves online."""


@dataclass(frozen=True)
class MessageArrived:
    """A message on a topic the device follows (round, model/{v}, ack/{device})."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class Tick:
    """Time passed: maybe take part in the open round, maybe resend an un-acked update."""


@dataclass(frozen=True)
class LabelledCounted:
    """Reply to `CountLabelled`: labelled windows in the store."""

    count: int


@dataclass(frozen=True)
class UpdateEncoded:
    """Reply to `TrainForRound`: the signed, encoded update, not yet persisted or sent."""

    round_id: int
    base_version: int
    sequence: int
    num_examples: int
    payload: bytes


@dataclass(frozen=True)
class TooFewExamples:
    """Reply to `TrainForRound`: fewer usable labelled embeddings than `min_samples`."""

    round_id: int
    count: int


@dataclass(frozen=True)
class HeadInstalled:
    """Reply to `InstallHead`: the version is current on disk."""

    version: int


@dataclass(frozen=True)
class HeadInstallFailed:
    """Reply to `InstallHead`: the weights were no valid head; the old head stays."""

    version: int
    error: str


@dataclass(frozen=True)
class OutboxRead:
    """Reply to `ReadOutbox`: the exact bytes sent for a round (None if the file is gone)."""

    round_id: int
    payload: bytes | None


@dataclass(frozen=True)
class SecureRoundAnswered:
    """The secure-aggregation participant revealed our share: the round counts as done."""

    round_id: int


Event = Union[  # noqa: UP007
    Connected,
    MessageArrived,
    Tick,
    LabelledCounted,
    UpdateEncoded,
    TooFewExamples,
    HeadInstalled,
    HeadInstallFailed,
    OutboxRead,
    SecureRoundAnswered,
]


# -- effects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountLabelled:
    """Count the labelled windows in the store; answer with `LabelledCounted`."""


@dataclass(frozen=True)
class TrainForRound:
    """Fine-tune the installed head for this round, sign and encode the update.

    The shell picks the next sequence number from its store. Answer with `UpdateEncoded`
    (or `TooFewExamples`).
    """

    announcement: RoundAnnouncement
    seed: int


@dataclass(frozen=True, eq=False)
class InstallHead:
    """Install these weights as `version` atomically; answer `HeadInstalled`/`HeadInstallFailed`."""

    version: int
    weights: Weights
    privacy: ModelPrivacy | None = None  # the (epsilon, delta) the aggregator stamped on it


@dataclass(frozen=True)
class ApplyPatch:
    """Apply a patch to the installed head (its base) and install the result if it hashes to
    `patch.model_sha256`; answer `HeadInstalled`/`HeadInstallFailed` like `InstallHead`."""

    patch: ModelPatch
    privacy: ModelPrivacy | None = None  # the (epsilon, delta) the aggregator stamped on it


@dataclass(frozen=True)
class FetchModel:
    """Follow `model/{version}` until that full head is installed (no patch could give it)."""

    version: int


@dataclass(frozen=True)
class WriteOutbox:
    """Durably write the encoded update of a round (before it is recorded or published)."""

    round_id: int
    payload: bytes


@dataclass(frozen=True)
class RecordRoundSent:
    """Durably record that this round's update is sent (before it is published)."""

    round_id: int
    base_version: int
    sequence: int
    num_examples: int


@dataclass(frozen=True)
class ReadOutbox:
    """Read the stored update of a round; answer with `OutboxRead`."""

    round_id: int


@dataclass(frozen=True)
class RecordAck:
    """Durably record how a sent round ended ("accepted", a refusal reason, "superseded")."""

    round_id: int
    outcome: str


@dataclass(frozen=True)
class ForgetRounds:
    """Durably forget the rounds recorded as sent from `from_round` on (and their outcomes):
    they were another aggregator state's rounds (`edge_runtime.rejoin`). Sequence numbers stay."""

    from_round: int


@dataclass(frozen=True)
class Log:
    """A structured log line for the operator."""

    record: LogRecord = field(default_factory=dict)


Effect = Union[  # noqa: UP007
    Publish,
    CountLabelled,
    TrainForRound,
    InstallHead,
    ApplyPatch,
    FetchModel,
    WriteOutbox,
    RecordRoundSent,
    ReadOutbox,
    RecordAck,
    ForgetRounds,
    Log,
]
