"""`iomt simulate`: the main job, a federated fleet end to end on one machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iomt.commands.aggregator_options import DEFAULT_BUFFER_SIZE, DEFAULT_MAX_STALENESS
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.progress import PhaseProgress
from iomt.subject_ids import subject_ids_argument
from iomt.tensorflow_start import start_tensorflow_quietly

HELP = "simulate a federated fleet end to end: data, model, broker, aggregator, devices, report"


def _ids(text: str) -> tuple[int, ...]:
    return tuple(subject_ids_argument(text))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=("har", "stress"), default="har", help="what to simulate")
    parser.add_argument("--devices", type=int, help="edge processes (default: per task)")
    parser.add_argument("--rounds", type=int, default=20, help="federated rounds")
    parser.add_argument("--data", type=Path, help="window dataset (default: the task's source)")
    parser.add_argument("--broker", help="use this broker (default: start one on loopback)")
    parser.add_argument("--strategy", default="fedavg", help="aggregation strategy")
    parser.add_argument(
        "--codec",
        default="int8",
        help="update codec announced each round: int8, float16, float32 or topk:<density>"
        " (int8 top-k with error feedback, e.g. topk:0.05), each optionally +zstd",
    )
    parser.add_argument(
        "--partition", default="subject", choices=("subject", "dirichlet"), help="data per device"
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration")
    parser.add_argument(
        "--pretrain-subjects", type=_ids, help="public subjects for the backbone, e.g. 1,2,3 or 1-3"
    )
    parser.add_argument("--test-subjects", type=_ids, help="held-out subjects (scored only)")
    parser.add_argument("--epochs", type=int, help="backbone training epochs")
    parser.add_argument("--model-size", choices=("pi", "mcu"), help="backbone width")
    parser.add_argument(
        "--min-agreement", type=float, default=0.98, help="int8/float agreement conversion needs"
    )
    parser.add_argument("--local-epochs", type=int, default=5, help="devices' epochs")
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="devices' SGD step (default: the task's, har 0.1, stress 0.03)",
    )
    parser.add_argument("--momentum", type=float, default=0.9, help="devices' SGD momentum")
    parser.add_argument("--deadline", type=float, default=20.0, help="seconds per round at most")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="replay speed-up (0: each device has its windows at once)",
    )
    parser.add_argument(
        "--drop-rate", type=float, default=0.0, help="chance a device vanishes in a round"
    )
    parser.add_argument("--poison", type=int, default=0, help="devices sending poisoned deltas")
    parser.add_argument(
        "--mcu-devices",
        type=int,
        default=0,
        help="of the devices, this many (the last ones) are QEMU microcontrollers that train"
        " their rounds behind `iomt edge --serial --train-on-mcu`",
    )
    parser.add_argument(
        "--secure-agg", action="store_true", help="secure aggregation: the aggregator sees sums"
    )
    parser.add_argument(
        "--kill-aggregator-at",
        type=int,
        metavar="ROUND",
        help="SIGKILL the aggregator during this round and restart it",
    )
    parser.add_argument(
        "--mode", choices=("sync", "async"), default="sync",
        help="synchronous rounds, or buffered asynchronous ones (iomt aggregator --mode)",
    )  # fmt: skip
    parser.add_argument(
        "--buffer-size", type=int, default=DEFAULT_BUFFER_SIZE, help="async: updates per version"
    )
    parser.add_argument(
        "--max-staleness", type=int, default=DEFAULT_MAX_STALENESS,
        help="async: refuse updates trained more versions ago than this",
    )  # fmt: skip
    parser.add_argument(
        "--train-time", type=float, default=0.0, metavar="S",
        help="each device's local training lasts at least S s (a real wait: a slower CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--slow-fraction", type=float, default=0.0, help="share of devices that are slower"
    )
    parser.add_argument(
        "--slowdown", type=float, default=5.0, help="how many times longer they train"
    )
    parser.add_argument("--out", type=Path, help="report directory (default runs/sim-TASK)")
    parser.add_argument("--cache-dir", type=Path, help="data and bundle cache")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--json", action="store_true", help="print report.json to stdout")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    _check(args)
    start_tensorflow_quietly()  # only now: a refused command imports nothing heavy
    from iomt.simulation.model_cache import default_cache_dir
    from iomt.simulation.runner import SimulationConfig, run_simulation

    config = SimulationConfig(
        task=args.task,
        devices=args.devices,
        rounds=args.rounds,
        out=args.out or Path("runs") / f"sim-{args.task}",
        cache_dir=args.cache_dir or default_cache_dir(),
        data=args.data,
        broker=args.broker,
        strategy=args.strategy,
        codec=args.codec,
        partition=args.partition,
        alpha=args.alpha,
        pretrain_subjects=args.pretrain_subjects,
        test_subjects=args.test_subjects,
        epochs=args.epochs,
        model_size=args.model_size,
        min_agreement=args.min_agreement,
        local_epochs=args.local_epochs,
        learning_rate=args.learning_rate,
        momentum=args.momentum,
        deadline_s=args.deadline,
        speed=args.speed,
        drop_rate=args.drop_rate,
        poison=args.poison,
        kill_aggregator_at=args.kill_aggregator_at,
        seed=args.seed,
        secure_agg=args.secure_agg,
        mode=args.mode,
        buffer_size=args.buffer_size,
        max_staleness=args.max_staleness,
        train_time_s=args.train_time,
        slow_fraction=args.slow_fraction,
        slowdown=args.slowdown,
        mcu_devices=args.mcu_devices,
    )
    with PhaseProgress(env) as progress:

        def on_round(metrics: dict[str, Any]) -> None:
            progress.show("round", int(metrics["round"]), args.rounds, _round_status(metrics))

        report = run_simulation(config, announce=env.warn, on_round=on_round)
    if args.json:
        env.print(json.dumps(report, indent=2))
    else:
        _print_summary(env, report, config.out)
    return ExitStatus.SUCCESS


def _check(args: argparse.Namespace) -> None:
    from aggregator.strategies import STRATEGIES
    from iomt.input_checks import check_codec

    args.codec = check_codec("--codec", args.codec)

    if args.strategy not in STRATEGIES:
        raise UsageError(
            f"unknown strategy {args.strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    if args.devices is not None and args.devices < 1:
        raise UsageError("--devices must be at least 1")
    if not 0.0 <= args.drop_rate < 1.0:
        raise UsageError("--drop-rate must be in [0, 1)")
    if args.poison < 0 or (args.devices is not None and args.poison > args.devices):
        raise UsageError("--poison must be between 0 and --devices")
    _check_mcu_devices(args)
    if args.kill_aggregator_at is not None and not 1 < args.kill_aggregator_at <= args.rounds:
        raise UsageError("--kill-aggregator-at must name a round after the first")
    if args.mode == "async" and args.secure_agg:
        raise UsageError("--secure-agg masks one synchronous round's sum: use --mode sync")
    if args.buffer_size < 1 or args.max_staleness < 0:
        raise UsageError("--buffer-size must be at least 1 and --max-staleness at least 0")
    if args.train_time < 0 or args.slowdown < 1 or not 0.0 <= args.slow_fraction <= 1.0:
        raise UsageError("--train-time >= 0, --slowdown >= 1 and --slow-fraction in [0, 1]")


def _check_mcu_devices(args: argparse.Namespace) -> None:
    """MCU devices are the last ones; they neither poison nor mask (the MCU's delta is sent)."""
    if args.mcu_devices == 0:
        return
    import shutil

    if args.mcu_devices < 0 or (args.devices is not None and args.mcu_devices > args.devices):
        raise UsageError("--mcu-devices must be between 0 and --devices")
    if args.secure_agg:
        raise UsageError("--mcu-devices cannot run with --secure-agg (the MCU's delta is sent)")
    if args.devices is not None and args.poison + args.mcu_devices > args.devices:
        raise UsageError("--poison and --mcu-devices devices must not overlap")
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc") if shutil.which(t) is None]
    if missing:
        raise UsageError(f"--mcu-devices needs {', '.join(missing)} (install with `make firmware`)")


def _print_summary(env: Environment, report: dict[str, Any], out: Path) -> None:
    from iomt.simulation.report import Summary, summary_lines

    summary = Summary(**report["summary"])
    env.print(f"{'model':<44}{'accuracy':>9}")
    for name, value in summary_lines(summary):
        env.print(f"{name:<44}{value:>9.3f}")
    pooled = report.get("pooled")
    if pooled and pooled["validation"]:
        scores = pooled["validation"]
        pretrained = scores.get(pooled.get("pretrained_recipe", ""))
        against = "" if pretrained is None else f", the pretrained head {pretrained:.3f}"
        env.print(f"pooled row: {pooled['recipe']}, chosen by leave-one-device-out "
                  f"({scores[pooled['recipe']]:.3f}; the fleet's procedure "
                  f"{scores[pooled['fleet_recipe']]:.3f}{against})")  # fmt: skip
    rounds = report["rounds"]
    total_up = sum(r["bytes_up"] for r in rounds)
    env.print(
        f"{len(rounds)} rounds, {total_up / 1024:.1f} KiB uploaded in all, "
        f"{report['timings_s']['total']:.0f} s  ->  {out}/report.md"
    )


def _round_status(metrics: dict[str, Any]) -> str:
    """Devices reporting, accuracy and bytes of one closed round."""
    parts = [f"devices {metrics.get('participants', 0)}"]
    if metrics.get("accuracy") is not None:
        parts.append(f"accuracy {metrics['accuracy']:.3f}")
    parts.append(f"up {metrics.get('bytes_in', 0) / 1024:.1f} KiB")
    return "  ".join(parts)
