"""Stop-and-wait with a fake clock: timeouts, NACKs, stale replies, giving up; reply cache."""

from __future__ import annotations

import pytest

from firmware_bridge.errors import DeviceTimeout
from firmware_bridge.protocol.framing import Frame, encode_frame
from firmware_bridge.protocol.reliability import ReplyCache, RetryPolicy, StopAndWait


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _sender(max_attempts: int = 3) -> tuple[StopAndWait, FakeClock]:
    clock = FakeClock()
    return StopAndWait(RetryPolicy(timeout_s=1.0, max_attempts=max_attempts), clock), clock


def test_reply_with_matching_seq_completes_request() -> None:
    sender, _ = _sender()
    request = Frame(1, sender.next_seq(), b"")
    wire = sender.start(request)
    assert wire == encode_frame(request)
    assert sender.on_reply(Frame(2, request.seq, b"")) and not sender.busy


def test_stale_reply_is_ignored() -> None:
    sender, _ = _sender()
    sender.next_seq()
    sender.start(Frame(1, sender.next_seq(), b""))
    assert not sender.on_reply(Frame(2, 0, b""))
    assert sender.busy and sender.stats.stale_replies == 1


def test_timeout_retransmits_same_bytes_then_gives_up() -> None:
    # Prepare
    sender, clock = _sender(max_attempts=2)
    wire = sender.start(Frame(1, sender.next_seq(), b"x"))
    # Execute / Assert
    assert sender.poll() is None
    clock.now = 1.01
    assert sender.poll() == wire
    clock.now = 2.02
    with pytest.raises(DeviceTimeout, match="after 2 attempts"):
        sender.poll()
    assert not sender.busy


def test_nack_retransmits_at_once_and_restarts_timer() -> None:
    sender, clock = _sender()
    wire = sender.start(Frame(1, sender.next_seq(), b""))
    clock.now = 0.9
    assert sender.on_nack() == wire
    clock.now = 1.5
    assert sender.poll() is None
    assert sender.stats.nacks == 1 and sender.stats.retransmissions == 1


def test_sequence_numbers_wrap() -> None:
    sender, _ = _sender()
    seqs = [sender.next_seq() for _ in range(257)]
    assert seqs[255] == 255 and seqs[256] == 0


def test_reply_cache_replays_duplicate_only() -> None:
    cache = ReplyCache()
    request, reply = Frame(0x32, 4, b""), [Frame(0x03, 4, b"\x00" * 4)]
    assert cache.lookup(request) is None
    cache.remember(request, reply)
    assert cache.lookup(request) == reply
    assert cache.lookup(Frame(0x32, 5, b"")) is None
    assert cache.lookup(Frame(0x31, 4, b"other")) is None
    assert cache.duplicates == 1
