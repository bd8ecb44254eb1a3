"""Accuracy against epsilon for central DP-FedAvg on the `watch` task (no MQTT, no TensorFlow).

Embeds every window once with a bundle's int8 backbone, splits each non-pretraining subject's
windows into `--devices-per-subject` devices (70 % train, 30 % held out), then runs FedAvg
rounds in process with the real pieces: `edge_runtime.local_update` on each device and
`aggregator.strategies.dp_fedavg.DpFedAvg` (or plain FedAvg) at the aggregator. Prints one JSON line
per setting: noise multiplier, epsilon at delta after the rounds (RDP), held-out accuracy.

    python bench/dp_watch.py --bundle B --data watch.npz --rounds 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from aggregator.privacy_accountant import PrivacyAccountant
from aggregator.strategies import make_strategy
from aggregator.strategies.dp_fedavg import DpFedAvg
from edge_runtime.device_loop import read_bundle_parts
from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from fleet_protocol.differential_privacy import DpConfig, global_norm
from fleet_protocol.messages import FitConfig

NORMS: list[float] = []  # every update's L2 norm in the current setting


def _devices(subject: np.ndarray, pretrain: set[int], per_subject: int, rng: np.random.Generator):
    train, test = [], []
    for s in sorted(set(subject.tolist()) - pretrain):
        index = rng.permutation(np.flatnonzero(subject == s))
        cut = int(0.7 * len(index))
        test.append(index[cut:])
        train.extend(np.array_split(index[:cut], per_subject))
    return train, np.concatenate(test)


def _run(strategy, head: Head, E, y, devices, test, rounds: int, fit: FitConfig) -> float:
    weights = [w.astype(np.float32) for w in head.weights]
    for round_id in range(rounds):
        strategy.begin_round(weights)
        for d, index in enumerate(devices):
            start = Head(weights, head.activations)
            delta = local_update(start, fit, E[index], y[index], seed=round_id * 1000 + d).delta
            NORMS.append(global_norm(delta))
            strategy.accumulate(delta, len(index), f"d{d}")
        weights = strategy.finish_round(weights)
    final = Head.from_weights(weights, head.activations)
    return float(np.mean(final.predict(E[test]) == y[test]))


def _random_head(head: Head) -> Head:
    """Glorot-uniform kernels, zero biases, same shapes and activations."""
    rng = np.random.default_rng(1234)
    weights = []
    for w in head.weights:
        if w.ndim == 2:
            limit = np.sqrt(6.0 / sum(w.shape))
            weights.append(rng.uniform(-limit, limit, w.shape).astype(np.float32))
        else:
            weights.append(np.zeros_like(w, dtype=np.float32))
    return Head.from_weights(weights, head.activations)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pretrain", default="1,2,3,4,5,6")
    parser.add_argument("--devices-per-subject", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clip", type=float, default=0.5)
    parser.add_argument("--noise", default="0,0.5,1,2,4")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--local-epochs", type=int, default=5)
    parser.add_argument(
        "--reset-head", action="store_true", help="start from a random head (FL must learn it)"
    )
    args = parser.parse_args()
    parts = read_bundle_parts(args.bundle)
    E, y = parts.embed_dataset(args.data)
    with np.load(args.data, allow_pickle=False) as data:
        subject = data["subject"]
    head = _random_head(parts.head) if args.reset_head else parts.head
    fit = FitConfig(local_epochs=args.local_epochs, batch_size=16, learning_rate=args.learning_rate)
    pretrain = {int(s) for s in args.pretrain.split(",")}
    for noise in [float(z) for z in args.noise.split(",")]:
        scores, baselines = [], []
        NORMS.clear()
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            devices, test = _devices(subject, pretrain, args.devices_per_subject, rng)
            if noise == 0:
                strategy = make_strategy("fedavg")
            else:
                strategy = DpFedAvg(DpConfig(noise, args.clip, args.delta), rng=rng)
            scores.append(_run(strategy, head, E, y, devices, test, args.rounds, fit))
            baselines.append(float(np.mean(head.predict(E[test]) == y[test])))
        epsilon = (PrivacyAccountant(DpConfig(noise, args.clip, args.delta)).epsilon(args.rounds)
                   if noise else float("inf"))  # fmt: skip
        baseline = float(np.mean(baselines))
        clipped = float(np.mean(np.asarray(NORMS) > args.clip))
        print(json.dumps({"noise_multiplier": noise, "epsilon": round(epsilon, 2),
                          "delta": args.delta, "rounds": args.rounds, "clip": args.clip,
                          "devices": len(devices),
                          "accuracy_mean": round(float(np.mean(scores)), 4),
                          "accuracy_std": round(float(np.std(scores)), 4),
                          "pretrained_head_accuracy": round(baseline, 4),
                          "median_update_norm": round(float(np.median(NORMS)), 3),
                          "clipped_fraction": round(clipped, 3)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
