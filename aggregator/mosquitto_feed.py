"""Workers' share of the update stream through libmosquitto (pymosquitto), not paho.

paho-mqtt is pure Python: for each ~5 KB update its network thread reads and parses the
PUBLISH and writes the PUBACK under the GIL (~50 µs of CPU per update on the bench box, against
~22 µs through libmosquitto, which frames, acknowledges and keeps the connection alive in C;
`docs/scaling.md`). So a worker takes its `$share/` update subscription on a connection of its
own through Mosquitto's own client library, and keeps the rest (round, models, partial sums)
on its paho link. The callback only puts the message on that link's bounded queue, as
`aggregator.nats_queue` does for a NATS queue group. Its acks go out on the same connection
(`FeedLink`): one per update, QoS 1, ~15 µs of CPU each with the PUBACK against ~35 through
paho; still only after their batch's commit, as the service orders them.

The connection has a clean session (MQTT 5 clean start, no session expiry): when a worker dies,
its share of the group ends with its connection and Mosquitto hands the next updates to the
other workers, instead of queueing them for a session that may never come back. What was in
flight to the dead worker (not yet committed, so not acknowledged to the device) is resent by
the device after its ack timeout, as with the NATS queue group; with no worker connected at all,
Mosquitto drops updates for the group and the devices resend them the same way.

Needs Debian's `libmosquitto1` (the broker's package depends on it); without it `available()`
is False and the worker takes its updates through paho as before. Plain connections to one
broker only: pymosquitto 0.4.1 binds `mosquitto_tls_set` with one argument too few (no
`pw_callback`), and a broker list's failover is the paho link's; TLS and lists stay on paho.
It reports a disconnect through `ConnackCode(rc)`, which fails for libmosquitto's own error
codes (a lost connection is 7), so no disconnect callback is set: libmosquitto reconnects by
itself and `on_connect` subscribes again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleet_protocol.errors import FederationError
from fleet_protocol.event_queue import BoundedEventQueue
from fleet_protocol.mqtt_link import (
    BrokerAddress,
    LinkEvent,
    MqttLinkError,
    MqttPublishTimeoutError,
    broker_addresses,
    topic_kind,
)

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30  # as the paho link's
QOS = 1  # the broker's in-flight window paces a burst; libmosquitto sends the PUBACKs in C
_MQTT_V5, _MQTT_V311 = 5, 4


class MosquittoFeedError(FederationError):
    """libmosquitto could not connect or subscribe."""

    reason = "transport"


def available() -> bool:
    """Whether pymosquitto and the libmosquitto it loads are installed."""
    try:
        import pymosquitto  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # no libmosquitto, or one older than 2.0
        return False
    return True


def usable_for(broker_url: str, tls: bool) -> bool:
    """One broker (no failover list, which only the paho link walks), without TLS."""
    try:
        addresses = broker_addresses(broker_url)
    except FederationError:
        return False
    return len(addresses) == 1 and not (tls or addresses[0].tls)


@dataclass
class MosquittoFeed:
    """One shared subscription whose messages go to `sink` as `LinkEvent`s."""

    broker_url: str
    client_id: str
    topic: str
    sink: BoundedEventQueue[LinkEvent]
    log: Callable[[str], None] = lambda line: None
    _client: Any = None
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout_s: float = CONNECT_TIMEOUT_S) -> MosquittoFeed:
        """Connect in libmosquitto's own thread and wait for the first SUBACK."""
        from pymosquitto import Mosquitto
        from pymosquitto.constants import ConnackCode

        address = broker_addresses(self.broker_url)[0]
        protocol = _MQTT_V5 if address.mqtt_v5 else _MQTT_V311
        client = Mosquitto(client_id=self.client_id, clean_start=True, protocol=protocol)
        accepted = ConnackCode.ACCEPTED

        def on_connect(client: Any, userdata: Any, code: Any) -> None:  # libmosquitto's thread
            if code == accepted:
                client.subscribe(self.topic, QOS)  # a clean session: again on every connect
            else:
                self.log(f"update feed: connection refused ({code.name})")

        client.on_connect = on_connect
        client.on_subscribe = lambda *args: self._subscribed.set()
        client.on_message = self._on_message
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S, True)
        self._client = client
        _connect(client, address)
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise MosquittoFeedError(f"MQTT broker {self.broker_url} took no subscription to"
                                     f" {self.topic} within {timeout_s:.0f} s")  # fmt: skip
        self.log(f"update feed: {self.topic} through libmosquitto")
        return self

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic, payload = message.topic, message.payload
        event = LinkEvent("message", topic, payload, bool(message.retain))
        self.sink.put_message(event, len(payload), topic_kind(topic) or "other", key=topic)

    def publish(self, topic: str, payload: bytes) -> None:
        """Hand a QoS 1 message to libmosquitto (its thread sends it and takes the PUBACK)."""
        from pymosquitto.client import MosquittoError

        client = self._client
        if client is None:
            raise MqttLinkError("publish before start()")
        try:
            client.publish(topic, payload, QOS, False)
        except MosquittoError as exc:  # e.g. not connected: the device resends, we ack again
            raise MqttPublishTimeoutError(f"publish to {topic}: {exc}") from exc

    def stop(self) -> None:
        """Disconnect and end libmosquitto's thread; safe twice."""
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect(strict=False)
        client.loop_stop(False)

    def __enter__(self) -> MosquittoFeed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _connect(client: Any, address: BrokerAddress) -> None:
    """Hand the address to libmosquitto and start its network thread (it connects, retries)."""
    from pymosquitto.client import MosquittoError

    try:
        client.connect_async(address.host, address.port, KEEPALIVE_S)
        client.loop_start()
    except MosquittoError as exc:
        raise MosquittoFeedError(f"libmosquitto: {exc}") from exc


class _Link(Protocol):
    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = True
    ) -> None: ...
    def next_event(self, timeout_s: float) -> LinkEvent | None: ...


@dataclass
class FeedLink:
    """A worker's link: events from paho's queue (where the feed puts updates too); acks out
    through the feed's connection, everything else (partial sums) through paho."""

    link: _Link
    feed: MosquittoFeed

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = True
    ) -> None:
        """Acks (never retained, nobody waits for them) through libmosquitto."""
        if topic_kind(topic) == "ack" and not retain:
            self.feed.publish(topic, payload)
        else:
            self.link.publish(topic, payload, retain=retain, wait=wait)

    def next_event(self, timeout_s: float) -> LinkEvent | None:
        return self.link.next_event(timeout_s)
