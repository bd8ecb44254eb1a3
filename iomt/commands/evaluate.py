"""`iomt evaluate`: a trained run on a dataset's test subjects, float beside int8 and TFLM."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.input_checks import check_dataset_file, check_run_dir
from iomt.subject_ids import parse_subject_ids
from iomt.tensorflow_start import start_tensorflow_quietly

SPLITS = ("test", "val", "all")
HELP = "evaluate runs/NAME on a dataset (float; int8 LiteRT and TFLM once converted)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="training run directory")
    parser.add_argument("--data", required=True, type=Path, help="window dataset .npz")
    parser.add_argument("--bundle", type=Path, help="converted bundle: adds int8 and TFLM columns")
    parser.add_argument(
        "--subjects", default="test", help="'test', 'val', 'all' or ids 1,2,3 or 1-3,7"
    )
    parser.add_argument(
        "--plot", type=Path, help="confusion-matrix PNG (default RUN/confusion.png)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    check_run_dir(args.run)
    check_dataset_file("--data", args.data)
    named = _named_subjects(args.subjects)
    start_tensorflow_quietly()  # only now: a refused command imports nothing heavy
    from training.datasets.window_dataset import load_window_dataset
    from training.plots import plot_confusion_matrix
    from training.run_artifacts import load_run
    from training.run_evaluation import evaluate_run

    trained = load_run(args.run)
    dataset = load_window_dataset(args.data)
    subjects = named if named is not None else _split_subjects(args.subjects, trained)
    trained_on = sorted(set(subjects) & set(trained.split.train_subjects))
    if trained_on:
        env.warn(f"subjects {trained_on} trained this model: theirs is not held-out accuracy")
    results = evaluate_run(trained, dataset, subjects, _variant_predictor(args.bundle))
    plot_path = args.plot or args.run / "confusion.png"
    first = next(iter(results.values()))
    plot_confusion_matrix(
        first.confusion, list(trained.labels), f"{args.run.name} on subjects {subjects}", plot_path
    )
    _print(env, results, args.json)
    env.warn(f"confusion matrix -> {plot_path}")
    return ExitStatus.SUCCESS


def _variant_predictor(bundle: Path | None) -> Any:
    """int8 LiteRT and TFLM predictions of a converted bundle, or None without one."""
    if bundle is None:
        return None
    from convert.parity import predict_bundle_variants

    return lambda windows: predict_bundle_variants(bundle, windows)


def _named_subjects(text: str) -> list[int] | None:
    """Ids the user listed, or None for one of the run's own splits."""
    if text in SPLITS:
        return None
    try:
        return parse_subject_ids(text)
    except ValueError as error:
        raise UsageError(f"--subjects: {error}") from None


def _split_subjects(name: str, trained: Any) -> list[int]:
    split = trained.split
    if name == "test":
        return list(split.test_subjects)
    if name == "val":
        return list(split.val_subjects)
    # "all": after --refit the validation subjects also trained
    return sorted(set(split.train_subjects + split.val_subjects + split.test_subjects))


def _print(env: Environment, results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        env.print(json.dumps({name: r.to_dict() for name, r in results.items()}, indent=2))
        return
    env.print(f"{'model':<16}{'accuracy':>10}{'macro-F1':>10}")
    for name, report in results.items():
        env.print(f"{name:<16}{report.accuracy:>10.3f}{report.macro_f1:>10.3f}")
