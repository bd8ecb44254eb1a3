"""SIGTERM for long-running commands: unwind cleanly, then exit 0 as a service manager expects.

`systemctl stop` (and `kill`) send SIGTERM; a broker or aggregator that dies of it, or turns it
into Ctrl-C's exit 130, is recorded as failed. `raise_on_sigterm` makes the signal an exception
that `with` blocks unwind through (child processes stopped, state files closed); the command
catches `Terminated` and returns success.
"""

from __future__ import annotations

import signal
from types import FrameType


class Terminated(BaseException):  # like KeyboardInterrupt: no `except Exception` stops it
    """SIGTERM arrived: stop what runs and exit 0."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises `Terminated` in the main thread."""
    signal.signal(signal.SIGTERM, _raise)
