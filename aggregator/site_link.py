"""A site aggregator's two links: the site broker for everything, the central one for its sum.

A site aggregator (`iomt aggregator --role site`) is an aggregator worker (`aggregator.
worker_core`, `aggregator.worker_service`: validate, commit, ack, keep a partial sum) whose
devices talk to the site's own broker. The coordinator's round and models reach that broker
through its bridge (`aggregator.broker_bridge`); acks go back to the devices there; only the
signed partial sum goes upstream, on its own link to the central broker (`--upstream`), so the
site hears the central broker's PUBACK for it. `SiteLink` gives the worker service one `Link`
that does this routing and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.service import Link
from fleet_protocol.mqtt_link import LinkEvent, topic_kind
from fleet_protocol.topics import subscription_topic

UPSTREAM_KINDS = frozenset({"partial"})


def site_subscriptions(fleet: str) -> tuple[str, ...]:
    """What a site aggregator follows on its site broker: round, heads and every update."""
    return tuple(subscription_topic(fleet, kind) for kind in ("round", "model", "update"))


def secure_site_subscriptions(fleet: str) -> tuple[str, ...]:
    """With secure aggregation: round and heads, and the devices' phase messages (no updates)."""
    from fleet_protocol.secure_aggregation.transport import aggregator_subscriptions

    rounds = tuple(subscription_topic(fleet, kind) for kind in ("round", "model"))
    return rounds + aggregator_subscriptions(fleet)


@dataclass
class SiteLink:
    """Events from the site broker; publishes to it, except partial sums, which go upstream."""

    site: Link
    upstream: Link

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = True
    ) -> None:
        """Partial sums to the central broker, everything else (acks) to the site broker."""
        target = self.upstream if topic_kind(topic) in UPSTREAM_KINDS else self.site
        target.publish(topic, payload, retain=retain, wait=wait)

    def next_event(self, timeout_s: float) -> LinkEvent | None:
        """The site broker's next event (the upstream link only publishes)."""
        return self.site.next_event(timeout_s)
