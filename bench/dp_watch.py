"""Accuracy against epsilon for central DP-FedAvg on the `watch` task (no MQTT, no TensorFlow).

Embeds every window once with a bundle's int8 backbone, splits each non-pretraining subject's
windows into `devices_per_subject` simulated devices (70 % train, 30 % held out), then runs
FedAvg rounds in process with the real pieces: `edge_runtime.local_update` on each device,
`fleet_protocol.device_sampling` to draw each round's Poisson sample, and
`aggregator.strategies.dp_fedavg.DpFedAvg` (fixed or adaptive clip) or plain FedAvg at the
aggregator; epsilon from `aggregator.privacy_accountant` (RDP, sub-sampled when q < 1).
Prints one JSON line per setting. A setting is `z=NOISE,q=RATE,clip=NORM|auto,dps=N,gamma=Q`
(noise multiplier, sampling rate, clip or adaptive clip, devices per subject, target quantile):

    python -m bench dp --setting z=3,q=1,clip=auto,dps=8,gamma=0.9
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aggregator.adaptive_clipping import AdaptiveClipConfig
from aggregator.privacy_accountant import PrivacyAccountant
from aggregator.strategies import make_strategy
from aggregator.strategies.dp_fedavg import DpFedAvg
from edge_runtime.device_loop import read_bundle_parts
from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from fleet_protocol.device_sampling import is_sampled
from fleet_protocol.differential_privacy import DpConfig, global_norm
from fleet_protocol.messages import FitConfig

FRONTIER = (
    # no noise at both fleet sizes, the old fixed-clip points, then adaptive clipping (target
    # quantile 0.9) on the 32-device fleet, then Poisson sampling on a 128-device fleet
    "z=0,q=1,clip=0.5,dps=8", "z=0,q=1,clip=0.5,dps=32",
    "z=2,q=1,clip=0.5,dps=8", "z=4,q=1,clip=0.5,dps=8",
    "z=2,q=1,clip=auto,dps=8,gamma=0.9", "z=3,q=1,clip=auto,dps=8,gamma=0.9",
    "z=5,q=1,clip=auto,dps=8,gamma=0.9",
    "z=1,q=0.25,clip=auto,dps=32,gamma=0.9", "z=2,q=0.25,clip=auto,dps=32,gamma=0.9",
    "z=3,q=0.25,clip=auto,dps=32,gamma=0.9", "z=1.5,q=0.1,clip=auto,dps=32,gamma=0.9",
)  # fmt: skip
BASE_DEVICES_PER_SUBJECT = 8
"""4 test subjects x 8 = the 32-device fleet; more devices re-draw windows of the same subjects."""
ADAPTIVE_START_CLIP = 0.1
"""Andrew et al.'s initial clip; the quantile rule moves it from there."""


@dataclass(frozen=True)
class Setting:
    """One point of the frontier: noise multiplier, sampling rate, clip (None: adaptive), fleet."""

    noise: float
    sampling_rate: float
    clip: float | None
    devices_per_subject: int
    target_quantile: float = 0.5

    @classmethod
    def parse(cls, text: str) -> Setting:
        """`z=3,q=0.25,clip=auto,dps=32` (clip `auto`: adaptive clipping)."""
        fields = dict(part.split("=", 1) for part in text.split(","))
        clip = None if fields.get("clip", "auto") == "auto" else float(fields["clip"])
        return cls(float(fields["z"]), float(fields.get("q", 1)), clip,
                   int(fields.get("dps", 8)), float(fields.get("gamma", 0.5)))  # fmt: skip


@dataclass
class _Run:
    """What one seed of one setting measured."""

    accuracy: float
    norms: list[float]
    clips: list[float]
    sampled: list[int]


def _devices(subject: np.ndarray, pretrain: set[int], per_subject: int, rng: np.random.Generator):
    """Each subject's training windows in BASE_DEVICES_PER_SUBJECT disjoint parts; a larger
    fleet draws each further device's windows (as many) from the same subject's training set."""
    train, test = [], []
    for s in sorted(set(subject.tolist()) - pretrain):
        index = rng.permutation(np.flatnonzero(subject == s))
        cut = int(0.7 * len(index))
        test.append(index[cut:])
        parts = np.array_split(index[:cut], min(per_subject, BASE_DEVICES_PER_SUBJECT))
        size = len(parts[-1])
        extra = [rng.choice(index[:cut], size, replace=False)
                 for _ in range(per_subject - len(parts))]  # fmt: skip
        train.extend([*parts, *extra])
    return train, np.concatenate(test)


def _strategy(setting: Setting, fleet_size: int, delta: float, rng: np.random.Generator):
    if setting.noise == 0:
        return make_strategy("fedavg")
    expected = setting.sampling_rate * fleet_size
    config = DpConfig(setting.noise, setting.clip or ADAPTIVE_START_CLIP, delta,
                      sampling_probability=setting.sampling_rate)  # fmt: skip
    adaptive = None
    if setting.clip is None:  # Andrew et al.: sigma_b = expected count / 20, and 2 sigma_b > z
        adaptive = AdaptiveClipConfig(
            setting.target_quantile, bit_noise_std=max(expected / 20.0, setting.noise)
        )
    divisor = expected if setting.sampling_rate < 1 else None
    return DpFedAvg(config, rng=rng, expected_count=divisor, adaptive=adaptive)


def _run(setting: Setting, head: Head, E, y, devices, test, args, seed: int) -> _Run:
    rng = np.random.default_rng(seed)
    strategy = _strategy(setting, len(devices), args.delta, rng)
    fit = FitConfig(local_epochs=args.local_epochs, batch_size=16, learning_rate=args.learning_rate)
    weights = [w.astype(np.float32) for w in head.weights]
    run = _Run(0.0, [], [], [])
    for round_id in range(args.rounds):
        seed_text = rng.bytes(16).hex()  # the aggregator's fresh per-round seed
        chosen = [d for d in range(len(devices))
                  if is_sampled(seed_text, round_id, f"d{d}", setting.sampling_rate)]  # fmt: skip
        run.sampled.append(len(chosen))
        if not chosen:
            continue  # nothing released: the model stays, privacy is still spent (counted)
        strategy.begin_round(weights)
        for d in chosen:
            start = Head(weights, head.activations)
            delta = local_update(start, fit, E[devices[d]], y[devices[d]],
                                 seed=seed * 100_000 + round_id * 1000 + d).delta  # fmt: skip
            run.norms.append(global_norm(delta))
            strategy.accumulate(delta, len(devices[d]), f"d{d}")
        weights = strategy.finish_round(weights)
        if isinstance(strategy, DpFedAvg):
            run.clips.append(strategy.clip_norm)
    final = Head.from_weights(weights, head.activations)
    run.accuracy = float(np.mean(final.predict(E[test]) == y[test]))
    return run


def _epsilon(setting: Setting, rounds: int, delta: float, fleet_size: int) -> float:
    if setting.noise == 0:
        return float("inf")
    config = DpConfig(setting.noise, 1.0, delta, sampling_probability=setting.sampling_rate)
    return PrivacyAccountant(config).epsilon(rounds)


def _row(setting: Setting, runs: list[_Run], baseline: float, fleet: int, args) -> dict:
    norms = np.asarray([n for r in runs for n in r.norms])
    clips = [r.clips[-1] for r in runs if r.clips]
    scores = [r.accuracy for r in runs]
    return {"noise_multiplier": setting.noise, "sampling_rate": setting.sampling_rate,
            "clip": _clip_label(setting),
            "target_quantile": setting.target_quantile if setting.clip is None else None,
            "epsilon": round(_epsilon(setting, args.rounds, args.delta, fleet), 2),
            "delta": args.delta, "rounds": args.rounds, "devices": fleet,
            "devices_per_round_mean": round(float(np.mean([n for r in runs for n in r.sampled])),
                                            1),
            "accuracy_mean": round(float(np.mean(scores)), 4),
            "accuracy_std": round(float(np.std(scores)), 4),
            "pretrained_head_accuracy": round(baseline, 4),
            "median_update_norm": round(float(np.median(norms)), 3),
            "final_clip_median": round(float(np.median(clips)), 3) if clips else None,
            "seeds": len(runs)}  # fmt: skip


def _clip_label(setting: Setting) -> str | float:
    if setting.noise == 0:
        return "none"  # plain FedAvg: nothing clipped
    return "adaptive" if setting.clip is None else setting.clip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pretrain", default="1,2,3,4,5,6")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--setting", action="append", help="z=..,q=..,clip=..|auto,dps=..")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--local-epochs", type=int, default=5)
    return parser


def main() -> None:
    args = _parser().parse_args()
    settings = [Setting.parse(text) for text in (args.setting or FRONTIER)]
    parts = read_bundle_parts(args.bundle)
    E, y = parts.embed_dataset(args.data)
    with np.load(args.data, allow_pickle=False) as data:
        subject = data["subject"]
    pretrain = {int(s) for s in args.pretrain.split(",")}
    for setting in settings:
        runs, baselines = [], []
        for seed in range(args.seeds):
            split_rng = np.random.default_rng(seed)
            devices, test = _devices(subject, pretrain, setting.devices_per_subject, split_rng)
            runs.append(_run(setting, parts.head, E, y, devices, test, args, seed))
            baselines.append(float(np.mean(parts.head.predict(E[test]) == y[test])))
        row = _row(setting, runs, float(np.mean(baselines)), len(devices), args)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
