"""One MQTT publish to make: what a pure state machine returns for its shell to send."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Publish:
    """Bytes for one topic; retained for announcements and models."""

    topic: str
    payload: bytes
    retain: bool = False
