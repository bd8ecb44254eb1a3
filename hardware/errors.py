"""Errors raised by the hardware package: one small hierarchy, one-line messages."""


class HardwareError(Exception):
    """Base class of every error raised by `hardware`."""


class UnknownBoardError(HardwareError, KeyError):
    """A board name that no profile describes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown board"


class BoardFitError(HardwareError):
    """A model (plus its arena and the firmware reserve) does not fit a board."""
