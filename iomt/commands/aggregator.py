"""`iomt aggregator`: run federated rounds over MQTT; `status` and `export` read its state file.

The options live in `aggregator_options` (`--role` in `aggregator_roles`); serving as one
process or a coordinator is `aggregator_serve`, as a worker or site `aggregator_roles`; the
state-file actions are `aggregator_state`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from iomt.commands.aggregator_options import (
    add_run_arguments,
    check_run_arguments,
    model_signing_key,
)
from iomt.commands.aggregator_roles import check_role_arguments
from iomt.commands.aggregator_serve import serve
from iomt.commands.aggregator_state import add_state_actions, run_state_action
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.registry_option import registry_keys
from iomt.termination import Terminated, raise_on_sigterm

if TYPE_CHECKING:
    from collections.abc import Callable

HELP = "run the federated aggregator (or: status / export of its state file)"
_RUN_REQUIRED = ("broker", "fleet", "bundle", "state")
_WORKER_REQUIRED = ("broker", "fleet", "state")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_state_actions(parser)


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    if getattr(args, "aggregator_action", None) is not None:
        return run_state_action(env, args)
    required = _WORKER_REQUIRED if args.role in ("worker", "site") else _RUN_REQUIRED
    missing = [f"--{name}" for name in required if getattr(args, name) is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    check_role_arguments(args)
    if args.role in ("worker", "site"):
        from iomt.commands.aggregator_roles import run_worker

        check_run_arguments(args)
        key = model_signing_key(args.model_signing_key)
        log = _logger(env, args.json)
        return _until_sigterm(
            env, lambda: run_worker(args, log, registry_keys("--registry", args.registry), key)
        )
    if args.promotion_margin is not None and (args.holdout is None or args.promotion_margin < 0):
        raise UsageError("--promotion-margin needs --holdout and a margin >= 0")
    if args.strategy == "fltrust" and args.root_set is None:
        raise UsageError("--strategy fltrust needs --root-set D.npz (the server's clean data)")
    check_run_arguments(args)
    log = _logger(env, args.json)
    return _until_sigterm(env, lambda: serve(env, args, log))


def _until_sigterm(env: Environment, serve: Callable[[], ExitStatus]) -> ExitStatus:
    """Serve; SIGTERM (`systemctl stop`) unwinds it (state file closed, link stopped), exit 0."""
    raise_on_sigterm()
    try:
        return serve()
    except Terminated:
        env.warn("iomt aggregator: stopped (SIGTERM)")
        return ExitStatus.SUCCESS


def _logger(env: Environment, as_json: bool) -> Any:
    """Lines to stderr as `aggregator: ...`, or with `--json` as `log` events on stdout."""
    import time

    from iomt.log_lines import json_line

    def log(line: str) -> None:
        if as_json:
            env.print(json_line("log", {"message": line}, time.time()))
        else:
            env.warn(f"aggregator: {line}")

    return log
