"""The `iomt` front door: parse arguments, dispatch a command, turn exceptions into exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from iomt import __version__
from iomt.commands import COMMANDS
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError


def _available_commands() -> dict[str, ModuleType]:
    """Import every command module that exists (later issues add the rest)."""
    modules = {}
    for name, module_path in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            if exc.name != module_path:
                raise
    return modules


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that states each option's default, unless it has none or the text says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default in (None, False, argparse.SUPPRESS)
        if no_default or not action.option_strings or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class IomtArgumentParser(argparse.ArgumentParser):
    """Every `iomt` parser, subcommands included (argparse makes them of the root's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)


def build_parser(modules: dict[str, ModuleType]) -> argparse.ArgumentParser:
    """The whole argument parser; each command adds its own arguments."""
    parser = IomtArgumentParser(
        prog="iomt",
        description=(
            "IoMT Edge FL: train, quantise, deploy and federate health models on edge devices."
        ),
    )
    parser.add_argument("--version", action="version", version=f"iomt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in modules.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one command; never let a traceback reach the user for expected failures."""
    env = env or Environment()
    parser = build_parser(_available_commands())
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(env.stdout)
        return ExitStatus.USAGE
    try:
        return int(args._run(env, args))
    except KeyboardInterrupt:
        env.warn("iomt: interrupted")
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:  # `iomt bridge stream | head`: the reader has all it wanted
        _detach_stdout()
        return ExitStatus.SUCCESS
    except UsageError as exc:
        env.warn(f"iomt {args.command}: error: {_one_line(exc)}")
        return ExitStatus.USAGE
    except Exception as exc:
        if os.environ.get("IOMT_DEBUG"):
            raise
        env.warn(f"iomt {args.command}: error: {_one_line(exc)}")
        return ExitStatus.ERROR


if __name__ == "__main__":
    sys.exit(main())
