"""The bounded hand-off from paho's network thread to the owner's thread, with counted drops.

Paho's callbacks must never block, so a full queue cannot push back on the network: a message
that would exceed the queue's message or byte budget, or its topic's own byte budget, is dropped
at once and counted by topic kind (tail drop: what is queued is kept, the newest is refused; QoS
1 senders resend what they do not see acknowledged). The budget per topic keeps one flooding
sender from crowding out everybody else's messages. Connection events are never dropped: they
are few and the owner must see them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BYTES_PER_KEY = 1024 * 1024  # one topic (one sender) cannot fill the queue

T = TypeVar("T")


class BoundedEventQueue(Generic[T]):
    """A FIFO with a message-count and a byte budget for messages; control events always fit."""

    def __init__(
        self,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_bytes_per_key: int = DEFAULT_MAX_BYTES_PER_KEY,
    ) -> None:
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self.max_bytes_per_key = max_bytes_per_key
        self._items: deque[tuple[T, int, str]] = deque()
        self._key_bytes: dict[str, int] = {}
        self._ready = threading.Condition()
        self._messages = 0
        self._bytes = 0
        self.dropped: dict[str, int] = {}  # by topic kind

    def put_message(self, item: T, size: int, kind: str, key: str = "") -> bool:
        """Queue a message of `size` bytes from `key` (its topic), or drop and count it."""
        with self._ready:
            held = self._key_bytes.get(key, 0)
            if (self._messages >= self.max_messages or self._bytes + size > self.max_bytes
                    or held + size > self.max_bytes_per_key):  # fmt: skip
                self.dropped[kind] = self.dropped.get(kind, 0) + 1
                return False
            self._items.append((item, size, key))
            self._messages += 1
            self._bytes += size
            self._key_bytes[key] = held + size
            self._ready.notify()
            return True

    def put_control(self, item: T) -> None:
        """Queue a connection event (never dropped; size -1 marks it as not a message)."""
        with self._ready:
            self._items.append((item, -1, ""))
            self._ready.notify()

    def get(self, timeout_s: float) -> T | None:
        """The oldest event, or None after `timeout_s`."""
        with self._ready:
            if not self._items and not self._ready.wait_for(lambda: bool(self._items), timeout_s):
                return None
            item, size, key = self._items.popleft()
            if size >= 0:
                self._messages -= 1
                self._bytes -= size
                left = self._key_bytes.pop(key, 0) - size  # empty payloads hold no bytes
                if left > 0:
                    self._key_bytes[key] = left
            return item

    @property
    def queued_bytes(self) -> int:
        """Payload bytes waiting for the owner."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
