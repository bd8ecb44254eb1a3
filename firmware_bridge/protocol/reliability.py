"""Stop-and-wait reliability: one request in flight, retransmitted until its reply comes.

Pure state machines with an injected clock. The host side (`StopAndWait`) numbers requests,
decides when to retransmit (timeout or NACK) and gives up after `max_attempts`; the device
side (`ReplyCache`) recognises a retransmitted request and replays the reply it already sent
instead of running the request twice (a second MODEL_COMMIT must not happen).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_bridge.errors import DeviceTimeout
from firmware_bridge.protocol.framing import Frame, crc16_ccitt_false, encode_frame

Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for a reply and how many times to send a request."""

    timeout_s: float = 0.5
    max_attempts: int = 10


@dataclass
class TransferStats:
    """Counts of what reliability had to do."""

    requests: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    nacks: int = 0
    stale_replies: int = 0


@dataclass
class StopAndWait:
    """Host side: one outstanding request, its deadline and its retransmissions."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = time.monotonic
    stats: TransferStats = field(default_factory=TransferStats)
    _next_seq: int = 0
    _outstanding: Frame | None = None
    _wire: bytes = b""
    _attempts: int = 0
    _deadline: float = 0.0
    _timeout_s: float = 0.0

    @property
    def busy(self) -> bool:
        """True while a request waits for its reply."""
        return self._outstanding is not None

    def next_seq(self) -> int:
        """Sequence number for the next request (wraps at 256)."""
        seq = self._next_seq
        self._next_seq = (seq + 1) % 256
        return seq

    def start(self, frame: Frame, extra_timeout_s: float = 0.0) -> bytes:
        """Make `frame` the outstanding request; return the bytes to write.

        `extra_timeout_s` lengthens the wait for slow lines (the frame's own transfer time).
        """
        self._outstanding, self._wire = frame, encode_frame(frame)
        self._attempts = 1
        self._timeout_s = self.policy.timeout_s + extra_timeout_s
        self._deadline = self.clock() + self._timeout_s
        self.stats.requests += 1
        return self._wire

    def on_reply(self, frame: Frame) -> bool:
        """True when `frame` answers the outstanding request (which is then done)."""
        if self._outstanding is None or frame.seq != self._outstanding.seq:
            self.stats.stale_replies += 1
            return False
        self._outstanding = None
        return True

    def on_nack(self) -> bytes | None:
        """The device saw a damaged frame: retransmit now (None when nothing is in flight)."""
        if self._outstanding is None:
            return None
        self.stats.nacks += 1
        return self._retransmit()

    def poll(self) -> bytes | None:
        """Bytes to retransmit when the deadline passed; `DeviceTimeout` when out of attempts."""
        if self._outstanding is None or self.clock() < self._deadline:
            return None
        self.stats.timeouts += 1
        return self._retransmit()

    def seconds_left(self) -> float:
        """Time until the current deadline (0 when passed or idle)."""
        if self._outstanding is None:
            return 0.0
        return max(0.0, self._deadline - self.clock())

    def abandon(self) -> None:
        """Forget the outstanding request (after an error reply or a lost connection)."""
        self._outstanding = None

    def _retransmit(self) -> bytes:
        assert self._outstanding is not None
        if self._attempts >= self.policy.max_attempts:
            frame, self._outstanding = self._outstanding, None
            raise DeviceTimeout(
                f"no reply to message type {frame.type:#04x} seq {frame.seq} "
                f"after {self._attempts} attempts"
            )
        self._attempts += 1
        self.stats.retransmissions += 1
        self._deadline = self.clock() + self._timeout_s
        return self._wire


def request_key(frame: Frame) -> tuple[int, int, int]:
    """What makes a request the same request: seq, type and payload checksum."""
    return (frame.seq, frame.type, crc16_ccitt_false(frame.payload))


@dataclass
class ReplyCache:
    """Device side: the last request seen and the replies sent for it."""

    duplicates: int = 0
    _key: tuple[int, int, int] | None = None
    _replies: list[Frame] = field(default_factory=list)

    def lookup(self, frame: Frame) -> list[Frame] | None:
        """The replies to replay when `frame` repeats the last request, else None."""
        if self._key is not None and request_key(frame) == self._key:
            self.duplicates += 1
            return list(self._replies)
        return None

    def remember(self, frame: Frame, replies: list[Frame]) -> None:
        """Record the replies sent for `frame`."""
        self._key, self._replies = request_key(frame), list(replies)

    def clear(self) -> None:
        """Forget everything (HELLO or a reset)."""
        self._key, self._replies = None, []
