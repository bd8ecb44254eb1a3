"""What a command may touch of the outside world: streams, config directory, environment.

Passed to every command so tests can run commands in-process with their own streams
and directories (httpie's `Environment`).
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


class ExitStatus(enum.IntEnum):
    """Process exit codes shared by every command."""

    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


def _default_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(os.environ.get("IOMT_CONFIG_DIR", str(Path(base) / "iomt")))


@dataclass
class Environment:
    """Streams and directories a command uses instead of reaching for globals."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    config_dir: Path = field(default_factory=_default_config_dir)
    interactive: bool = field(default_factory=lambda: sys.stderr.isatty())

    def print(self, *parts: object) -> None:
        """Write a line of normal output."""
        print(*parts, file=self.stdout, flush=True)

    def warn(self, *parts: object) -> None:
        """Write a line of diagnostics to stderr."""
        print(*parts, file=self.stderr, flush=True)
