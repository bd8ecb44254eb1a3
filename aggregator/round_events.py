"""What goes into the aggregator's round core and what comes out of it.

Events are what the shell observed (a message on a topic, time passing); effects are what the
core decided, for the shell to carry out in order (persist, then publish). Nothing here does
I/O: the values are plain data, so a test can drive the core with a list of events and read
back exactly what it would have written and sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aggregator.privacy_ledger import DevicePrivacy, VersionPrivacy
from aggregator.round_memory import StoredVersion
from aggregator.state_store import AcceptedUpdate, DeviceRecord, RoundRecord
from fleet_protocol.publish import Publish
from fleet_protocol.types import ArrayState, Weights

RoundStatus = Literal["aggregated", "below_quorum", "aggregation_failed", "held_back"]


# events ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MessageArrived:
    """A message on one of the topics the aggregator follows (updates, statuses, phases)."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class TimePassed:
    """No message: the clock moved (deadlines, phase timeouts)."""


Event = MessageArrived | TimePassed


# effects --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreVersion:
    """Persist a global version that no round produced (version 0, or a roll-back)."""

    version: int
    weights: Weights
    sha256: str
    parent: int | None = None  # a roll-back re-serves an older head under a new number


@dataclass(frozen=True)
class StoreOpenedRound:
    """Persist a newly opened round with the strategy's empty accumulator."""

    record: RoundRecord
    strategy_state: ArrayState


@dataclass(frozen=True)
class StoreAcceptedUpdate:
    """Persist an accepted update with the accumulator that includes it (before its ack)."""

    update: AcceptedUpdate
    strategy_state: ArrayState
    received_unix: float


@dataclass(frozen=True)
class StoreRejection:
    """Count refused messages by reason (one, or a batch the gate dropped unread), and by
    device when the topic named one."""

    round_id: int
    reason: str
    count: int = 1
    device_id: str = ""


@dataclass(frozen=True)
class StoreDeviceStatus:
    """Remember what a device last said about itself, for `iomt fleet status`."""

    device: DeviceRecord


@dataclass(frozen=True)
class StoreTraffic:
    """Add bytes received or sent to a round's counters."""

    round_id: int
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class StoreClosedRound:
    """Close a round: with its new version and the strategy state carried over, or without."""

    round_id: int
    metrics: RoundMetrics
    closed_unix: float
    version: StoredVersion | None = None
    carry: ArrayState | None = None


@dataclass(frozen=True)
class StorePrivacy:
    """Store the epsilon a released round charged to devices and to its new version."""

    devices: tuple[DevicePrivacy, ...]
    version: VersionPrivacy | None


@dataclass(frozen=True)
class StoreCandidate:
    """Keep an aggregate the promotion gate did not publish, for the operator to inspect."""

    round_id: int
    weights: Weights
    sha256: str
    accuracy: float


@dataclass(frozen=True)
class Log:
    """One line for the operator."""

    line: str


@dataclass(frozen=True)
class RoundClosed:
    """A round is over: its metrics, for reports and the privacy budget."""

    metrics: RoundMetrics


Effect = (
    Publish
    | StoreVersion
    | StoreOpenedRound
    | StoreAcceptedUpdate
    | StoreRejection
    | StoreDeviceStatus
    | StoreTraffic
    | StoreClosedRound
    | StoreCandidate
    | StorePrivacy
    | Log
    | RoundClosed
)


@dataclass
class RoundMetrics:
    """What one closed round did; `to_dict` is the JSON the state file and reports carry."""

    round: int
    base_version: int
    model_version: int
    status: RoundStatus
    participants: int
    num_examples: int
    dropped: int
    rejected: dict[str, int]
    resent: int
    round_time_s: float
    accuracy: float | None = None  # on the holdout, of the head published after this round
    candidate_accuracy: float | None = None  # of the aggregate the promotion gate held back
    held_back: str = ""  # why the aggregate was not published (promotion gate)
    best_accuracy: float | None = None  # the best published head's accuracy after this round
    base_accuracy: float | None = None  # of the head the round started from (round 1: version 0)
    bytes_in: int = 0
    bytes_out: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # strategy reports (DP epsilon, ...)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        extra = values.pop("extra")
        return {**values, **extra}
