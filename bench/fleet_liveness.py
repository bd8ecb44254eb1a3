"""The fleet bench's watch on all its processes: one that died ends the run with one line.

A fleet round waits on device processes (ready, done), aggregator processes (a worker's first
log line, the round's model and acks) and the broker. `bench.fleet_round.check_running` names
an aggregator that ended; `FleetWatch.check()` adds the device processes and the broker (a NATS
node that exited), so that every wait of a round fails at once, naming the process, instead of
waiting out a 15-minute timeout that names nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

from bench.fleet_round import AggregatorProcess, check_running


class FleetProcessDiedError(RuntimeError):
    """A device process or the broker ended while the round needed it (one line)."""


@dataclass
class FleetWatch:
    """The round's processes: device emulators, aggregators, and `broker_dead`, which says why
    the broker is gone (a NATS node that exited) or returns None."""

    emulators: Sequence[BaseProcess] = ()
    aggregators: list[AggregatorProcess] = field(default_factory=list)
    broker_dead: Callable[[], str | None] = lambda: None

    def check(self) -> None:
        """Raise for the first process that ended; return if every one is running."""
        for emulator in self.emulators:
            if emulator.exitcode not in (None, 0):  # 0: it finished after reporting `done`
                raise FleetProcessDiedError(f"device process {emulator.name} exited with code"
                                            f" {emulator.exitcode}")  # fmt: skip
        check_running(self.aggregators)
        broker = self.broker_dead()
        if broker is not None:
            raise FleetProcessDiedError(broker)


def last_line(log: Path) -> str:
    """The last non-empty line of a log file, or a note that there is none."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"no log at {log}"
    return lines[-1].strip() if lines else f"{log.name} is empty"
