"""What a serving aggregator process holds for life, kept out of the garbage collector's scans.

Each update makes short-lived dicts that set off CPython's cyclic collector, whose full scans
walk every long-lived object too (modules, keys, the registry): ~10% of a worker's CPU per update
(docs/scaling.md). `gc.freeze()` moves what exists when serving starts out of the scans.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Freeze the objects that exist now while serving; unfreeze after, so that a process
    serving more than once (a test suite) does not keep the garbage of earlier runs forever."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
