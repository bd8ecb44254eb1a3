"""`iomt data prepare SOURCE [PATH] --out data.npz`: any source to the window-dataset file."""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.subject_ids import subject_ids_argument

HELP = "prepare a window dataset (.npz) from a real or simulated source"
SOURCE_NAMES = "watch | simulated-har | simulated-stress | uci-har | wisdm | wesad"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    prepare = actions.add_parser(
        "prepare", help="load or simulate SOURCE into a .npz", description=HELP
    )
    prepare.add_argument("source", metavar="SOURCE", help=SOURCE_NAMES)
    prepare.add_argument("path", nargs="?", help="file or folder (uci-har, wisdm, wesad)")
    prepare.add_argument("--out", required=True, type=Path, help="window dataset .npz to write")
    prepare.add_argument("--seed", type=int, default=0, help="simulators: random seed (default 0)")
    prepare.add_argument(
        "--subjects",
        type=int,
        help="simulators: how many people, 1..N (subject i is the same person whatever N, so a "
        "larger N only adds people); real data: keep the first N",
    )
    prepare.add_argument(
        "--lab-subjects",
        type=subject_ids_argument,
        metavar="IDS",
        help="simulated-stress: these people (e.g. 1-4) record a laboratory protocol like "
        "WESAD's (seated; stressors and rests only) instead of daily life",
    )
    prepare.add_argument(
        "--skip-malformed",
        action="store_true",
        help="wisdm: drop malformed lines instead of failing",
    )
    prepare.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from training.datasets.errors import MissingPathError, UnknownSourceError
    from training.datasets.sources import prepare_dataset
    from training.datasets.window_dataset import save_window_dataset

    if args.path is not None and not Path(args.path).exists():
        raise UsageError(f"{args.path}: no such file or directory")
    opts: dict[str, Any] = {"subjects": args.subjects}
    if args.skip_malformed:
        if args.source != "wisdm":
            raise UsageError("--skip-malformed applies to the wisdm source only")
        opts["skip_malformed"] = True
    if args.lab_subjects:
        opts["lab_subjects"] = _lab_subjects(args)
    try:
        with _spinner(env, f"preparing {args.source}"):
            dataset = prepare_dataset(args.source, args.path, seed=args.seed, **opts)
    except (MissingPathError, UnknownSourceError) as exc:
        raise UsageError(str(exc)) from exc
    written = save_window_dataset(dataset, args.out)
    summary = _summary(dataset, args.source, written)
    env.print(json.dumps(summary) if args.json else _summary_line(summary))
    return ExitStatus.SUCCESS


def _lab_subjects(args: argparse.Namespace) -> list[int]:
    """`--lab-subjects`, checked against the people the simulator will draw."""
    from training.datasets.simulated_stress import DEFAULT_SUBJECTS

    if args.source != "simulated-stress":
        raise UsageError("--lab-subjects applies to the simulated-stress source only")
    count = args.subjects or DEFAULT_SUBJECTS
    outside = [s for s in args.lab_subjects if not 1 <= s <= count]
    if outside:
        raise UsageError(f"--lab-subjects {outside}: the simulator draws subjects 1..{count}")
    return list(args.lab_subjects)


def _spinner(env: Environment, text: str) -> Any:
    if not env.interactive:
        return nullcontext()
    from rich.console import Console

    return Console(file=env.stderr).status(text)


def _summary(dataset: Any, source: str, path: Path) -> dict[str, Any]:
    return {
        "source": source,
        "out": str(path),
        "windows": dataset.num_windows,
        "window_length": dataset.window_length,
        "sample_rate_hz": dataset.sample_rate_hz,
        "subjects": [int(s) for s in dataset.subjects],
        "labels": list(dataset.labels),
        "class_counts": [int(c) for c in dataset.class_counts()],
        "channels": list(dataset.channels),
    }


def _summary_line(summary: dict[str, Any]) -> str:
    return (
        f"{summary['out']}: {summary['windows']} windows of {summary['window_length']} samples "
        f"at {summary['sample_rate_hz']:g} Hz, {len(summary['subjects'])} subjects, "
        f"{len(summary['labels'])} classes ({', '.join(summary['labels'])}), "
        f"channels {', '.join(summary['channels'])}"
    )
