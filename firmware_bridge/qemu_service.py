"""The I/O shell around `QemuMcu`: a host-side endpoint (a pty) wired to the firmware's UART0,
with the emulator's line faults, and the sensor feed on UART1.

Bytes are cut at 0x00 delimiters and each wire frame is damaged by a `FaultInjector` in both
directions, as `EmulatorService` does; the firmware itself answers damaged frames with NACK.
The sensor feed replays a `SampleSource` in real time as the records `port_hal.c` reads:
`b"S"` + float32 per channel for a sample, `b"L"` + u16 label for a button press, which comes
before the first sample of each labelled window.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_bridge.emulator_service import ByteEndpoint, WireSplitter
from firmware_bridge.errors import BridgeError, ConnectionLostError
from firmware_bridge.faults import FaultConfig, FaultInjector
from firmware_bridge.protocol.reliability import Clock
from firmware_bridge.qemu_mcu import QemuMcu
from firmware_bridge.sensor_source import SampleSource

FEED_PERIOD_S = 0.02
MAX_SAMPLES_BEHIND = 500
NO_RESET_FAULT = "--fault reset=... is not available with --qemu (a power cut kills QEMU instead)"


@dataclass(frozen=True)
class SensorRecords:
    """UART1 bytes for some samples, and how many samples they carry."""

    data: bytes
    samples: int


def sensor_records(source: SampleSource, count: int) -> SensorRecords:
    """Up to `count` samples (never across a label boundary) as UART1 records, press first."""
    records = b""
    if source.window_started():
        label = source.current_label()
        if label is not None:
            records += b"L" + struct.pack("<H", label)
    take = max(1, min(count, source.samples_to_boundary()))
    samples = np.asarray(source.read(take), dtype="<f4")
    return SensorRecords(records + b"".join(b"S" + row.tobytes() for row in samples), take)


class QemuService:
    """Relays an endpoint to a booted `QemuMcu` and feeds its sensor UART, in daemon threads."""

    def __init__(
        self,
        mcu: QemuMcu,
        endpoint: ByteEndpoint,
        sensors: SampleSource | None = None,
        faults: FaultConfig | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        faults = faults or FaultConfig()
        if faults.reset:
            raise BridgeError(NO_RESET_FAULT)
        self.mcu, self.endpoint, self.sensors, self.clock = mcu, endpoint, sensors, clock
        self.injector = FaultInjector(faults)
        self._lock = threading.Lock()  # the injector's random draws, from two threads
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None

    def start(self) -> QemuService:
        """Start relaying (and feeding sensors)."""
        targets = [self._relay_to_device, self._relay_to_host]
        if self.sensors is not None:
            targets.append(self._feed_sensors)
        for target in targets:
            thread = threading.Thread(target=self._guard(target), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def serve(self) -> None:
        """Start and block until stopped or the link fails."""
        self.start()
        while not self._stop.wait(0.2):
            pass
        if self.error is not None:
            raise ConnectionLostError(f"firmware link lost: {self.error} ({self.mcu.log_tail()})")

    def stop(self) -> None:
        """End the threads (QEMU keeps running)."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def close(self) -> None:
        """Stop, power QEMU off and close the endpoint."""
        self._stop.set()
        self.mcu.stop()
        self.stop()
        self.endpoint.close()

    def __enter__(self) -> QemuService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except (ConnectionLostError, OSError) as exc:
                if not self._stop.is_set():
                    self.error = exc
                    self._stop.set()

        return run

    def _damage(self, wire: bytes) -> bytes:
        with self._lock:
            return self.injector.damage(wire)

    def _relay_to_device(self) -> None:
        splitter, link = WireSplitter(), self._socket(self.mcu.link)
        self.endpoint.timeout = 0.05
        while not self._stop.is_set():
            data = self.endpoint.read(4096)
            wire = b"".join(self._damage(frame) for frame in splitter.feed(data))
            if wire:
                link.sendall(wire)

    def _relay_to_host(self) -> None:
        splitter, link = WireSplitter(), self._socket(self.mcu.link)
        link.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data = link.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionLostError("QEMU closed the UART0 socket")
            wire = b"".join(self._damage(frame) for frame in splitter.feed(data))
            if wire:
                self.endpoint.write(wire)

    def _feed_sensors(self) -> None:
        source, feed = self.sensors, self._socket(self.mcu.sensors)
        assert source is not None
        started, sent = self.clock(), 0
        while not self._stop.wait(FEED_PERIOD_S):
            due = int((self.clock() - started) * source.sample_rate_hz) - sent
            if due > MAX_SAMPLES_BEHIND:  # after a stall, skip ahead rather than flood
                sent += due
                continue
            while due > 0:
                records = sensor_records(source, due)
                feed.sendall(records.data)
                sent, due = sent + records.samples, due - records.samples

    @staticmethod
    def _socket(sock: socket.socket | None) -> socket.socket:
        if sock is None:
            raise ConnectionLostError("QEMU is not running")
        return sock
