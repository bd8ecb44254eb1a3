"""Floods against the round core (fake clock): budgets per sender, fake statuses, chunk debris."""

from __future__ import annotations

import numpy as np

from aggregator.core_config import AggregatorConfig, Trust
from aggregator.rate_limit import RateLimit, RateLimiter
from aggregator.round_core import AggregatorCore
from aggregator.round_events import Effect, MessageArrived, StoreRejection, TimePassed
from aggregator.round_memory import RoundMemory
from aggregator.strategies import make_strategy
from fleet_protocol.chunking import split_into_chunks
from fleet_protocol.messages import DeviceStatus, ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.publish import Publish
from fleet_protocol.signing import generate_signing_key
from fleet_protocol.topics import ack_topic, round_topic, status_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

FLEET = "gate"
HEAD = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]


def _core(limit: RateLimit | None = None, trust: Trust | None = None) -> AggregatorCore:
    limit = limit or RateLimit()
    config = AggregatorConfig(FLEET, rounds=2, min_clients=2, deadline_s=30.0, codec="float32",
                              rate_limit=limit)  # fmt: skip
    return AggregatorCore(config, make_strategy("fedavg"), RoundMemory(), HEAD, trust=trust)


def _round(effects: list[Effect]) -> RoundAnnouncement:
    sent = [e for e in effects if isinstance(e, Publish) and e.topic == round_topic(FLEET)]
    message = decode_message(sent[-1].payload)
    assert isinstance(message, RoundAnnouncement)
    return message


def _update(device: str, round_: RoundAnnouncement) -> MessageArrived:
    delta = [np.full(w.shape, 0.1, np.float32) for w in HEAD]
    update = ModelUpdate(FLEET, round_.round_id, round_.model_version, device, 1, 10, delta)
    return MessageArrived(update_topic(FLEET, device), encode_message(update, codec="float32"))


def _rejections(effects: list[Effect]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for e in effects:
        if isinstance(e, StoreRejection):
            counted[e.reason] = counted.get(e.reason, 0) + e.count
    return counted


def test_rate_limiter_allows_a_burst_then_the_sustained_rate() -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=2.0, burst=3, max_tracked=2))
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a", 0.5) and not limiter.allow("a", 0.5)  # one token per 0.5 s
    limiter.allow("b", 1.0)
    limiter.allow("c", 1.0)
    assert limiter.tracked == 2  # "a" forgotten, memory bounded


def test_a_flood_from_one_sender_costs_its_burst_then_nothing_but_a_counter() -> None:
    # Prepare
    core = _core(RateLimit(rate_per_s=1.0, burst=5))
    round_ = _round(core.start(0.0))
    garbage = MessageArrived(update_topic(FLEET, "evil"), b"\x00garbage")

    # Execute: 3,000 messages at one instant, then a valid update from another device
    flood: list[Effect] = []
    for _ in range(3000):
        flood += core.handle(garbage, 1.0)
    valid = core.handle(_update("good", round_), 1.0)
    flushed = core.handle(TimePassed(), 1.5)

    # Assert: 5 decoded and nacked, 2,995 only counted (one stored row); the valid one acked
    acks = [e for e in flood if isinstance(e, Publish) and e.topic == ack_topic(FLEET, "evil")]
    assert len(acks) == 5
    assert _rejections(flood + flushed) == {"malformed": 5, "rate_limited": 2995}
    assert sum(1 for e in flood + flushed if isinstance(e, StoreRejection)) <= 7
    ack = decode_message(next(e for e in valid if isinstance(e, Publish)
                              and e.topic == ack_topic(FLEET, "good")).payload)  # fmt: skip
    assert isinstance(ack, UpdateAck) and ack.accepted


def test_with_a_registry_statuses_of_unknown_devices_hold_nothing_open() -> None:
    # Prepare
    known = generate_signing_key()
    keys = {"a": known.public_key()}
    core = _core(trust=Trust(verify_key=keys.get))
    core.start(0.0)

    # Execute: 5,000 fake "online" statuses, one per made-up id
    effects: list[Effect] = []
    for i in range(5000):
        status = encode_message(DeviceStatus(FLEET, f"fake{i}", True, 0))
        effects += core.handle(MessageArrived(status_topic(FLEET, f"fake{i}"), status), 1.0)
    effects += core.handle(TimePassed(), 2.0)

    # Assert
    assert core.waiting_for == set()
    assert _rejections(effects) == {"unknown_device": 5000}


def test_never_completed_fragments_are_evicted_and_counted_and_a_real_update_still_lands() -> None:
    # Prepare: a budget that lets the fragments through to the assembler
    core = _core(RateLimit(rate_per_s=1e6, burst=100_000))
    round_ = _round(core.start(0.0))

    # Execute: 8,000 first chunks of never-completed messages, all distinct ids
    effects: list[Effect] = []
    for i in range(8000):
        fragment = split_into_chunks(b"x" * 80, f"m{i}", max_chunk_bytes=60)[0]
        effects += core.handle(MessageArrived(update_topic(FLEET, "evil"), fragment), 1.0)
    effects += core.handle(TimePassed(), 2.0)
    whole = _update("good", round_)
    chunks = split_into_chunks(whole.payload, "good:1", max_chunk_bytes=100)
    landed: list[Effect] = []
    for chunk in chunks:
        landed += core.handle(MessageArrived(whole.topic, chunk), 3.0)

    # Assert: the sender holds at most its own few partials; the rest is counted
    assert core._chunks.pending_messages <= 4
    assert _rejections(effects) == {"chunk_evicted": 7996}
    acks = [decode_message(e.payload) for e in landed if isinstance(e, Publish)
            and e.topic == ack_topic(FLEET, "good")]  # fmt: skip
    assert [a.accepted for a in acks if isinstance(a, UpdateAck)] == [True]
