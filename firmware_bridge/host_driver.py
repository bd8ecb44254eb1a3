"""The host's side of the bridge: the only module that owns a serial port.

A reader thread (as in pyserial's `serial.threaded.ReaderThread`) decodes frames; replies go
to the request waiting for them, sensor frames, label events and logs go to subscribers.
Requests are stop-and-wait (`protocol.reliability.StopAndWait`), retransmitted on timeout or
NACK. Any pyserial URL works: a device path, a pty path, `socket://host:port`, `loop://`.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from firmware_bridge.errors import (
    BridgeError,
    ConnectionLostError,
    DeviceError,
    DeviceTimeout,
    ModelUploadError,
    PortError,
)
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import Frame, FrameDecoder, max_encoded_length
from firmware_bridge.protocol.reliability import RetryPolicy, StopAndWait

DEFAULT_BAUDRATE = 115200
DEFAULT_CHUNK_SIZE = 1024
UPLOAD_RESTARTS = 10
R = TypeVar("R", bound=cmd.Message)
Progress = Callable[[int, int], None]


def open_port(url: str, baudrate: int = DEFAULT_BAUDRATE) -> Any:
    """Open any pyserial URL (path, `socket://`, `loop://`); one-line `PortError` on failure."""
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(f"cannot open serial port {url}: {exc}") from None


@dataclass(frozen=True)
class UploadReport:
    """How a model upload went."""

    size: int
    sha256: str
    seconds: float
    retransmissions: int
    restarts: int

    @property
    def bytes_per_s(self) -> float:
        """Model bytes delivered per second."""
        return self.size / self.seconds if self.seconds > 0 else float("inf")


class StreamHandle:
    """A running sensor stream; `stop()` (or leaving the `with`) ends it."""

    def __init__(self, driver: HostDriver, callback: Callable[[cmd.SensorFrame], None]) -> None:
        self._driver, self._callback = driver, callback

    def stop(self) -> None:
        """Stop the device's stream and unsubscribe."""
        self._driver.unsubscribe(self._callback)
        if self._driver.is_connected:
            self._driver.request(cmd.StreamStop(), cmd.Ack)

    def __enter__(self) -> StreamHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class HostDriver:
    """A bridge device on a serial port: typed requests, streamed samples, model upload."""

    def __init__(self, port: Any, policy: RetryPolicy | None = None) -> None:
        self.port = port
        self.policy = policy or RetryPolicy()
        self.decoder = FrameDecoder()
        self.transfer = StopAndWait(self.policy)
        self.label_events: queue.Queue[cmd.LabelEvent] = queue.Queue()
        self.logs: list[cmd.Log] = []
        self.handler_errors: list[BaseException] = []
        self.lost: BaseException | None = None
        self._replies: queue.Queue[Frame | None] = queue.Queue()
        self._sensor_callbacks: list[Callable[[cmd.SensorFrame], None]] = []
        self._write_lock, self._request_lock = threading.Lock(), threading.Lock()
        self._alive = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(
        cls, url: str, baudrate: int = DEFAULT_BAUDRATE, policy: RetryPolicy | None = None
    ) -> HostDriver:
        """Open a pyserial URL and connect (HELLO) to the device on it."""
        driver = cls(open_port(url, baudrate), policy)
        try:
            driver.connect()
        except BaseException:
            driver.close()
            raise
        return driver

    # --- lifetime -----------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while the reader thread runs and the link is up."""
        return self._alive.is_set() and self.lost is None

    def connect(self) -> cmd.Info:
        """Start the reader thread and greet the device; returns its INFO."""
        if self._thread is None:
            self._alive.set()
            self._thread = threading.Thread(target=self._read_loop, name="bridge-reader")
            self._thread.daemon = True
            self._thread.start()
        return self.info()

    def close(self) -> None:
        """Stop the reader thread and close the port."""
        self._alive.clear()
        if hasattr(self.port, "cancel_read"):
            self.port.cancel_read()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self.port.close()

    def __enter__(self) -> HostDriver:
        if self._thread is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Called once when the reader stops: `exc` is the transport error, None on close."""
        self.lost = exc or ConnectionLostError("port closed")
        self._replies.put(None)

    # --- reader thread ------------------------------------------------------------------

    def _read_loop(self) -> None:
        error: BaseException | None = None
        while self._alive.is_set():
            try:
                data = self.port.read(getattr(self.port, "in_waiting", 0) or 1)
            except Exception as exc:  # transport failure ends the link
                error = exc if self._alive.is_set() else None
                break
            if data:
                self._dispatch_bytes(data)
        self._alive.clear()
        self.connection_lost(error)

    def _dispatch_bytes(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            try:
                self._dispatch(frame)
            except Exception as exc:  # a subscriber's bug must not kill the link
                self.handler_errors.append(exc)

    def _dispatch(self, frame: Frame) -> None:
        if frame.type in cmd.REPLY_TYPES:
            self._replies.put(frame)
            return
        message = cmd.message_from_frame(frame)
        if isinstance(message, cmd.SensorFrame):
            for callback in list(self._sensor_callbacks):
                callback(message)
        elif isinstance(message, cmd.LabelEvent):
            self.label_events.put(message)
        elif isinstance(message, cmd.Log):
            self.logs.append(message)

    # --- requests -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write raw bytes under the write lock."""
        with self._write_lock:
            try:
                self.port.write(data)
            except OSError as exc:  # pyserial's SerialException is an OSError
                raise ConnectionLostError(f"serial write failed: {exc}") from None

    def request(self, message: cmd.Message, expect: type[R]) -> R:
        """Send a request and wait for its reply, retransmitting as needed."""
        with self._request_lock:
            frame = message.to_frame(self.transfer.next_seq())
            self.write(self.transfer.start(frame, self._line_time(len(frame.payload))))
            try:
                reply = self._await_reply()
            finally:
                self.transfer.abandon()
        return _expect(cmd.message_from_frame(reply), expect)

    def _await_reply(self) -> Frame:
        while True:
            if self.lost is not None:
                raise ConnectionLostError(f"serial link lost: {self.lost}")
            try:
                frame = self._replies.get(timeout=max(self.transfer.seconds_left(), 0.001))
            except queue.Empty:
                retransmit = self.transfer.poll()
                if retransmit:
                    self.write(retransmit)
                continue
            if frame is None:
                continue
            if frame.type == cmd.MessageType.NACK:
                retransmit = self.transfer.on_nack()
                if retransmit:
                    self.write(retransmit)
            elif self.transfer.on_reply(frame):
                return frame

    def _line_time(self, payload_bytes: int) -> float:
        baudrate = getattr(self.port, "baudrate", 0) or 0
        if not baudrate:
            return 0.0
        # request + a reply of similar size, 10 bits per byte, plus slack
        return 2.5 * max_encoded_length(payload_bytes) * 10.0 / baudrate

    # --- high-level API -----------------------------------------------------------------

    def info(self) -> cmd.Info:
        """HELLO -> the device's INFO (board, firmware, model hash, arena)."""
        return self.request(cmd.Hello(), cmd.Info)

    def infer(self, window: np.ndarray) -> cmd.InferResult:
        """Run the device's model on one (time, channels) int8 or float32 window."""
        return self.request(cmd.InferRequest(np.asarray(window)), cmd.InferResult)

    def stream(
        self, callback: Callable[[cmd.SensorFrame], None], samples_per_frame: int = 0
    ) -> StreamHandle:
        """Start sensor streaming; `callback` runs in the reader thread for every frame."""
        self._sensor_callbacks.append(callback)
        try:
            self.request(cmd.StreamStart(samples_per_frame), cmd.Ack)
        except BaseException:
            self.unsubscribe(callback)
            raise
        return StreamHandle(self, callback)

    def unsubscribe(self, callback: Callable[[cmd.SensorFrame], None]) -> None:
        """Stop calling `callback` for sensor frames."""
        if callback in self._sensor_callbacks:
            self._sensor_callbacks.remove(callback)

    def request_label_event(self, timeout: float = 2.0) -> cmd.LabelEvent:
        """Ask the device to press its button; return the LABEL_EVENT it sends."""
        self.request(cmd.LabelRequest(), cmd.Ack)
        try:
            return self.label_events.get(timeout=timeout)
        except queue.Empty:
            raise DeviceTimeout(f"no LABEL_EVENT within {timeout} s") from None

    def get_head(self) -> cmd.HeadSet:
        """The classifier head the device holds."""
        return self.request(cmd.HeadGet(), cmd.HeadSet)

    def set_head(self, version: int, tensors: list[np.ndarray]) -> None:
        """Replace the device's classifier head."""
        self.request(
            cmd.HeadSet(version, tuple(np.asarray(t, np.float32) for t in tensors)), cmd.Ack
        )

    def reset(self) -> None:
        """Reboot the device."""
        self.request(cmd.Reset(), cmd.Ack)

    def upload_model(
        self,
        model: bytes,
        progress: Progress | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> UploadReport:
        """Write a model into the device's flash; it commits only if the SHA-256 matches."""
        digest = hashlib.sha256(model).digest()
        started, retransmissions = time.monotonic(), self.transfer.stats.retransmissions
        for restart in range(UPLOAD_RESTARTS + 1):
            try:
                self._upload_once(model, digest, progress, chunk_size)
            except DeviceError as exc:
                if exc.code != cmd.ErrorCode.NO_UPLOAD or restart == UPLOAD_RESTARTS:
                    raise ModelUploadError(f"upload refused: {exc.message}") from None
                continue
            break
        if self.info().model_sha256 != digest:
            raise ModelUploadError("device reports a different model hash after commit")
        return UploadReport(
            size=len(model),
            sha256=digest.hex(),
            seconds=time.monotonic() - started,
            retransmissions=self.transfer.stats.retransmissions - retransmissions,
            restarts=restart,
        )

    def _upload_once(
        self, model: bytes, digest: bytes, progress: Progress | None, chunk_size: int
    ) -> None:
        self.request(cmd.ModelBegin(len(model), digest), cmd.Ack)
        offset = 0
        while offset < len(model):
            chunk = model[offset : offset + chunk_size]
            offset = self.request(cmd.ModelChunk(offset, chunk), cmd.Ack).value
            if progress:
                progress(offset, len(model))
        self.request(cmd.ModelCommit(), cmd.Ack)


def _expect(message: cmd.Message, expect: type[R]) -> R:
    if isinstance(message, cmd.ErrorReply):
        raise DeviceError(message.code, message.message)
    if not isinstance(message, expect):
        raise BridgeError(f"expected {expect.TYPE.name}, device sent {message.TYPE.name}")
    return message
