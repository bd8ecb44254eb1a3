"""Byte pipes with the subset of pyserial's `Serial` API the bridge uses.

`memory_link()` gives two connected in-memory endpoints (like pyserial's `loop://`, but with
two ends) for fast tests. `PtyEndpoint` is the device end of a real pseudo-terminal whose
other end a host opens by path. Both offer `read(size)` honouring `timeout`, `in_waiting`,
`write`, `cancel_read` and `close`. A pty ignores baud rates, so `PtyEndpoint` can pace its
traffic at 10 bits per byte to behave like a UART at `baudrate`.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from dataclasses import dataclass

from firmware_bridge.errors import ConnectionLostError


class _Pipe:
    """One direction of a memory link: a buffer and a condition."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.condition = threading.Condition()
        self.closed = False


class MemoryEndpoint:
    """One end of an in-memory serial link."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe, timeout: float | None = 0.1) -> None:
        self._incoming, self._outgoing = incoming, outgoing
        self.timeout = timeout
        self._cancelled = False

    @property
    def is_open(self) -> bool:
        """False once either end is closed."""
        return not (self._incoming.closed or self._outgoing.closed)

    @property
    def in_waiting(self) -> int:
        """Bytes ready to read now."""
        return len(self._incoming.buffer)

    def read(self, size: int = 1) -> bytes:
        """Up to `size` bytes, waiting at most `timeout` for the first one."""
        pipe = self._incoming
        with pipe.condition:
            pipe.condition.wait_for(
                lambda: pipe.buffer or pipe.closed or self._cancelled, timeout=self.timeout
            )
            self._cancelled = False
            if not pipe.buffer and pipe.closed:
                raise ConnectionLostError("memory link closed")
            data = bytes(pipe.buffer[:size])
            del pipe.buffer[:size]
            return data

    def write(self, data: bytes) -> int:
        """Queue bytes for the other end."""
        pipe = self._outgoing
        with pipe.condition:
            if pipe.closed:
                raise ConnectionLostError("memory link closed")
            pipe.buffer += data
            pipe.condition.notify_all()
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered on this side."""

    def cancel_read(self) -> None:
        """Wake a blocked `read`."""
        with self._incoming.condition:
            self._cancelled = True
            self._incoming.condition.notify_all()

    def close(self) -> None:
        """Close both directions; the other end's reads raise after draining."""
        for pipe in (self._incoming, self._outgoing):
            with pipe.condition:
                pipe.closed = True
                pipe.condition.notify_all()


def memory_link(timeout: float | None = 0.1) -> tuple[MemoryEndpoint, MemoryEndpoint]:
    """Two connected endpoints: (host end, device end)."""
    host_to_device, device_to_host = _Pipe(), _Pipe()
    host = MemoryEndpoint(device_to_host, host_to_device, timeout)
    device = MemoryEndpoint(host_to_device, device_to_host, timeout)
    return host, device


@dataclass
class _Pacer:
    """Delays traffic so a byte takes 10 bit times at `baudrate` (0 disables pacing)."""

    baudrate: int = 0
    _free_at: float = 0.0

    def pace(self, size: int) -> None:
        if not self.baudrate or size == 0:
            return
        now = time.monotonic()
        self._free_at = max(now, self._free_at) + size * 10.0 / self.baudrate
        delay = self._free_at - now
        if delay > 0.0005:
            time.sleep(delay)


class PtyEndpoint:
    """The device (master) end of a pseudo-terminal; the host opens `path`."""

    def __init__(self, timeout: float | None = 0.1, baudrate: int = 0) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.timeout = timeout
        self._rx_pacer, self._tx_pacer = _Pacer(baudrate), _Pacer(baudrate)
        self._closed = False

    @property
    def is_open(self) -> bool:
        """False after `close`."""
        return not self._closed

    @property
    def in_waiting(self) -> int:
        """1 when bytes are ready (a pty does not say how many), else 0."""
        ready, _, _ = select.select([self._master], [], [], 0)
        return 1 if ready else 0

    def read(self, size: int = 1) -> bytes:
        """Up to `size` bytes, waiting at most `timeout` for the first one."""
        if self._closed:
            raise ConnectionLostError("pty closed")
        ready, _, _ = select.select([self._master], [], [], self.timeout)
        if not ready:
            return b""
        try:
            data = os.read(self._master, max(size, 1))
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise ConnectionLostError(f"pty read failed: {exc}") from None
        self._rx_pacer.pace(len(data))
        return data

    def write(self, data: bytes) -> int:
        """Write every byte (paced); bytes nobody reads within `timeout` are lost, as on a UART."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                _, ready, _ = select.select([], [self._master], [], self.timeout)
                if not ready:
                    return len(data) - len(view)
                continue
            except OSError as exc:
                raise ConnectionLostError(f"pty write failed: {exc}") from None
            self._tx_pacer.pace(written)
            view = view[written:]
        return len(data)

    def flush(self) -> None:
        """Writes are unbuffered."""

    def cancel_read(self) -> None:
        """Reads end within `timeout` anyway."""

    def close(self) -> None:
        """Close both ends of the pty."""
        if not self._closed:
            self._closed = True
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
