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
    group.add_argument(
        "--dp-fleet-size",
        type=int,
        help="devices in the fleet: with --dp-sampling-rate < 1 the mean divides"
        " by rate x size (the count that came would leak who was drawn)",
    )
    group.add_argument(
        "--dp-clip-quantile",
        type=float,
        help="adaptive clipping: the clip follows this quantile of update norms"
        " (Andrew et al. 2021; --dp-clip is the starting clip)",
    )
    group.add_argument(
        "--dp-clip-rate",
        type=float,
        default=0.2,
        help="adaptive clipping: geometric step of the clip per round",
    )
    group.add_argument(
        "--dp-bit-noise",
        type=float,
        help="adaptive clipping: noise std on the sum of clip bits (default:"
        " max(expected devices per round / 20, noise multiplier))",
    )
    group.add_argument("--max-epsilon", type=float,
                       help="per-device budget: a device that would pass it is refused"
                            " (privacy_budget) and stops sending")  # fmt: skip


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


def dp_strategy(config: DpConfig, store: Any, args: argparse.Namespace) -> Any:
    """A DP-FedAvg strategy that counts the rounds already released from this state file."""
    from aggregator.strategies.dp_fedavg import DpFedAvg

    expected = _expected_count(config, args)
    strategy = DpFedAvg(
        config,
        rounds_already_released=released_rounds(store),
        expected_count=expected,
        adaptive=_adaptive_clip(config, args, expected),
    )
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


def _expected_count(config: DpConfig, args: argparse.Namespace) -> float | None:
    if config.sampling_probability >= 1:
        return None
    if args.dp_fleet_size is None or args.dp_fleet_size < 1:
        raise UsageError(
            "--dp-sampling-rate below 1 needs --dp-fleet-size N (devices in the fleet)"
        )
    return config.sampling_probability * args.dp_fleet_size


def _adaptive_clip(config: DpConfig, args: argparse.Namespace, expected: float | None) -> Any:
    if args.dp_clip_quantile is None:
        return None
    from aggregator.adaptive_clipping import AdaptiveClipConfig, update_noise_multiplier
    from fleet_protocol.differential_privacy import PrivacyConfigError

    per_round = expected if expected is not None else float(args.min_clients)
    bit_noise = args.dp_bit_noise or max(per_round / 20.0, config.noise_multiplier)
    try:
        adaptive = AdaptiveClipConfig(args.dp_clip_quantile, args.dp_clip_rate, bit_noise)
        if config.noise_multiplier > 0:
            update_noise_multiplier(config.noise_multiplier, bit_noise)
    except PrivacyConfigError as exc:
        raise UsageError(str(exc)) from exc
    return adaptive


def privacy_plan(config: DpConfig | None, store: Any, args: argparse.Namespace) -> Any:
    """What the aggregator's privacy ledger needs (None without central DP)."""
    if config is None:
        return None
    from aggregator.privacy_ledger import PrivacyPlan

    if config.noise_multiplier == 0:  # no noise: epsilon is infinite, nothing to track
        return None
    return PrivacyPlan(config, store.privacy.sampling_key(), args.max_epsilon)


def check_privacy_arguments(config: DpConfig | None, args: argparse.Namespace) -> None:
    """Refuse bad privacy options before anything is opened or written."""
    if args.max_epsilon is not None:
        if config is None or config.noise_multiplier == 0:
            raise UsageError("--max-epsilon needs --dp-noise-multiplier > 0")
        if args.max_epsilon <= 0:
            raise UsageError("--max-epsilon must be > 0")
    if config is not None:
        _adaptive_clip(config, args, _expected_count(config, args))


def privacy_status(devices: dict[str, Any], versions: dict[int, Any]) -> dict[str, Any]:
    """Epsilon per device and per version as `iomt aggregator status --json` shows them."""
    from dataclasses import asdict

    return {"devices": [asdict(row) for row in devices.values()],
            "versions": [asdict(row) for row in versions.values()]}  # fmt: skip


def privacy_lines(privacy: dict[str, Any]) -> list[str]:
    """The same as aligned lines, one per device."""
    return [
        f"device {row['device_id']:16s} epsilon {row['epsilon']:.3f}"
        f"  (sample known: {row['epsilon_sample_known']:.3f})"
        f"  rounds {row['rounds_included']}/{row['rounds_in_population']}"
        + ("  budget spent" if row["budget_spent"] else "")
        for row in privacy["devices"]
    ]
