"""Static arena planning: every activation and scratch buffer at a fixed offset of one arena.

Pure: buffers with the op interval during which they hold live data in, offsets out. Two
buffers may share bytes only when their intervals do not overlap. Placement is greedy, largest
first, at the lowest aligned offset that fits (the strategy of TFLM's greedy memory planner).
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGNMENT = 16


@dataclass(frozen=True)
class Buffer:
    """A block of `size` bytes live from op `first` to op `last`, inclusive."""

    name: str
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class ArenaPlan:
    """Offset of every buffer by name, and the arena size they need."""

    offsets: dict[str, int]
    arena_bytes: int


def plan_arena(buffers: list[Buffer], alignment: int = ALIGNMENT) -> ArenaPlan:
    """Place every buffer; overlapping lifetimes never share bytes."""
    placed: list[tuple[Buffer, int]] = []
    order = sorted(buffers, key=lambda b: (-b.size, b.first, b.name))
    for buffer in order:
        offset = _lowest_fit(buffer, placed, alignment)
        placed.append((buffer, offset))
    offsets = {buffer.name: offset for buffer, offset in placed}
    end = max((offset + buffer.size for buffer, offset in placed), default=0)
    return ArenaPlan(offsets, _align(end, alignment))


def _lowest_fit(buffer: Buffer, placed: list[tuple[Buffer, int]], alignment: int) -> int:
    conflicts = sorted(
        (offset, offset + other.size)
        for other, offset in placed
        if other.first <= buffer.last and buffer.first <= other.last
    )
    candidate = 0
    for start, end in conflicts:
        if candidate + buffer.size <= start:
            break
        candidate = max(candidate, _align(end, alignment))
    return candidate


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment
