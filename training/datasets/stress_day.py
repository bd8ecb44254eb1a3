"""A simulated recording session: blocks of sitting, standing, talking, walking, stairs and stress.

Each session opens with a seated baseline, then deals out two stress episodes and two other
activities in random order (`random_session`: daily life; `random_lab_session`: a laboratory
protocol like WESAD's, stressors and seated rests only). Heart rate, RMSSD, breathing and the
Mayer wave follow each block with first-order kinetics (a delay, a rise, a recovery after the
block, two-phase after exercise), so transitions have no crisp edges and one block's recovery
runs into the next. A stress episode lands with its own intensity (partial responses), and the
label is what the person reported: whole blocks are sometimes misreported and the reported
boundaries jitter.
`session_profile` turns the blocks into arrays on a 0.5 s grid that `stress_rhythm` turns into
beats. Ranges and sources: docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.sensors.cardiac import ornstein_uhlenbeck
from training.datasets.stress_person import StressPerson

GRID_STEP_S = 0.5
EXERCISE = ("walk", "stairs")
MILD_CONFOUNDERS = ("stand", "talk")
MILD_PROBABILITY = 0.5  # a session also holds standing or talking
MISREPORT_PROBABILITY = 0.03  # a block labelled the other way round by its self-report
BOUNDARY_JITTER_S = 10.0  # sd of where a reported block boundary falls
_DURATION_MIN = {
    "baseline": (3.0, 5.0),
    "stress": (5.0, 8.0),
    "walk": (3.0, 5.0),
    "stairs": (1.0, 2.0),
    "stand": (3.0, 5.0),
    "talk": (3.0, 5.0),
    "sit": (2.0, 4.0),
}
_RECOVERY_AFTER_STAIRS_MIN = (2.0, 4.0)  # seated, labelled non-stress: recovery after exercise


@dataclass(frozen=True)
class Block:
    """One stretch of the session: what the person did, for how long, and what they reported."""

    kind: str
    start_s: float
    duration_s: float
    stress: bool  # the protocol's truth
    reported_stress: bool  # the label, after self-report noise

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Profile:
    """Physiology over one session on a `GRID_STEP_S` grid, all arrays (grid,)."""

    hr_bpm: np.ndarray
    rmssd_ms: np.ndarray
    breathing_per_min: np.ndarray
    breathing_wander: np.ndarray  # relative sd of breath-to-breath rate (speech: irregular)
    lf_ms: np.ndarray
    artefacts_per_min: np.ndarray  # extra PPG motion bursts on top of the sensor's own
    dropouts_per_min: np.ndarray  # PPG contact losses
    label: np.ndarray  # int64, reported stress (1) or not (0)

    @property
    def duration_s(self) -> float:
        return float(self.hr_bpm.size * GRID_STEP_S)


def random_session(rng: np.random.Generator) -> list[Block]:
    """Baseline, then two stress episodes, a seated rest, walking or stairs, and sometimes
    standing or talking, in random order."""
    kinds = ["stress", "stress", "sit", str(rng.choice(EXERCISE))]
    if rng.uniform() < MILD_PROBABILITY:
        kinds.append(str(rng.choice(MILD_CONFOUNDERS)))
    return _dealt_blocks(kinds, rng)


def random_lab_session(rng: np.random.Generator) -> list[Block]:
    """A laboratory protocol: baseline, then two stressors and two seated rests (amusement,
    meditation, as in WESAD) in random order; no exercise, posture change or chat."""
    return _dealt_blocks(["stress", "stress", "sit", "sit"], rng)


def _dealt_blocks(kinds: list[str], rng: np.random.Generator) -> list[Block]:
    """A seated baseline, then `kinds` in random order, with their durations and reports."""
    order = ["baseline", *(kinds[i] for i in rng.permutation(len(kinds)))]
    blocks: list[Block] = []
    start = 0.0
    for kind in order:
        for part in [kind, "sit"] if kind == "stairs" else [kind]:
            low, high = _RECOVERY_AFTER_STAIRS_MIN if part != kind else _DURATION_MIN[part]
            duration = 60.0 * rng.uniform(low, high)
            stress = part == "stress"
            reported = stress != (kind != "baseline" and rng.uniform() < MISREPORT_PROBABILITY)
            blocks.append(Block(part, start, duration, stress, reported))
            start += duration
    return blocks


def _response(
    grid: np.ndarray, block: Block, delay_s: float, tau_on_s: float, recovery: tuple[float, ...]
) -> np.ndarray:
    """Unit response to a block: delayed first-order rise, then recovery after the block.

    `recovery` is `(tau_fast_s,)` or `(tau_fast_s, slow_share, tau_slow_s)` (two-phase recovery
    after exercise).
    """
    onset = block.start_s + delay_s
    rise = np.where(grid >= onset, 1.0 - np.exp(-np.clip(grid - onset, 0.0, None) / tau_on_s), 0.0)
    at_end = 1.0 - np.exp(-max(block.end_s - onset, 0.0) / tau_on_s)
    after = np.clip(grid - block.end_s, 0.0, None)
    tau_fast, slow_share, tau_slow = (*recovery, 0.0, 1.0)[:3]
    decay = (1.0 - slow_share) * np.exp(-after / tau_fast) + slow_share * np.exp(-after / tau_slow)
    return np.where(grid < block.end_s, rise, at_end * decay)


def _bursts(
    grid: np.ndarray,
    start_s: float,
    end_s: float,
    per_min: float,
    bpm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Heart-rate accelerations (3 s rise, 12 s decay) at random times in [start, end)."""
    out = np.zeros_like(grid)
    for onset in rng.uniform(start_s, end_s, size=rng.poisson(per_min * (end_s - start_s) / 60.0)):
        lag = np.clip(grid - onset, 0.0, None)
        out += rng.uniform(0.5, 1.0) * bpm * (1.0 - np.exp(-lag / 3.0)) * np.exp(-lag / 12.0) / 0.6
    return out


@dataclass
class _Effects:
    """Accumulators for one session's physiology, offsets from the person's resting state."""

    hr: np.ndarray
    log_rmssd: np.ndarray
    breathing: np.ndarray
    wander: np.ndarray
    log_lf: np.ndarray
    artefacts: np.ndarray
    dropouts: np.ndarray


def _add_block(
    effects: _Effects,
    grid: np.ndarray,
    block: Block,
    person: StressPerson,
    stressor_scale: float,
    rng: np.random.Generator,
) -> None:
    """Add one block's physiological effect (see the table in docs/data.md)."""
    inside = (grid >= block.start_s) & (grid < block.end_s)
    u = rng.uniform
    if block.kind == "stress":
        intensity = stressor_scale * u(0.8, 1.0)  # partial responses
        shape = _response(grid, block, u(5.0, 20.0), u(10.0, 30.0), (u(30.0, 90.0),))
        effects.hr += intensity * person.stress_hr_bpm * shape
        effects.hr += _bursts(grid, block.start_s, block.end_s, person.stress_bursts_per_min,
                              intensity * person.stress_burst_bpm, rng)  # fmt: skip
        effects.log_rmssd += intensity * np.log(person.stress_rmssd_factor) * shape
        effects.breathing += intensity * person.stress_breathing_per_min * shape
        effects.log_lf += intensity * np.log(u(1.0, 1.4)) * shape
        effects.wander[inside] = 0.08
        effects.artefacts[inside] += 0.5  # fidgeting
    elif block.kind == "talk":
        shape = _response(grid, block, u(0.0, 10.0), u(10.0, 30.0), (u(30.0, 90.0),))
        effects.hr += u(2.0, 5.0) * shape
        effects.log_rmssd += np.log(u(0.8, 1.0)) * shape
        effects.breathing += u(0.0, 3.0) * shape
        effects.log_lf += np.log(u(1.0, 1.3)) * shape
        effects.wander[inside] = 0.30
        effects.artefacts[inside] += u(0.5, 2.0)  # gesturing
    elif block.kind in ("walk", "stairs"):
        load = u(0.8, 1.2) if block.kind == "walk" else u(1.4, 2.0)
        shape = _response(grid, block, 0.0, u(30.0, 60.0), (u(30.0, 60.0), u(0.3, 0.4), 300.0))
        effects.hr += load * person.walk_hr_bpm * shape
        effects.log_rmssd += np.log(u(0.3, 0.6)) * shape
        effects.breathing += load * u(4.0, 6.0) * shape
        effects.log_lf += np.log(u(0.6, 0.9)) * shape
        effects.artefacts[inside] += u(1.5, 4.0) * load
        effects.dropouts[inside] += 0.2
    elif block.kind == "stand":
        shape = _response(grid, block, 0.0, u(10.0, 20.0), (u(15.0, 30.0),))
        effects.hr += person.stand_hr_bpm * shape
        lag = np.clip(grid - block.start_s, 0.0, None)  # initial orthostatic overshoot
        effects.hr += inside * u(8.0, 18.0) * (1.0 - np.exp(-lag / 3.0)) * np.exp(-lag / 8.0) / 0.55
        effects.log_rmssd += np.log(u(0.65, 0.85)) * shape
        effects.log_lf += np.log(u(1.1, 1.5)) * shape


def _add_background(
    effects: _Effects, grid: np.ndarray, drifts: bool, rng: np.random.Generator
) -> None:
    """Slow wander, spontaneous accelerations and, with `drifts`, in 30% of the sessions a
    caffeine-like drift (lab participants are asked to abstain)."""
    effects.hr += ornstein_uhlenbeck(grid.size, GRID_STEP_S, 2.5, 180.0, rng)
    effects.hr += _bursts(grid, -20.0, float(grid[-1]), 0.1, rng.uniform(2.0, 5.0), rng)
    if drifts and rng.uniform() < 0.3:
        onset = rng.uniform(0.0, float(grid[-1]))
        lag = np.clip(grid - onset, 0.0, None)
        rise = 1.0 - np.exp(-lag / rng.uniform(300.0, 900.0))
        effects.hr += rng.uniform(2.0, 5.0) * rise
        effects.log_rmssd += np.log(rng.uniform(0.85, 0.95)) * rise


def _reported_labels(grid: np.ndarray, blocks: list[Block], rng: np.random.Generator) -> np.ndarray:
    """The self-reported label at each grid time, with jittered block boundaries."""
    label = np.zeros(grid.size, dtype=np.int64)
    for block in blocks:
        start = block.start_s + (rng.normal(0.0, BOUNDARY_JITTER_S) if block.start_s > 0 else 0.0)
        end = block.end_s + rng.normal(0.0, BOUNDARY_JITTER_S)
        label[(grid >= start) & (grid < end)] = int(block.reported_stress)
    return label


def session_profile(
    person: StressPerson,
    blocks: list[Block],
    rng: np.random.Generator,
    drifts: bool = True,
    stressor_scale: float = 1.0,
) -> Profile:
    """The person's physiology through `blocks`, on the `GRID_STEP_S` grid (`drifts`: daily
    life's caffeine-like drifts, which a lab session lacks; `stressor_scale`: how much harder
    than daily life's its stressors hit)."""
    grid = np.arange(0.0, blocks[-1].end_s, GRID_STEP_S)
    effects = _Effects(
        hr=np.zeros_like(grid),
        log_rmssd=np.zeros_like(grid),
        breathing=np.zeros_like(grid),
        wander=np.full_like(grid, 0.06),  # resting breath-to-breath variation
        log_lf=np.zeros_like(grid),
        artefacts=np.zeros_like(grid),
        dropouts=np.zeros_like(grid),
    )
    for block in blocks:
        _add_block(effects, grid, block, person, stressor_scale, rng)
    _add_background(effects, grid, drifts, rng)
    return Profile(
        hr_bpm=np.clip(person.rest_hr_bpm + effects.hr, 40.0, 175.0),
        rmssd_ms=person.rest_rmssd_ms * np.exp(effects.log_rmssd),
        breathing_per_min=np.clip(person.rest_breathing_per_min + effects.breathing, 6.0, 35.0),
        breathing_wander=effects.wander,
        lf_ms=person.rest_lf_ms * np.exp(effects.log_lf),
        artefacts_per_min=effects.artefacts,
        dropouts_per_min=0.1 + effects.dropouts,
        label=_reported_labels(grid, blocks, rng),
    )
