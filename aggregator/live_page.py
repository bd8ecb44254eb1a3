"""A small read-only web page of the fleet, and the HTTP server that also serves `/metrics`.

`render_page` is pure (snapshot in, HTML out: a fleet table, accuracy and bytes per round as
inline SVG, refusals) so it can be tested without a socket; `LivePage` is the thin shell, a
thread serving `/` and `/metrics` from a fresh snapshot of the state file on every request.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aggregator.fleet_snapshot import FleetSnapshot, RoundPoint, read_fleet_snapshot
from aggregator.fleet_view import FleetRow

REFRESH_S = 10
_CHART_W, _CHART_H, _PAD = 440, 200, 50
_STYLE = (
    "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
    "td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}"
    ".online{color:#1a7f37}.offline{color:#b42318}.charts{display:flex;gap:32px;margin-top:20px}"
)


def render_page(snap: FleetSnapshot, now: float) -> str:
    """The whole page: summary, fleet table, the two charts, refusals."""
    state = "no round open" if snap.open_round is None else f"round {snap.open_round} open"
    summary = (f"version {snap.latest_version} &middot; {state} &middot;"
               f" {snap.devices_online}/{len(snap.devices)} devices online")  # fmt: skip
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>iomt fleet</title>'
        f'<meta http-equiv="refresh" content="{REFRESH_S}"><style>{_STYLE}</style></head><body>'
        f"<h1>Fleet</h1><p>{summary}</p>{_fleet_table(snap.devices, now)}"
        f'<div class="charts">{_accuracy_chart(snap)}{_bytes_chart(snap.rounds)}</div>'
        f"<h2>Refused updates</h2>{_rejections(snap.rejections)}</body></html>"
    )


def _fleet_table(devices: list[FleetRow], now: float) -> str:
    head = "<tr><th>device</th><th>state</th><th>last seen</th><th>version</th>"
    head += "<th>last round</th><th>refused</th><th>health</th></tr>"
    rows = []
    for d in devices:
        state = "online" if d.online else "offline"
        seen = "never" if d.last_seen_unix is None else f"{now - d.last_seen_unix:.0f} s ago"
        refused = ", ".join(f"{k}: {v}" for k, v in d.rejections.items()) or "-"
        cells = [html.escape(d.device_id), state, seen, _dash(d.model_version),
                 _dash(d.last_round), html.escape(refused), _health(d)]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td class={state}>{c}</td>" if c == state
                                     else f"<td>{c}</td>" for c in cells) + "</tr>")  # fmt: skip
    return f"<table>{head}{''.join(rows) or '<tr><td>no devices yet</td></tr>'}</table>"


def _health(device: FleetRow) -> str:
    disk = (
        None if device.free_disk_bytes is None else f"{device.free_disk_bytes / 2**30:.1f} GiB free"
    )
    temp = None if device.cpu_temp_c is None else f"{device.cpu_temp_c:.0f} &deg;C"
    backlog = None if device.outbox_backlog is None else f"outbox {device.outbox_backlog}"
    return ", ".join(part for part in (disk, temp, backlog) if part) or "-"


def _rejections(totals: dict[str, int]) -> str:
    if not totals:
        return "<p>none</p>"
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in totals.items())
    return f"<table><tr><th>reason</th><th>count</th></tr>{rows}</table>"


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _frame(title: str, y_label: str, y_max: float, x_ticks: list[int], body: str) -> str:
    """An SVG chart: title, axes with labels and 5 y ticks from 0 to `y_max`."""
    w, h, p = _CHART_W, _CHART_H, _PAD
    ticks = "".join(
        f'<text x="{p - 4}" y="{h - p - (h - 2 * p) * i / 4 + 4:.0f}" font-size="10"'
        f' text-anchor="end">{_tick(y_max * i / 4)}</text>'
        for i in range(5)
    )
    xs = "".join(
        f'<text x="{_x(i, len(x_ticks)):.0f}" y="{h - p + 14}" font-size="10"'
        f' text-anchor="middle">{t}</text>'
        for i, t in enumerate(x_ticks)
    )
    return (
        f'<svg width="{w}" height="{h + 20}" role="img"><title>{title}</title>'
        f'<text x="{w / 2}" y="14" text-anchor="middle" font-weight="bold">{title}</text>'
        f'<line x1="{p}" y1="{h - p}" x2="{w - 10}" y2="{h - p}" stroke="#444"/>'
        f'<line x1="{p}" y1="{p - 10}" x2="{p}" y2="{h - p}" stroke="#444"/>{ticks}{xs}'
        f'<text x="{w / 2}" y="{h - 6}" font-size="11" text-anchor="middle">round</text>'
        f'<text x="12" y="{h / 2}" font-size="11" text-anchor="middle"'
        f' transform="rotate(-90 12 {h / 2})">{y_label}</text>{body}</svg>'
    )


def _tick(value: float) -> str:
    """Short tick labels that fit left of the axis: 0.25, 980, 12k, 3.4M."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def _x(index: int, count: int) -> float:
    span = _CHART_W - _PAD - 30
    return _PAD + 15 + (span * index / max(1, count - 1) if count > 1 else span / 2)


def _y(value: float, y_max: float) -> float:
    return _CHART_H - _PAD - (_CHART_H - 2 * _PAD) * value / y_max


def _accuracy_chart(snap: FleetSnapshot) -> str:
    """From round 0 (the pretrained head, before any federated round) to the last closed one."""
    series = [(0, snap.initial_accuracy)] + [(p.round_id, p.accuracy) for p in snap.rounds]
    count = len(series)
    scored = [(i, a) for i, (_, a) in enumerate(series) if a is not None]
    points = " ".join(f"{_x(i, count):.0f},{_y(a, 1.0):.0f}" for i, a in scored)
    dots = "".join(f'<circle cx="{_x(i, count):.0f}" cy="{_y(a, 1.0):.0f}" r="3"'
                   ' fill="#1f77b4"/>' for i, a in scored)  # fmt: skip
    line = f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
    ticks = [round_id for round_id, _ in series]
    return _frame("Holdout accuracy per round (0: pretrained)", "accuracy", 1.0, ticks,
                  line + dots)  # fmt: skip


def _bytes_chart(rounds: list[RoundPoint]) -> str:
    totals = [p.bytes_in + p.bytes_out for p in rounds]
    top = (max(totals, default=0) or 1) * 1.1
    slot = (_CHART_W - _PAD - 10) / max(1, len(rounds))  # one slot per round, bar in its middle
    width = min(40.0, slot * 0.6)
    bars = "".join(
        f'<rect x="{_PAD + slot * (i + 0.5) - width / 2:.0f}" y="{_y(t, top):.0f}"'
        f' width="{width:.0f}" height="{_CHART_H - _PAD - _y(t, top):.0f}" fill="#ff7f0e"/>'
        for i, t in enumerate(totals)
    )
    labels = "".join(
        f'<text x="{_PAD + slot * (i + 0.5):.0f}" y="{_CHART_H - _PAD + 14}" font-size="10"'
        f' text-anchor="middle">{p.round_id}</text>'
        for i, p in enumerate(rounds)
    )
    return _frame("Bytes per round (in + out)", "bytes", top, [], bars + labels)


class LivePage:
    """`/` (the page) and `/metrics` (Prometheus) on a port, from the state file, in a thread."""

    def __init__(self, state_path: Path, port: int, host: str = "127.0.0.1") -> None:
        snapshot: Callable[[], FleetSnapshot] = lambda: read_fleet_snapshot(state_path)  # noqa: E731
        self._server = ThreadingHTTPServer((host, port), _handler(snapshot))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LivePage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(snapshot: Callable[[], FleetSnapshot]) -> type[BaseHTTPRequestHandler]:
    from aggregator.prometheus_metrics import metrics_text

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(metrics_text(snapshot), "text/plain; version=0.0.4")
            elif self.path in ("/", "/index.html"):
                self._send(render_page(snapshot(), time.time()).encode(), "text/html")
            else:
                self.send_error(404)

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # scrapes every few seconds would drown the aggregator's own log

    return Handler
