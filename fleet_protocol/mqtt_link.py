"""The one adapter between this project and paho-mqtt (the only module that imports paho).

Both the edge client and the aggregator service use it. Paho's network thread runs the
callbacks; they only put a `LinkEvent` on a queue, never publish or block (paho issues #354,
#177, #875). The owner drains the queue from its own thread and publishes from there.
The queue is bounded (`fleet_protocol.event_queue`): when the owner falls behind, new
messages are dropped and counted (`dropped`), never buffered without limit. Sessions are
persistent (MQTT v5, clean_start False + session expiry), every topic travels at QoS 1 (each
message matters, and resends are recognised by sequence and hash, so at-least-once is what the
round protocol wants), subscriptions are renewed on every (re)connect, a subscription the SUBACK
refuses is asked for again after a growing delay (NATS refuses one whose JetStream consumer it
could not create in time, under load or while a node fails over), and paho return codes
become `MqttLinkError`.

The broker may be a list (`mqtt://a:1883,mqtt://b:1883`: the nodes of one cluster). paho's own
reconnect loop stays the only retry logic; when a connection drops or a connection attempt
fails, the link points paho at the next node of the list before paho's next attempt, so a
killed node costs one reconnect delay (`RECONNECT_MIN_S`) and the session continues on another
node (the cluster keeps it: NATS in JetStream, EMQX/HiveMQ in their session stores).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleet_protocol.errors import FederationError
from fleet_protocol.event_queue import DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES, BoundedEventQueue
from fleet_protocol.topics import TOPIC_ROOT

QOS = 1
SESSION_EXPIRY_S = 24 * 3600
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
PUBLISH_TIMEOUT_S = 10.0
RESUBSCRIBE_MIN_S, RESUBSCRIBE_MAX_S = 1.0, 30.0  # after a refused subscription, doubling
PUBACK_POLL_S = 0.1  # how often a waiting publish checks that the connection still stands
MAX_PACKET_BYTES = 1024 * 1024  # what we ask the broker to send us at most (MQTT 5)
_NOT_CONNECTED = "MQTT broker {url} did not accept the connection within {timeout:.0f} s"


class MqttLinkError(FederationError):
    """A paho operation failed (mapped from its MQTTErrorCode or reason code)."""

    reason = "transport"


class MqttPublishTimeoutError(MqttLinkError):
    """The broker did not acknowledge a QoS>0 publish in time (paho keeps it queued)."""


def topic_kind(topic: str) -> str:
    """The kind of `iomt/v1/{fleet}/{kind}/...` (e.g. 'update'); '' for foreign topics."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != TOPIC_ROOT:
        return ""
    return parts[3]


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens, parsed from `mqtt://HOST:PORT`."""

    host: str
    port: int
    tls: bool = False
    mqtt_v5: bool = True  # `?mqtt=3.1.1` selects MQTT 3.1.1 (e.g. the embedded amqtt broker)

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "mqtts", "tcp") or not parsed.hostname:
            raise MqttLinkError(f"not an MQTT broker URL: {url!r} (expected mqtt://HOST:PORT)")
        version = parse_qs(parsed.query).get("mqtt", ["5"])[-1]
        if version not in ("5", "3.1.1"):
            raise MqttLinkError(f"unknown MQTT version {version!r} in {url!r} (5 or 3.1.1)")
        tls = parsed.scheme == "mqtts"
        port = parsed.port or (8883 if tls else 1883)
        return cls(parsed.hostname, port, tls, version == "5")


def broker_addresses(urls: str) -> tuple[BrokerAddress, ...]:
    """The brokers of a comma-separated list (nodes of one cluster), in the order to try them."""
    addresses = tuple(BrokerAddress.from_url(url.strip()) for url in urls.split(",") if url.strip())
    if not addresses:
        raise MqttLinkError("no MQTT broker URL given (expected mqtt://HOST:PORT[,...])")
    first = addresses[0]
    if any((a.tls, a.mqtt_v5) != (first.tls, first.mqtt_v5) for a in addresses):
        raise MqttLinkError(f"the brokers of one list need one scheme and MQTT version: {urls!r}")
    return addresses


@dataclass(frozen=True)
class LastWill:
    """Message the broker publishes for us when we vanish without disconnecting."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True)
class TlsFiles:
    """TLS material: the CA that signed the broker, and our client certificate and key."""

    ca_cert: str
    client_cert: str | None = None
    client_key: str | None = None


@dataclass(frozen=True)
class LinkConfig:
    """How to connect: broker, identity, what to follow, persistent session settings."""

    broker_url: str
    client_id: str
    subscriptions: tuple[str, ...] = ()
    last_will: LastWill | None = None
    keepalive_s: int = 30
    session_expiry_s: int = SESSION_EXPIRY_S
    persistent_session: bool = True
    tls: TlsFiles | None = None  # verify the broker against this CA, present this certificate
    max_queued_messages: int = DEFAULT_MAX_MESSAGES  # waiting for the owner; more are dropped
    max_queued_bytes: int = DEFAULT_MAX_BYTES
    max_packet_bytes: int = MAX_PACKET_BYTES


LinkEventKind = Literal["message", "connected", "disconnected"]


@dataclass(frozen=True)
class LinkEvent:
    """What the callbacks hand to the owner: a message, or a connection change."""

    kind: LinkEventKind
    topic: str = ""
    payload: bytes = b""
    retain: bool = False
    session_present: bool = False
    reason: str = ""
    broker: str = ""  # `host:port` of the node a "connected" event is about


@dataclass
class MqttLink:
    """A paho client on its own network thread; events arrive on `events`."""

    config: LinkConfig
    events: BoundedEventQueue[LinkEvent] = field(init=False)
    connected: threading.Event = field(default_factory=threading.Event)
    _client: paho.Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    bytes_out: int = 0
    _addresses: tuple[BrokerAddress, ...] = ()
    _address_index: int = 0
    _stopping: bool = False
    subscribe_refusals: int = 0  # topics a SUBACK refused (each asked for again later)
    _subscribing: dict[int, tuple[tuple[str, ...], int]] = field(default_factory=dict)
    _subscribe_lock: threading.Lock = field(default_factory=threading.Lock)
    _retries: list[threading.Timer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.events = BoundedEventQueue(
            self.config.max_queued_messages, self.config.max_queued_bytes
        )

    @property
    def dropped(self) -> dict[str, int]:
        """Messages dropped because the owner fell behind, by topic kind."""
        return dict(self.events.dropped)

    def start(self, timeout_s: float = 10.0) -> MqttLink:
        """Connect (in the background, retrying) and wait until the first CONNACK."""
        self._addresses, self._stopping = broker_addresses(self.config.broker_url), False
        address = self._addresses[0]
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=paho.MQTTv5 if address.mqtt_v5 else paho.MQTTv311,
            clean_session=None if address.mqtt_v5 else not self.config.persistent_session,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(0)
        if self.config.tls is not None:
            tls = self.config.tls
            client.tls_set(ca_certs=tls.ca_cert, certfile=tls.client_cert, keyfile=tls.client_key)
        elif address.tls:
            client.tls_set()
        if self.config.last_will is not None:
            will = self.config.last_will
            client.will_set(will.topic, will.payload, QOS, will.retain)
        self._connect_async(client, address)
        self._client = client
        _check(client.loop_start(), "start the network loop")
        if not self.connected.wait(timeout_s):
            self.stop()
            url = self.config.broker_url
            raise MqttLinkError(_NOT_CONNECTED.format(url=url, timeout=timeout_s))
        return self

    def _connect_async(self, client: paho.Client, address: BrokerAddress) -> None:
        """Tell paho where to connect; its network thread connects (and reconnects) there."""
        if address.mqtt_v5:
            client.connect_async(
                address.host,
                address.port,
                keepalive=self.config.keepalive_s,
                clean_start=not self.config.persistent_session,
                properties=self._connect_properties(),
            )
        else:
            client.connect_async(address.host, address.port, keepalive=self.config.keepalive_s)

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)
        if self.config.persistent_session:
            properties.SessionExpiryInterval = self.config.session_expiry_s
        properties.MaximumPacketSize = self.config.max_packet_bytes
        return properties

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        timeout_s: float = PUBLISH_TIMEOUT_S,
        wait: bool = True,
    ) -> None:
        """Publish and wait for the broker's PUBACK (QoS 1); never call from a callback.

        `wait=False` hands the message to paho (which still delivers it at QoS 1) and returns:
        for messages nobody's safety depends on seeing acknowledged first, e.g. refusals.
        """
        if self._client is None:
            raise MqttLinkError("publish before start()")
        with self._lock:
            info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc == paho.MQTT_ERR_NO_CONN:
            raise MqttPublishTimeoutError(f"not connected: publish to {topic} queued for reconnect")
        _check(info.rc, f"publish to {topic}")
        if not wait:
            self.bytes_out += len(payload)
            return
        self._wait_for_puback(info, topic, timeout_s)
        if not info.is_published():
            waited = f"{timeout_s:.0f} s"
            raise MqttPublishTimeoutError(f"publish to {topic} not acknowledged within {waited}")
        self.bytes_out += len(payload)

    def _wait_for_puback(self, info: paho.MQTTMessageInfo, topic: str, timeout_s: float) -> None:
        """Wait for the PUBACK, but stop waiting as soon as the connection drops.

        paho keeps the message and sends it again after the reconnect (to the next node of a
        cluster, too); blocking the owner for the full timeout would only delay its failover.
        """
        deadline = time.monotonic() + timeout_s
        while not info.is_published() and time.monotonic() < deadline:
            if not self.connected.is_set():
                raise MqttPublishTimeoutError(f"connection lost: publish to {topic} queued "
                                              "for the reconnect")  # fmt: skip
            try:
                info.wait_for_publish(min(PUBACK_POLL_S, max(0.0, deadline - time.monotonic())))
            except (ValueError, RuntimeError) as exc:
                raise MqttLinkError(f"publish to {topic} failed: {exc}") from exc

    def subscribe(self, topic: str) -> None:
        """Follow one more topic now (e.g. a full head to fetch); never call from a callback.

        Not renewed by `_on_connect`: the owner asks again after a reconnect if it still needs it.
        """
        if self._client is None:
            raise MqttLinkError("subscribe before start()")
        _check(self._subscribe(self._client, (topic,)), f"subscribe to {topic}")

    def unsubscribe(self, topic: str) -> None:
        """Stop following a topic `subscribe` added."""
        if self._client is None:
            raise MqttLinkError("unsubscribe before start()")
        _check(self._client.unsubscribe(topic)[0], f"unsubscribe from {topic}")

    def clear_retained(self, topic: str) -> None:
        """Remove a retained message (an empty retained payload deletes it)."""
        self.publish(topic, b"", retain=True)

    def next_event(self, timeout_s: float) -> LinkEvent | None:
        """The next event, or None after `timeout_s`."""
        return self.events.get(timeout_s)

    def stop(self) -> None:
        """Disconnect cleanly (no last will) and end the network thread; safe twice."""
        client, self._client = self._client, None
        if client is None:
            return
        self._stopping = True  # no failover for our own disconnect
        for timer in self._retries:
            timer.cancel()
        client.disconnect()
        client.loop_stop()
        self.connected.clear()

    close = stop

    def __enter__(self) -> MqttLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def broker(self) -> str:
        """`host:port` of the node the link is connected to, or will try next."""
        address = self._addresses[self._address_index] if self._addresses else None
        return f"{address.host}:{address.port}" if address else ""

    def _fail_over(self, client: paho.Client) -> None:
        """Point paho's next reconnect at the next node of the list (paho's thread, no I/O).

        `connect_async` only records the address (and closes the dead socket); paho's loop
        makes the attempt after its reconnect delay, as it would to the same node.
        """
        if len(self._addresses) < 2 or self._stopping:
            return
        self._address_index = (self._address_index + 1) % len(self._addresses)
        self._connect_async(client, self._addresses[self._address_index])

    # Callbacks: paho's thread. Only subscribe (non-blocking), re-point and enqueue.
    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.events.put_control(LinkEvent("disconnected", reason=str(reason)))
            return
        with self._subscribe_lock:
            self._subscribing.clear()  # SUBACKs of the last connection will not come
        if self.config.subscriptions:
            self._subscribe(client, self.config.subscriptions)
        self.connected.set()
        present = bool(flags.session_present)
        self.events.put_control(LinkEvent("connected", session_present=present, broker=self.broker))

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        self._fail_over(client)
        self.events.put_control(LinkEvent("disconnected", reason=str(reason)))

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self._fail_over(client)

    def _subscribe(self, client: paho.Client, topics: tuple[str, ...], attempt: int = 0) -> int:
        """One SUBSCRIBE at QoS 1, remembered by message id until its SUBACK is checked."""
        with self._subscribe_lock:  # the SUBACK's callback waits until the id is recorded
            code, mid = client.subscribe([(topic, QOS) for topic in topics])
            if code == paho.MQTT_ERR_SUCCESS and mid is not None:
                self._subscribing[mid] = (topics, attempt)
        return int(code)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        """Ask again, later, for each topic the SUBACK refused (a timer: no waiting here)."""
        with self._subscribe_lock:
            topics, attempt = self._subscribing.pop(mid, ((), 0))
        refused = tuple(t for t, r in zip(topics, reasons, strict=False) if r.is_failure)
        if not refused or self._stopping:
            return
        self.subscribe_refusals += len(refused)
        delay = min(RESUBSCRIBE_MAX_S, RESUBSCRIBE_MIN_S * 2**attempt)
        timer = threading.Timer(delay, self._resubscribe, (refused, attempt + 1))
        timer.daemon = True
        self._retries = [t for t in self._retries if t.is_alive()] + [timer]
        timer.start()

    def _resubscribe(self, topics: tuple[str, ...], attempt: int) -> None:
        """A refused subscription again, if still connected (a reconnect renews them anyway)."""
        client = self._client
        if client is not None and not self._stopping and self.connected.is_set():
            self._subscribe(client, topics, attempt)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        payload = bytes(message.payload)
        event = LinkEvent("message", message.topic, payload, message.retain)
        kind = topic_kind(message.topic) or "other"
        self.events.put_message(event, len(payload), kind, key=message.topic)


def _check(code: int, action: str) -> None:
    """Raise MqttLinkError for a paho error code."""
    if code != paho.MQTT_ERR_SUCCESS:
        raise MqttLinkError(f"could not {action}: {paho.error_string(code)}")
