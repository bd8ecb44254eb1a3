"""The I/O shell around `EmulatedMcu`: a thread moving its frames over a byte endpoint.

Incoming bytes are cut at 0x00 delimiters, damaged by the fault injector (as a noisy line
would), decoded, and answered; a damaged frame gets a NACK so the host retransmits at once.
Outgoing frames are damaged the same way before they are written.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.errors import ConnectionLostError
from firmware_bridge.faults import FaultConfig, FaultInjector
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import DELIMITER, Frame, FrameDecoder, encode_frame
from firmware_bridge.protocol.reliability import Clock

IDLE_POLL_S = 0.05


class ByteEndpoint(Protocol):
    """The device end of a link (`MemoryEndpoint` or `PtyEndpoint`)."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int: ...
    def close(self) -> None: ...


class WireSplitter:
    """Cuts a byte stream into delimiter-terminated wire frames (pure)."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Complete wire frames (each ending in 0x00) found so far."""
        parts = (self._partial + data).split(DELIMITER)
        self._partial = parts.pop()
        return [part + DELIMITER for part in parts]


class EmulatorService:
    """Runs an `EmulatedMcu` on an endpoint in a background thread (or in the caller's)."""

    def __init__(
        self,
        mcu: EmulatedMcu,
        endpoint: ByteEndpoint,
        faults: FaultConfig | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.mcu, self.endpoint, self.clock = mcu, endpoint, clock
        self.injector = FaultInjector(faults or FaultConfig())
        self.decoder = FrameDecoder()
        self._splitter = WireSplitter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        mcu.power_on(clock())

    def start(self) -> EmulatorService:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve, name="emulated-mcu", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to end and wait for the thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def close(self) -> None:
        """Stop serving and close the endpoint."""
        self.stop()
        self.endpoint.close()

    def __enter__(self) -> EmulatorService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def serve(self) -> None:
        """Answer frames and stream sensors until `stop` (or the link goes away)."""
        try:
            while not self._stop.is_set():
                self._step()
        except ConnectionLostError as exc:
            self.error = exc

    def _step(self) -> None:
        wait = self.mcu.seconds_to_next_tick(self.clock())
        self.endpoint.timeout = IDLE_POLL_S if wait is None else min(wait, IDLE_POLL_S)
        data = self.endpoint.read(4096)
        for wire in self._splitter.feed(data):
            self._handle_wire(self.injector.damage(wire))
        self._send(self.mcu.tick(self.clock()))

    def _handle_wire(self, wire: bytes) -> None:
        errors_before = self.decoder.stats.errors
        frames = self.decoder.feed(wire)
        if self.decoder.stats.errors > errors_before:
            self._send([cmd.Nack(cmd.NackReason.BAD_FRAME).to_frame(0xFF)])
        for frame in frames:
            if self.injector.should_reset():
                self._send(self.mcu.reset(self.clock()))
                continue
            self._send(self.mcu.receive(frame, self.clock()))

    def _send(self, frames: list[Frame]) -> None:
        if frames:
            wire = b"".join(self.injector.damage(encode_frame(frame)) for frame in frames)
            if wire:
                self.endpoint.write(wire)
