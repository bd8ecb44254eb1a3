"""The fleet bench's watch on its processes, on real processes: a dead one is named in one line."""

from __future__ import annotations

import multiprocessing
import sys

import pytest

from bench.fleet_liveness import FleetProcessDiedError, FleetWatch


def _exits_with_3() -> None:
    sys.exit(3)


def test_a_device_process_that_died_is_named_with_its_code() -> None:
    process = multiprocessing.get_context("spawn").Process(target=_exits_with_3, name="devices-1")
    process.start()
    process.join(30)
    with pytest.raises(FleetProcessDiedError) as raised:
        FleetWatch([process]).check()
    assert str(raised.value) == "device process devices-1 exited with code 3"


def test_a_dead_broker_is_reported_as_it_says() -> None:
    watch = FleetWatch(broker_dead=lambda: "NATS node n2 exited: out of memory")
    with pytest.raises(FleetProcessDiedError) as raised:
        watch.check()
    assert str(raised.value) == "NATS node n2 exited: out of memory"


def test_nothing_dead_passes() -> None:
    FleetWatch(broker_dead=lambda: None).check()
