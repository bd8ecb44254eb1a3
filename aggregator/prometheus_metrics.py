"""The aggregator's Prometheus metrics, computed from a `FleetSnapshot` at every scrape.

A custom collector rather than counters bumped by the service: the state file already holds
every figure, survives restarts, and the service stays free of metrics code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aggregator.fleet_snapshot import FleetSnapshot


class FleetCollector(Collector):
    """Rounds, participants, rejections, bytes, holdout accuracy and devices online."""

    def __init__(self, snapshot: Callable[[], FleetSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        rounds = CounterMetricFamily("iomt_rounds", "Closed rounds by outcome", labels=["status"])
        for status, count in sorted(snap.rounds_by_status().items()):
            rounds.add_metric([status], count)
        yield rounds
        rejected = CounterMetricFamily(
            "iomt_rejected_updates", "Refused updates", labels=["reason"]
        )
        for reason, count in sorted(snap.rejections.items()):
            rejected.add_metric([reason], count)
        yield rejected
        traffic = CounterMetricFamily(
            "iomt_round_bytes", "Bytes of closed rounds", labels=["direction"]
        )
        traffic.add_metric(["in"], sum(p.bytes_in for p in snap.rounds))
        traffic.add_metric(["out"], sum(p.bytes_out for p in snap.rounds))
        yield traffic
        yield from _last_round_gauges(snap)
        yield GaugeMetricFamily("iomt_devices_online", "Devices online", value=snap.devices_online)


def _last_round_gauges(snap: FleetSnapshot) -> Iterator[Metric]:
    last = snap.rounds[-1] if snap.rounds else None
    yield GaugeMetricFamily(
        "iomt_last_round_participants",
        "Devices whose update is in the last closed round",
        value=0 if last is None else last.participants,
    )
    scored = [p for p in snap.rounds if p.accuracy is not None]
    if scored:
        yield GaugeMetricFamily(
            "iomt_holdout_accuracy",
            "Holdout accuracy after the last scored round",
            value=scored[-1].accuracy or 0.0,
        )
    if snap.latest_version is not None:
        yield GaugeMetricFamily(
            "iomt_model_version", "Newest global version", value=snap.latest_version
        )


def metrics_text(snapshot: Callable[[], FleetSnapshot]) -> bytes:
    """The Prometheus text exposition of the fleet, as `/metrics` serves it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(snapshot))
    return generate_latest(registry)
