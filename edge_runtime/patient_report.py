"""A patient summary from the device's sample store: activity minutes per class and stress
episodes over time, rendered as one self-contained HTML page with inline SVG charts.

Pure except `read_report_windows` (a read-only query of the store). No plotting library: the
SVG is written by hand so the report builds on a small device. The HTML never touches the
disk in clear on the device: `sealed_report.seal` encrypts it for the clinician first.
"""

from __future__ import annotations

import html
import json
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.errors import StoreError

STRESS_NAMES = ("stress", "stressed", "amusement_stress")
EPISODE_GAP_S = 120.0  # stress windows closer than this belong to one episode
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip


@dataclass(frozen=True)
class ReportWindow:
    """One stored window: when, which class, and whether a person or the model said so."""

    start_ts: float
    end_ts: float
    label: int
    confirmed: bool  # labelled by the user / a button, not just predicted


@dataclass(frozen=True)
class StressEpisode:
    """A run of stress windows."""

    start_ts: float
    end_ts: float

    @property
    def minutes(self) -> float:
        return (self.end_ts - self.start_ts) / 60.0


@dataclass(frozen=True)
class PatientSummary:
    """Everything the report shows (all durations in minutes)."""

    label_names: tuple[str, ...]
    start_ts: float
    end_ts: float
    minutes_per_class: dict[str, float]
    minutes_per_bucket: dict[str, dict[str, float]]  # bucket ("2026-11-28") -> class -> min
    stress_episodes: tuple[StressEpisode, ...]
    stress_class: str | None
    windows: int
    confirmed_windows: int
    bucket: str  # "day" or "hour"


def read_report_windows(store_path: Path) -> tuple[list[ReportWindow], tuple[str, ...]]:
    """Windows with a label or a prediction, oldest first, and the class names (read-only)."""
    if not store_path.exists():
        raise StoreError(f"no sample store {store_path}")
    uri = f"file:{store_path.resolve()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as db:
            rows = db.execute(
                "SELECT start_ts, end_ts, label, label_source, predicted FROM samples"
                " WHERE label IS NOT NULL OR predicted IS NOT NULL ORDER BY start_ts"
            ).fetchall()
            meta = db.execute("SELECT value FROM meta WHERE key = 'labels'").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read sample store {store_path}: {exc}") from None
    windows = [_window(*row) for row in rows]
    names = tuple(json.loads(meta[0])) if meta else ()
    return windows, names


def _window(start: float, end: float, label: int | None, source: str | None,
            predicted: int | None) -> ReportWindow:  # fmt: skip
    confirmed = label is not None and source in ("user", "button")
    chosen = label if label is not None else predicted
    assert chosen is not None
    return ReportWindow(float(start), float(end), int(chosen), confirmed)


def _class_name(index: int, names: tuple[str, ...]) -> str:
    return names[index] if 0 <= index < len(names) else f"class {index}"


def _own_durations(windows: list[ReportWindow]) -> list[float]:
    """Seconds each window accounts for: up to the next window's start (windows overlap)."""
    durations = []
    for i, window in enumerate(windows):
        length = window.end_ts - window.start_ts
        if i + 1 < len(windows):
            length = min(length, max(0.0, windows[i + 1].start_ts - window.start_ts))
        durations.append(length)
    return durations


def _bucket_key(ts: float, bucket: str) -> str:
    fmt = "%Y-%m-%d" if bucket == "day" else "%Y-%m-%d %H:00"
    return time.strftime(fmt, time.gmtime(ts))


def find_stress_episodes(
    windows: list[ReportWindow], stress_label: int, gap_s: float = EPISODE_GAP_S
) -> tuple[StressEpisode, ...]:
    """Merge stress windows closer than `gap_s` into episodes."""
    episodes: list[StressEpisode] = []
    for w in (w for w in windows if w.label == stress_label):
        if episodes and w.start_ts - episodes[-1].end_ts <= gap_s:
            episodes[-1] = StressEpisode(episodes[-1].start_ts, max(episodes[-1].end_ts, w.end_ts))
        else:
            episodes.append(StressEpisode(w.start_ts, w.end_ts))
    return tuple(episodes)


def summarize(
    windows: list[ReportWindow], label_names: tuple[str, ...], bucket: str | None = None
) -> PatientSummary:
    """Minutes per class overall and per day (per hour for spans under a day), episodes."""
    if not windows:
        raise StoreError("the sample store holds no labelled or predicted windows to report")
    start, end = windows[0].start_ts, max(w.end_ts for w in windows)
    bucket = bucket or ("hour" if end - start < 86400 else "day")
    totals: dict[str, float] = defaultdict(float)
    per_bucket: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for window, seconds in zip(windows, _own_durations(windows), strict=True):
        name = _class_name(window.label, label_names)
        totals[name] += seconds / 60.0
        per_bucket[_bucket_key(window.start_ts, bucket)][name] += seconds / 60.0
    stress = next((i for i, n in enumerate(label_names) if n.lower() in STRESS_NAMES), None)
    episodes = find_stress_episodes(windows, stress) if stress is not None else ()
    return PatientSummary(
        label_names, start, end, dict(totals), {k: dict(v) for k, v in per_bucket.items()},
        episodes, label_names[stress] if stress is not None else None, len(windows),
        sum(w.confirmed for w in windows), bucket,
    )  # fmt: skip


def _colour(name: str, summary: PatientSummary) -> str:
    names = list(summary.label_names) or sorted(summary.minutes_per_class)
    index = names.index(name) if name in names else len(names)
    return PALETTE[index % len(PALETTE)]


def stacked_bars_svg(summary: PatientSummary, width: int = 720, height: int = 260) -> str:
    """Minutes per class in each bucket as stacked bars (inline SVG)."""
    buckets = sorted(summary.minutes_per_bucket)
    peak = max(sum(v.values()) for v in summary.minutes_per_bucket.values()) or 1.0
    bar_w = (width - 60) / max(len(buckets), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}"'
             ' role="img" aria-label="minutes per class over time">']  # fmt: skip
    parts += _minute_ticks(peak, width, height)  # grid first: the bars cover it
    for i, key in enumerate(buckets):
        y = float(height)
        for name, minutes in sorted(summary.minutes_per_bucket[key].items()):
            h = minutes / peak * (height - 20)
            y -= h
            parts.append(f'<rect x="{50 + i * bar_w:.1f}" y="{y:.1f}" width="{bar_w * 0.8:.1f}" '
                         f'height="{h:.1f}" fill="{_colour(name, summary)}">'
                         f"<title>{html.escape(key)} {html.escape(name)}: {minutes:.1f} min"
                         "</title></rect>")  # fmt: skip
        if len(buckets) <= 31 or i % max(1, len(buckets) // 12) == 0:
            label = html.escape(key[5:] if summary.bucket == "hour" else key[-5:])
            parts.append(f'<text x="{50 + i * bar_w:.1f}" y="{height + 15}" font-size="10">'
                         f"{label}</text>")  # fmt: skip
    parts.append(f'<line x1="48" y1="{height}" x2="{width}" y2="{height}" stroke="#333"/>')
    parts.append(f'<text x="{width / 2:.0f}" y="{height + 34}" font-size="11"'
                 f' text-anchor="middle">{summary.bucket} (UTC)</text></svg>')  # fmt: skip
    return "".join(parts)


def _minute_ticks(peak: float, width: int, height: int) -> list[str]:
    """Five y ticks from 0 to the tallest bar, with faint grid lines, in minutes."""
    ticks = []
    for i in range(5):
        value = peak * i / 4
        y = height - value / peak * (height - 20)
        ticks.append(f'<line x1="48" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="44" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                     f"{value:.0f}</text>")  # fmt: skip
    ticks.append('<text x="0" y="10" font-size="10">min</text>')
    return ticks


def stress_timeline_svg(summary: PatientSummary, width: int = 720, height: int = 80) -> str:
    """Stress episodes on a time line with a time axis (inline SVG)."""
    span = max(summary.end_ts - summary.start_ts, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
             ' role="img" aria-label="stress episodes over time">',
             f'<rect x="0" y="20" width="{width}" height="20" fill="#eee"/>']  # fmt: skip
    for episode in summary.stress_episodes:
        x = (episode.start_ts - summary.start_ts) / span * width
        w = max(2.0, episode.minutes * 60 / span * width)
        colour = _colour(summary.stress_class or "", summary)
        parts.append(f'<rect x="{x:.1f}" y="20" width="{w:.1f}" height="20" fill="{colour}">'
                     f"<title>{episode.minutes:.1f} min</title></rect>")  # fmt: skip
    parts += _time_ticks(summary.start_ts, span, width)
    parts.append("</svg>")
    return "".join(parts)


def _time_ticks(start_ts: float, span: float, width: int) -> list[str]:
    """Five time labels under the line (date and time when the span crosses days)."""
    fmt = "%H:%M" if span < 86400 else "%m-%d %H:%M"
    ticks = []
    for i in range(5):
        x = i / 4 * width
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"  # ends stay inside
        label = time.strftime(fmt, time.gmtime(start_ts + span * i / 4))
        ticks.append(f'<line x1="{x:.1f}" y1="40" x2="{x:.1f}" y2="45" stroke="#333"/>'
                     f'<text x="{x:.1f}" y="58" font-size="10" text-anchor="{anchor}">{label}'
                     "</text>")  # fmt: skip
    ticks.append(f'<text x="{width / 2:.0f}" y="74" font-size="11" text-anchor="middle">'
                 "time (UTC)</text>")  # fmt: skip
    return ticks


def render_html(
    summary: PatientSummary, title: str, generated_ts: float, patient: str = "",
    privacy: str = "",
) -> str:  # fmt: skip
    """The whole report: one HTML page, no external resources; `patient` names whose it is,
    `privacy` the model's (epsilon, delta) sentence (`edge_runtime.model_privacy`)."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(generated_ts))
    period = " to ".join(time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))
                         for t in (summary.start_ts, summary.end_ts))  # fmt: skip
    rows = "".join(f'<tr><td><span style="color:{_colour(n, summary)}">&#9632;</span> '
                   f"{html.escape(n)}</td><td>{m:.1f}</td></tr>"
                   for n, m in sorted(summary.minutes_per_class.items()))  # fmt: skip
    legend = f"{summary.windows} windows, {summary.confirmed_windows} confirmed by the patient"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}"
        "td{padding:2px 12px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + (f"<p><b>Patient / device: {html.escape(patient)}</b></p>" if patient else "")
        + f"<p>Period {period} (UTC). Generated {when}.</p>"
        f"<p>{legend}; the rest are the model's predictions.</p>"
        + (f"<p>{html.escape(privacy)}</p>" if privacy else "")
        + f"<h2>Activity minutes per class</h2><table><tr><th>class</th><th>minutes</th></tr>"
        f"{rows}</table><h2>Minutes per class per {summary.bucket}</h2>"
        f"{stacked_bars_svg(summary)}{_stress_section(summary)}</body></html>"
    )


def _stress_section(summary: PatientSummary) -> str:
    if summary.stress_class is None:
        return "<h2>Stress episodes</h2><p>This model has no stress class.</p>"
    episodes = summary.stress_episodes
    total = sum(e.minutes for e in episodes)
    return (
        f"<h2>Stress episodes</h2><p>{len(episodes)} episodes, {total:.1f} minutes in total."
        f"</p>{stress_timeline_svg(summary)}"
    )
