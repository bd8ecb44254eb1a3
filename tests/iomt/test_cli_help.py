"""Every option of every `iomt` command says what it is for, and its default."""

from __future__ import annotations

import argparse
import io

import pytest

from iomt.cli import _available_commands, build_parser, main
from iomt.environment import Environment


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


def test_every_option_has_help() -> None:
    options = _options(build_parser(_available_commands()), "iomt")
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in options
               if not a.help]  # fmt: skip
    assert len(options) > 100 and missing == []


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["edge", "--help"], Environment(stdout=io.StringIO(), stderr=io.StringIO()))
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "labelled windows to join (default: 16)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
