"""The serving loop's frozen heap is given back when serving ends."""

from __future__ import annotations

import gc

from aggregator.serving_heap import long_lived_objects_frozen


def test_objects_are_frozen_while_serving_and_unfrozen_after_even_on_error() -> None:
    # Prepare
    gc.unfreeze()
    inside: list[int] = []
    # Execute
    try:
        with long_lived_objects_frozen():
            inside.append(gc.get_freeze_count())
            raise RuntimeError("the loop failed")
    except RuntimeError:
        pass
    # Assert
    assert inside[0] > 0
    assert gc.get_freeze_count() == 0
