"""Command-line options for client-level differential privacy (`iomt aggregator --dp-*`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from iomt.errors import UsageError

if TYPE_CHECKING:
    from fleet_protocol.differential_privacy import DpConfig

DP_STRATEGIES = ("fedavg",)


def add_dp_arguments(parser: argparse.ArgumentParser) -> None:
    """`--dp-noise-multiplier` turns central DP on; the rest tune it."""
    group = parser.add_argument_group(
        "differential privacy (central: clip each update, noise the sum)"
    )
    group.add_argument("--dp-noise-multiplier", type=float, help="z: noise std = z * clip")
    group.add_argument("--dp-clip", type=float, default=1.0, help="L2 clip norm of each update")
    group.add_argument("--dp-delta", type=float, default=1e-5, help="delta of (epsilon, delta)")
    group.add_argument("--dp-epsilon-budget", type=float, help="stop (or warn) beyond this epsilon")
    group.add_argument(
        "--dp-on-budget", choices=("stop", "warn"), default="stop", help="when epsilon is spent"
    )
    group.add_argument(
        "--dp-sampling-rate", type=float, default=1.0, help="fraction of the fleet per round"
    )
    group.add_argument(
        "--dp-accountant", choices=("rdp", "pld"), default="rdp", help="privacy accountant"
    )


def dp_config_from_arguments(args: argparse.Namespace) -> DpConfig | None:
    """The DP config, or None when `--dp-noise-multiplier` is not given."""
    if args.dp_noise_multiplier is None:
        return None
    if args.strategy not in DP_STRATEGIES:
        raise UsageError(f"--dp-* needs --strategy {' or '.join(DP_STRATEGIES)}")
    from fleet_protocol.differential_privacy import DpConfig, PrivacyConfigError

    try:
        return DpConfig(
            args.dp_noise_multiplier, args.dp_clip, args.dp_delta, args.dp_epsilon_budget,
            args.dp_on_budget, args.dp_sampling_rate, args.dp_accountant,
        )  # fmt: skip
    except PrivacyConfigError as exc:
        raise UsageError(str(exc)) from exc


def released_rounds(store: Any) -> int:
    """Rounds of a state file that published a new version (each spent privacy budget)."""
    closed = [r for r in store.rounds() if r.status == "closed"]
    return sum(1 for r in closed if r.result_version not in (None, r.base_version))


def dp_strategy(config: DpConfig, store: Any) -> Any:
    """A DP-FedAvg strategy that counts the rounds already released from this state file."""
    from aggregator.strategies.dp_fedavg import DpFedAvg

    strategy = DpFedAvg(config, rounds_already_released=released_rounds(store))
    if strategy.accountant.decide_next_round() == "stop":
        spent = strategy.epsilon
        raise UsageError(
            f"privacy budget {config.epsilon_budget} already spent (epsilon {spent:.3f})"
        )
    return strategy


def add_local_dp_arguments(parser: argparse.ArgumentParser) -> None:
    """`iomt edge --dp-local-noise Z --dp-local-clip C`: noise before the update leaves."""
    group = parser.add_argument_group("on-device differential privacy")
    group.add_argument("--dp-local-noise", type=float, help="z: clip, then add N(0, (z C)^2)")
    group.add_argument("--dp-local-clip", type=float, default=1.0, help="L2 clip norm C")
    group.add_argument("--dp-local-delta", type=float, default=1e-5, help="delta for epsilon")


def local_dp_config(args: argparse.Namespace) -> DpConfig | None:
    """The on-device DP config, or None without `--dp-local-noise`."""
    if args.dp_local_noise is None:
        return None
    from fleet_protocol.differential_privacy import DpConfig, PrivacyConfigError

    try:
        return DpConfig(args.dp_local_noise, args.dp_local_clip, args.dp_local_delta)
    except PrivacyConfigError as exc:
        raise UsageError(str(exc)) from exc
