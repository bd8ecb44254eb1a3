"""`iomt train`: train, prune and evaluate a model on a window dataset, writing `runs/NAME`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError
from iomt.input_checks import check_dataset_file, check_number
from iomt.progress import PhaseProgress
from iomt.subject_ids import subject_ids_argument
from iomt.tensorflow_start import start_tensorflow_quietly

HELP = "train an LSTM-FCN or BiLSTM on a window dataset, prune it, and write runs/NAME"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="window dataset .npz")
    parser.add_argument("--arch", required=True, choices=["lstm-fcn", "bilstm"], help="backbone")
    parser.add_argument("--out", required=True, type=Path, help="run directory to write")
    parser.add_argument("--size", default="pi", choices=["pi", "mcu"], help="model width")
    parser.add_argument("--sparsity", type=float, default=0.5, help="pruning target (0 = none)")
    parser.add_argument(
        "--epochs", type=int, default=30, help="dense epochs (early stopping, unless --refit)"
    )
    parser.add_argument("--prune-epochs", type=int, default=10, help="pruning epochs")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam step")
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience")
    parser.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    parser.add_argument(
        "--mirror",
        type=float,
        default=0.0,
        metavar="P",
        help="mirror each window to the other wrist with probability P; for data of mixed, "
        "unknown wrists (the watch loader already puts every recording in the left-wrist frame)",
    )
    parser.add_argument("--test-subjects", type=subject_ids_argument, help="e.g. 8,9,10")
    parser.add_argument("--val-subjects", type=subject_ids_argument, help="e.g. 6,7")
    parser.add_argument(
        "--train-subjects",
        type=subject_ids_argument,
        help="train only on these, e.g. 1-15,21-60 (default: every subject not in test or val)",
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help="run the full --epochs schedule without early stopping, report validation, then "
        "retrain the same schedule on train + val subjects",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout")


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    if not 0.0 <= args.sparsity < 1.0:
        raise UsageError(f"--sparsity must be in [0, 1), got {args.sparsity}")
    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if not 0.0 <= args.mirror <= 1.0:
        raise UsageError(f"--mirror must be in [0, 1], got {args.mirror}")
    check_number("--learning-rate", args.learning_rate)
    check_number("--batch-size", args.batch_size)
    check_number("--patience", args.patience, inclusive=True)
    check_number("--prune-epochs", args.prune_epochs, inclusive=True)
    check_dataset_file("--data", args.data)
    start_tensorflow_quietly()  # only now: a refused command imports nothing heavy
    from training.training_run import TrainingRequest, run_training

    request = TrainingRequest(
        data=args.data,
        arch=args.arch,
        out=args.out,
        size=args.size,
        sparsity=args.sparsity,
        epochs=args.epochs,
        prune_epochs=args.prune_epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        augment=not args.no_augment,
        mirror_probability=args.mirror,
        test_subjects=args.test_subjects,
        val_subjects=args.val_subjects,
        train_subjects=args.train_subjects,
        refit=args.refit,
        seed=args.seed,
    )
    with PhaseProgress(env) as progress:
        metrics = run_training(request, progress=progress.update, announce=env.warn)
    _print_summary(env, metrics, args)
    return ExitStatus.SUCCESS


def _print_summary(env: Environment, metrics: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        env.print(json.dumps(metrics, indent=2))
        return
    test = metrics["test"]
    env.print(
        f"test accuracy {test['accuracy']:.3f}  macro-F1 {test['macro_f1']:.3f}"
        f"  val accuracy {metrics['val']['accuracy']:.3f}  sparsity {metrics['sparsity']:.3f}"
        f"  -> {args.out}"
    )
