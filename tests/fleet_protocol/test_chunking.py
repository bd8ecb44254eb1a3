"""Chunking: reassembly in any order, duplicates, losses, oversize and corrupt chunks."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_protocol.chunking import (
    ChunkAssembler,
    is_chunk,
    parse_chunk,
    split_into_chunks,
)
from fleet_protocol.errors import ChunkError, MessageTooLargeError


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


PAYLOAD = bytes(range(256)) * 10  # 2560 bytes


def test_chunks_respect_max_size_and_reassemble_in_order() -> None:
    # Prepare
    chunks = split_into_chunks(PAYLOAD, "dev-1:7", max_chunk_bytes=300)
    assembler = ChunkAssembler()
    # Execute
    results = [assembler.feed(chunk) for chunk in chunks]
    # Assert
    assert all(len(chunk) <= 300 for chunk in chunks) and len(chunks) == 10
    assert results[:-1] == [None] * 9 and results[-1] == PAYLOAD
    assert assembler.pending_messages == 0


def test_small_payload_is_a_single_chunk() -> None:
    chunks = split_into_chunks(b"hello", "m")
    assert len(chunks) == 1 and is_chunk(chunks[0])
    assert ChunkAssembler().feed(chunks[0]) == b"hello"


def test_empty_payload_round_trips() -> None:
    assert ChunkAssembler().feed(split_into_chunks(b"", "m")[0]) == b""


def test_msgpack_envelope_is_not_a_chunk() -> None:
    assert not is_chunk(b"\x82\xa1v\x01")


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(range(10))), st.lists(st.integers(0, 9), max_size=5))
def test_out_of_order_and_duplicate_chunks_reassemble(order: list[int], dups: list[int]) -> None:
    # Prepare
    chunks = split_into_chunks(PAYLOAD, "dev-1:7", max_chunk_bytes=300)
    assembler = ChunkAssembler()
    sequence = [chunks[i] for i in dups] + [chunks[i] for i in order] + [chunks[0]]
    # Execute
    results = [r for r in (assembler.feed(c) for c in sequence) if r is not None]
    # Assert
    assert results == [PAYLOAD]
    assert assembler.stats.duplicates >= len(dups) + 1


def test_lost_chunk_times_out_via_injected_clock() -> None:
    # Prepare
    clock = FakeClock()
    assembler = ChunkAssembler(timeout_s=30, clock=clock)
    chunks = split_into_chunks(PAYLOAD, "dev-1:7", max_chunk_bytes=300)
    for chunk in chunks[:-1]:
        assembler.feed(chunk)
    # Execute
    clock.now = 31.0
    expired = assembler.expire()
    # Assert
    assert expired == 1 and assembler.pending_messages == 0
    assert assembler.stats.expired == 1


def test_oversize_message_rejected_from_its_first_chunk() -> None:
    chunks = split_into_chunks(PAYLOAD, "big", max_chunk_bytes=300)
    with pytest.raises(MessageTooLargeError):
        ChunkAssembler(max_message_bytes=1000).feed(chunks[0])


def test_pending_memory_is_bounded_by_evicting_oldest() -> None:
    # Prepare
    assembler = ChunkAssembler(max_pending_bytes=1000)
    # Execute: start five messages, never finish them
    for n in range(5):
        assembler.feed(split_into_chunks(PAYLOAD, f"m{n}", max_chunk_bytes=600)[0])
    # Assert
    assert assembler.pending_bytes <= 1000
    assert assembler.stats.evicted >= 3


def test_sources_do_not_mix() -> None:
    # Prepare
    chunks = split_into_chunks(PAYLOAD, "same-id", max_chunk_bytes=1500)
    assembler = ChunkAssembler()
    # Execute
    first = assembler.feed(chunks[0], source="update/dev-1")
    second = assembler.feed(chunks[1], source="update/dev-2")
    # Assert
    assert first is None and second is None and assembler.pending_messages == 2


def test_corrupt_chunk_data_fails_crc() -> None:
    # Prepare
    chunks = split_into_chunks(PAYLOAD, "m", max_chunk_bytes=2000)
    corrupted = chunks[1][:-1] + bytes([chunks[1][-1] ^ 0xFF])
    assembler = ChunkAssembler()
    assembler.feed(chunks[0])
    # Execute / Assert
    with pytest.raises(ChunkError):
        assembler.feed(corrupted)


def test_inconsistent_header_rejected() -> None:
    # Prepare
    first = split_into_chunks(PAYLOAD, "m", max_chunk_bytes=2000)[0]
    other = split_into_chunks(PAYLOAD[:-1], "m", max_chunk_bytes=2000)[1]
    assembler = ChunkAssembler()
    assembler.feed(first)
    # Execute / Assert
    with pytest.raises(ChunkError):
        assembler.feed(other)


@pytest.mark.parametrize("junk", [b"", b"IOCK", b"IOCK\x02\x01m" + bytes(16), b"IOCK\x01\x00"])
def test_malformed_chunks_rejected(junk: bytes) -> None:
    with pytest.raises(ChunkError):
        parse_chunk(junk)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_chunk_errors(data: bytes) -> None:
    assembler = ChunkAssembler(max_message_bytes=10_000)
    with contextlib.suppress(ChunkError, MessageTooLargeError):
        assembler.feed(b"IOCK\x01" + data)


def test_one_source_holds_at_most_its_own_partials_and_cannot_evict_others() -> None:
    # Prepare
    assembler = ChunkAssembler(max_partials_per_source=4)
    victim = split_into_chunks(PAYLOAD, "victim:1", max_chunk_bytes=300)
    assembler.feed(victim[0], source="good")

    # Execute: 8,000 never-completed fragments with distinct ids from one source
    for i in range(8000):
        assembler.feed(split_into_chunks(b"x" * 80, f"m{i}", max_chunk_bytes=60)[0], source="bad")
    results = [assembler.feed(chunk, source="good") for chunk in victim[1:]]

    # Assert
    assert results[-1] == PAYLOAD
    assert assembler.pending_messages == 4 and assembler.stats.evicted == 7996
    held = sum(p.received_bytes for p in assembler._pending.values())
    assert 0 < assembler.pending_bytes == held  # the running total matches what is held


def test_partials_across_many_sources_are_capped_in_total_and_expire_oldest_first() -> None:
    # Prepare
    clock = FakeClock()
    assembler = ChunkAssembler(max_partials=100, timeout_s=10.0, clock=clock)

    # Execute
    for i in range(500):
        clock.now = i * 0.01
        assembler.feed(split_into_chunks(b"x" * 80, "m", max_chunk_bytes=60)[0], source=f"s{i}")
    capped = assembler.pending_messages
    clock.now = 4.99 + 10.0 + 0.001  # partials started before 5.0 are now too old
    expired = assembler.expire()

    # Assert
    assert capped == 100 and assembler.stats.evicted == 400
    assert expired == 100 and assembler.pending_messages == 0 and assembler.pending_bytes == 0
