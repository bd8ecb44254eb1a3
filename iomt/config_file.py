"""Options from a TOML file beside flags: a device's settings live in one file a unit can name.

Keys are the long flags without `--` (`device-id = "dev7"`, `speed = 0`, `json = true`). Each
value goes through the command's own argument parser, so a file is checked exactly as flags
are; a flag given on the command line wins over the file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iomt.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib


def apply_config_file(
    args: argparse.Namespace, path: Path, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Fill every option still at its default from the file at `path` (in place)."""
    settings = _read(path)
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_arguments(parser)
    defaults = vars(parser.parse_args([]))
    unknown = sorted(k for k in settings if k.replace("-", "_") not in defaults or k == "config")
    if unknown:
        raise UsageError(f"{path}: unknown option(s) {', '.join(unknown)}")
    try:
        from_file = vars(parser.parse_args(_as_flags(settings)))
    except argparse.ArgumentError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    for key in settings:
        name = key.replace("-", "_")
        if getattr(args, name) == defaults[name]:
            setattr(args, name, from_file[name])


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"--config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path}: not TOML ({exc})") from exc


def _as_flags(settings: dict[str, Any]) -> list[str]:
    """`{"speed": 0, "json": true}` -> `["--speed", "0", "--json"]` (false: flag left out)."""
    flags: list[str] = []
    for key, value in settings.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            flags += [f"--{flag}"] if value else []
        elif isinstance(value, (str, int, float)):
            flags += [f"--{flag}", str(value)]
        else:
            raise UsageError(f"option {key}: expected a string, number or boolean")
    return flags
