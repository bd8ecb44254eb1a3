"""One simulated person for `simulated-stress`: resting physiology, reactivity, fitness, sensor.

Every draw has a published range behind it; docs/data.md (section simulated-stress) names the
source of each. Traits are per person and fixed for the whole recording day; how strongly one
episode of stress lands is drawn per episode (`stress_day`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.sensors.ppg import PpgSensor


@dataclass(frozen=True)
class StressPerson:
    """Resting physiology and how this person responds to stress, posture and exercise."""

    rest_hr_bpm: float
    rest_rmssd_ms: float
    rest_breathing_per_min: float
    rest_lf_ms: float  # RR amplitude of the 0.1 Hz Mayer-wave band
    stress_hr_bpm: float  # tonic heart-rate rise of a full response
    stress_rmssd_factor: float  # RMSSD multiplier of a full response
    stress_breathing_per_min: float  # breathing-rate rise of a full response
    stress_bursts_per_min: float  # task-evoked heart-rate accelerations
    stress_burst_bpm: float
    responder: bool  # False: a blunted responder (physiology barely follows the stressor)
    walk_hr_bpm: float  # steady heart-rate rise walking at an easy pace (lower = fitter)
    stand_hr_bpm: float  # sustained orthostatic rise
    sensor: PpgSensor


def _clipped_normal(
    rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float
) -> float:
    return float(np.clip(rng.normal(mean, sd), lo, hi))


def random_stress_person(rng: np.random.Generator) -> StressPerson:
    """Draw a person; the ranges and their sources are in docs/data.md."""
    rest_hr = _clipped_normal(rng, 68.0, 10.0, 48.0, 100.0)
    rest_rmssd = float(np.clip(np.exp(rng.normal(np.log(40.0), 0.40)), 15.0, 110.0))
    rest_rmssd *= float(np.clip(68.0 / rest_hr, 0.7, 1.4))  # vagal tone falls as rest HR rises
    responder = bool(rng.uniform() > 0.1)
    reactivity = 1.0 if responder else rng.uniform(0.4, 0.7)
    return StressPerson(
        rest_hr_bpm=rest_hr,
        rest_rmssd_ms=rest_rmssd,
        rest_breathing_per_min=rng.uniform(11.0, 16.0),
        rest_lf_ms=rng.uniform(15.0, 40.0),
        stress_hr_bpm=reactivity * _clipped_normal(rng, 10.0, 4.0, 4.0, 25.0),
        stress_rmssd_factor=1.0 - reactivity * rng.uniform(0.15, 0.40),
        stress_breathing_per_min=reactivity * rng.uniform(4.0, 8.0),
        stress_bursts_per_min=rng.uniform(3.0, 5.0),
        stress_burst_bpm=reactivity * rng.uniform(8.0, 14.0),
        responder=responder,
        walk_hr_bpm=rng.uniform(15.0, 35.0),
        stand_hr_bpm=rng.uniform(5.0, 15.0),
        sensor=PpgSensor(
            pulse_amplitude=float(rng.uniform(0.5, 2.0)),
            noise_sd=float(rng.uniform(0.02, 0.10)),
            artefacts_per_min=float(rng.uniform(0.2, 1.0)),
        ),
    )
