"""Child processes of a simulation: started in their own sessions, always stopped together.

Each child gets its own process group so a Ctrl-C in the terminal reaches only the simulation,
which then stops every child it started (SIGTERM, then SIGKILL after a grace period): no orphan
is left behind whatever way the simulation ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

GRACE_S = 5.0
POLL_S = 0.2


@dataclass
class Child:
    """One started `iomt` command, its arguments kept for a restart."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]
    restarts: int = 0

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for_line(self, matches: Callable[[str], bool], timeout_s: float) -> str | None:
        """The first line of this child's log that `matches`, waiting up to `timeout_s`.

        None when the child exits or the time runs out first: the caller names what it waited
        for and points at the log.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if matches(line):
                    return line
            if not self.alive or time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def last_log_line(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"


@dataclass
class ProcessGroup:
    """Starts `iomt` subcommands as children and guarantees they are all gone on exit."""

    log_dir: Path
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> Child:
        """Start `python -m iomt.cli ARGS`, logging its output to `log_dir/NAME.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        previous = self.children.get(name)
        child = Child(
            name,
            args,
            log_path,
            self._spawn(args, log_path),
            restarts=previous.restarts + 1 if previous else 0,
        )
        self.children[name] = child
        return child

    def restart(self, name: str) -> Child:
        """Start a child again with the same arguments (after it was killed)."""
        return self.start(name, self.children[name].args)

    def kill(self, name: str) -> None:
        """SIGKILL one child, as a crash or a pulled plug would."""
        child = self.children[name]
        if child.alive:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()

    def stop_all(self) -> None:
        """SIGTERM every live child, then SIGKILL whatever is left after the grace period."""
        for child in self.children.values():
            if child.alive:
                _signal_group(child.process.pid, signal.SIGTERM)
        for child in self.children.values():
            try:
                child.process.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    @staticmethod
    def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        log = log_path.open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "iomt.cli", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # line by line into the log: the simulation waits on lines (and people tail them)
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)
