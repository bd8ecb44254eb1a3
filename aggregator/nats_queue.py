"""Workers' share of the update stream through a NATS queue group (nats-py), for NATS clusters.

NATS (2.9) accepts an MQTT `$share/` subscription and then delivers nothing, but every publish
on its MQTT listener is also a NATS message on the same subject with `/` as `.` (MQTT topic
`iomt/v1/F/update/dev7` is subject `iomt.v1.F.update.dev7`), and a NATS queue group hands each
message to one member of the group. So a worker given `--queue-group-url nats://...` subscribes
to `iomt.v1.{fleet}.update.*` in a queue group over the NATS protocol, and keeps everything
else (round, models, partial sums, its acks at QoS 1) on its MQTT connection.

A core NATS queue subscription is at-most-once: a message in flight to a worker that dies, or
published while no worker of the group is connected, is gone. The device sees no ack and resends
it after its ack timeout, and whichever worker takes the resend handles it
(`aggregator.worker_core`: stored, or held by another worker, or taken twice and dropped by the
larger id). nats-py is asyncio: `NatsQueueFeed` runs its own event loop in a thread of its own,
reconnects along the server list itself, and its callback only puts the message on the worker's
link queue (the MQTT link's bounded queue, which drops and counts when the worker falls behind).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from fleet_protocol.errors import FederationError
from fleet_protocol.event_queue import BoundedEventQueue
from fleet_protocol.mqtt_link import LinkEvent, topic_kind

CONNECT_TIMEOUT_S = 10.0
RECONNECT_WAIT_S = 1.0  # between attempts, as the MQTT link's first reconnect
STOP_TIMEOUT_S = 5.0
DEFAULT_PORT = 4222


class NatsQueueError(FederationError):
    """The NATS servers are not usable (bad URL, nothing answered in time)."""

    reason = "transport"


def nats_servers(urls: str) -> tuple[str, ...]:
    """The `nats://HOST:PORT` URLs of a comma-separated list (the nodes of one cluster)."""
    servers = []
    for url in (u.strip() for u in urls.split(",")):
        if not url:
            continue
        parsed = urlparse(url)
        try:
            port = parsed.port or DEFAULT_PORT
        except ValueError as exc:
            raise NatsQueueError(f"not a NATS server URL: {url!r} ({exc})") from exc
        if parsed.scheme != "nats" or not parsed.hostname or parsed.path not in ("", "/"):
            raise NatsQueueError(f"not a NATS server URL: {url!r} (expected nats://HOST:PORT)")
        servers.append(f"nats://{parsed.hostname}:{port}")
    if not servers:
        raise NatsQueueError("no NATS server URL given (expected nats://HOST:PORT[,...])")
    return tuple(servers)


def subject_of(topic_filter: str) -> str:
    """The NATS subject of an MQTT topic or filter (`/` -> `.`, `+` -> `*`, `#` -> `>`)."""
    levels = {"+": "*", "#": ">"}
    return ".".join(levels.get(level, level) for level in topic_filter.split("/"))


def topic_of(subject: str) -> str:
    """The MQTT topic of a NATS subject (NATS refuses `.` in MQTT topic levels: no ambiguity)."""
    return subject.replace(".", "/")


@dataclass
class NatsQueueFeed:
    """One queue-group subscription whose messages go to `sink` as MQTT-topic `LinkEvent`s."""

    servers: tuple[str, ...]
    subject: str
    queue: str
    sink: BoundedEventQueue[LinkEvent]
    name: str = "iomt-worker"
    log: Callable[[str], None] = lambda line: None
    received: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _client: NatsClient | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, timeout_s: float = CONNECT_TIMEOUT_S) -> NatsQueueFeed:
        """Connect to the first server that answers and subscribe; raise if none does in time."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="nats-queue", daemon=True)
        self._thread.start()
        subscribed = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self._subscribe(), timeout_s), loop
        )
        try:
            subscribed.result()
        except Exception as exc:  # nats-py raises its own errors, OSError or a timeout
            self.stop()
            listed = ",".join(self.servers)
            raise NatsQueueError(f"NATS servers {listed} took no subscription within"
                                 f" {timeout_s:.0f} s ({type(exc).__name__})") from exc  # fmt: skip
        return self

    async def _subscribe(self) -> None:
        client = await nats.connect(
            servers=list(self.servers), name=self.name, allow_reconnect=True,
            dont_randomize=True,  # the first of the list first, as the MQTT link does
            max_reconnect_attempts=-1, reconnect_time_wait=RECONNECT_WAIT_S,
            connect_timeout=2, error_cb=self._on_error, disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )  # fmt: skip
        self._client = client
        await client.subscribe(self.subject, queue=self.queue, cb=self._on_message)
        await client.flush()  # the server has the subscription once this returns
        self.log(f"queue group {self.queue}: {self.subject} on {self.broker}")

    @property
    def broker(self) -> str:
        """`host:port` of the NATS server the feed is connected to, or ''."""
        url = self._client.connected_url if self._client is not None else None
        return url.netloc if url is not None else ""

    async def _on_message(self, message: Msg) -> None:
        topic = topic_of(message.subject)
        payload = message.data
        self.received += 1
        event = LinkEvent("message", topic, payload)
        self.sink.put_message(event, len(payload), topic_kind(topic) or "other", key=topic)

    async def _on_error(self, error: Exception) -> None:
        self.log(f"queue group {self.queue}: {type(error).__name__}: {error}")

    async def _on_disconnected(self) -> None:
        self.log(f"queue group {self.queue}: disconnected; updates go to the other workers")

    async def _on_reconnected(self) -> None:
        self.log(f"queue group {self.queue}: reconnected to {self.broker}")

    def stop(self) -> None:
        """Leave the group and close the connection, end the loop's thread; safe twice."""
        with self._lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
        if loop is None or thread is None:
            return
        if client is not None:
            closing = asyncio.run_coroutine_threadsafe(client.close(), loop)
            try:
                closing.result(STOP_TIMEOUT_S)
            except Exception as exc:  # a close that fails still ends the loop below
                self.log(f"queue group {self.queue}: close: {type(exc).__name__}")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> NatsQueueFeed:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
