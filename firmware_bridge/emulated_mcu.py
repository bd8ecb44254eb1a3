"""An emulated microcontroller that behaves as the reference firmware does.

`EmulatedMcu` is the firmware's logic with no I/O: `receive(frame, now)` answers a request
(replaying the cached reply to a retransmission), `tick(now)` returns the sensor frames and
button presses due by `now`. `firmware_bridge.emulator_service` moves its bytes over a pty or
an in-memory link and injects line faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_bridge.emulator_model import EmulatorModel, Normalisation, TflmModel
from firmware_bridge.errors import BridgeError, PayloadError
from firmware_bridge.model_flash import FlashError, ModelFlash
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.framing import Frame
from firmware_bridge.protocol.reliability import ReplyCache
from firmware_bridge.sensor_source import SampleSource
from hardware.board_profiles import BoardProfile

FIRMWARE_VERSION = "iomt-emu-1.0"
DEFAULT_SAMPLES_PER_FRAME = 10
MAX_SAMPLES_BEHIND = 500  # after a stall, skip ahead rather than flood the line


class McuRequestError(BridgeError):
    """A request the firmware answers with ERROR `code`."""

    def __init__(self, code: cmd.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Stream:
    started_at: float
    samples_per_frame: int
    samples_sent: int = 0


class EmulatedMcu:
    """Firmware behaviour: INFO, inference in TFLM, streaming, labels, model flash, head."""

    def __init__(
        self,
        board: BoardProfile,
        model: EmulatorModel | None = None,
        sensors: SampleSource | None = None,
        model_loader: Callable[[bytes, int], TflmModel] = TflmModel,
    ) -> None:
        self.board = board
        self.sensors = sensors
        self.flash = ModelFlash(capacity=board.model_flash_budget)
        self.cache = ReplyCache()
        self.normalisation: Normalisation | None = model.normalisation if model else None
        self.head = cmd.HeadSet(0, model.head if model else ())
        self.resets = 0
        self._model_loader = model_loader
        self._runtime: TflmModel | None = None
        self._stream: _Stream | None = None
        self._event_seq = 0
        self._boot_time = 0.0
        if model is not None:
            self._install(model.model_bytes)
            self.flash.committed = model.model_bytes

    @property
    def arena_bytes(self) -> int:
        """The tensor arena the firmware gives TFLM: the board's RAM left for models."""
        return self.board.model_ram_budget

    # --- requests -----------------------------------------------------------------------

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        """Replies to one request frame (a retransmission gets the same replies again)."""
        if frame.type == cmd.MessageType.HELLO:
            self.cache.clear()
        cached = self.cache.lookup(frame)
        if cached is not None:
            return cached
        replies = self._answer(frame, now)
        self.cache.remember(frame, replies)
        if frame.type == cmd.MessageType.RESET:
            replies += self.reset(now)
        return replies

    def _answer(self, frame: Frame, now: float) -> list[Frame]:
        handler = self._handlers().get(frame.type)
        try:
            if handler is None:
                raise McuRequestError(cmd.ErrorCode.UNKNOWN_TYPE, f"unknown type {frame.type:#04x}")
            message = cmd.message_from_frame(frame)
            reply, events = handler(message, now)
        except PayloadError as exc:
            reply, events = cmd.ErrorReply(cmd.ErrorCode.BAD_PAYLOAD, str(exc)), []
        except (McuRequestError, FlashError) as exc:
            reply, events = cmd.ErrorReply(exc.code, str(exc)), []
        except Exception as exc:  # a firmware bug answers ERROR instead of hanging the host
            text = f"internal error: {type(exc).__name__}: {exc}"
            reply, events = cmd.ErrorReply(cmd.ErrorCode.INVOKE_FAILED, text), []
        return [reply.to_frame(frame.seq), *(self._event(e) for e in events)]

    def _handlers(self) -> dict[int, Callable[[cmd.Message, float], _Answer]]:
        return {
            cmd.MessageType.HELLO: lambda m, now: (self.info(), []),
            cmd.MessageType.RESET: lambda m, now: (cmd.Ack(), []),
            cmd.MessageType.STREAM_START: self._on_stream_start,
            cmd.MessageType.STREAM_STOP: self._on_stream_stop,
            cmd.MessageType.LABEL_REQUEST: self._on_label_request,
            cmd.MessageType.INFER_REQUEST: self._on_infer,
            cmd.MessageType.MODEL_BEGIN: self._on_model_begin,
            cmd.MessageType.MODEL_CHUNK: self._on_model_chunk,
            cmd.MessageType.MODEL_COMMIT: self._on_model_commit,
            cmd.MessageType.HEAD_GET: lambda m, now: (self.head, []),
            cmd.MessageType.HEAD_SET: self._on_head_set,
        }

    def info(self) -> cmd.Info:
        """What HELLO answers."""
        runtime = self._runtime
        shape = runtime.input_shape if runtime else (0, 0)
        dtype = cmd.DType.FLOAT32 if runtime and runtime.input_dtype == np.float32 else 0
        rate = self.sensors.sample_rate_hz if self.sensors else 0.0
        return cmd.Info(
            board=self.board.name,
            firmware_version=FIRMWARE_VERSION,
            model_sha256=self.flash.committed_sha256,
            arena_bytes=self.arena_bytes,
            model_bytes=len(self.flash.committed or b""),
            input_dtype=dtype,
            window_length=shape[0] if len(shape) > 1 else 0,
            num_channels=shape[-1] if shape else 0,
            num_classes=runtime.num_classes if runtime else 0,
            sample_rate_hz=rate,
        )

    def _on_stream_start(self, message: cmd.Message, now: float) -> _Answer:
        assert isinstance(message, cmd.StreamStart)
        if self.sensors is None:
            raise McuRequestError(cmd.ErrorCode.NO_MODEL, "this device has no sensors attached")
        per_frame = message.samples_per_frame or DEFAULT_SAMPLES_PER_FRAME
        self._stream = _Stream(started_at=now, samples_per_frame=per_frame)
        return cmd.Ack(), []

    def _on_stream_stop(self, message: cmd.Message, now: float) -> _Answer:
        self._stream = None
        return cmd.Ack(), []

    def _on_label_request(self, message: cmd.Message, now: float) -> _Answer:
        label = self.sensors.current_label() if self.sensors else None
        if label is None:
            raise McuRequestError(cmd.ErrorCode.NO_MODEL, "no labelled sensor source")
        return cmd.Ack(), [cmd.LabelEvent(label, self._micros(now))]

    def _on_infer(self, message: cmd.Message, now: float) -> _Answer:
        assert isinstance(message, cmd.InferRequest)
        runtime = self._require_runtime()
        window = self._prepare_window(runtime, message.window)
        scores, latency = runtime.run(window)
        return cmd.InferResult(int(np.argmax(scores)), scores, latency), []

    def _prepare_window(self, runtime: TflmModel, window: np.ndarray) -> np.ndarray:
        if tuple(window.shape) != runtime.input_shape:
            raise McuRequestError(
                cmd.ErrorCode.SHAPE_MISMATCH,
                f"window {tuple(window.shape)} but the model takes {runtime.input_shape}",
            )
        if window.dtype == np.float32:
            normalised = self.normalisation.apply(window) if self.normalisation else window
            return runtime.quantise(normalised)
        if window.dtype != runtime.input_dtype:
            raise McuRequestError(
                cmd.ErrorCode.SHAPE_MISMATCH,
                f"window of {window.dtype} but the model takes {runtime.input_dtype}",
            )
        return window

    def _on_model_begin(self, message: cmd.Message, now: float) -> _Answer:
        assert isinstance(message, cmd.ModelBegin)
        self.flash.begin(message.size, message.sha256)
        return cmd.Ack(0), []

    def _on_model_chunk(self, message: cmd.Message, now: float) -> _Answer:
        assert isinstance(message, cmd.ModelChunk)
        return cmd.Ack(self.flash.write(message.offset, message.data)), []

    def _on_model_commit(self, message: cmd.Message, now: float) -> _Answer:
        previous = self.flash.committed
        model_bytes = self.flash.commit()
        try:
            self._install(model_bytes)
        except BridgeError as exc:
            self.flash.committed = previous
            raise McuRequestError(cmd.ErrorCode.INVOKE_FAILED, str(exc)) from None
        return cmd.Ack(len(model_bytes)), [cmd.Log(1, f"model committed ({len(model_bytes)} B)")]

    def _on_head_set(self, message: cmd.Message, now: float) -> _Answer:
        assert isinstance(message, cmd.HeadSet)
        self.head = message
        return cmd.Ack(message.version), []

    def _require_runtime(self) -> TflmModel:
        if self._runtime is None:
            raise McuRequestError(cmd.ErrorCode.NO_MODEL, "no model committed")
        return self._runtime

    def _install(self, model_bytes: bytes) -> None:
        self._runtime = self._model_loader(model_bytes, self.arena_bytes)

    # --- streaming ----------------------------------------------------------------------

    def tick(self, now: float) -> list[Frame]:
        """Sensor frames and button presses due by `now` (empty when not streaming)."""
        stream, sensors = self._stream, self.sensors
        if stream is None or sensors is None:
            return []
        due = int((now - stream.started_at) * sensors.sample_rate_hz) - stream.samples_sent
        if due > MAX_SAMPLES_BEHIND:
            stream.samples_sent += due - stream.samples_per_frame
            due = stream.samples_per_frame
        frames: list[Frame] = []
        while due >= stream.samples_per_frame or (due > 0 and sensors.samples_to_boundary() <= due):
            frames += self._next_sensor_frames(stream, sensors, due)
            due = int((now - stream.started_at) * sensors.sample_rate_hz) - stream.samples_sent
        return frames

    def _next_sensor_frames(self, stream: _Stream, sensors: SampleSource, due: int) -> list[Frame]:
        timestamp = self._micros(stream.started_at + stream.samples_sent / sensors.sample_rate_hz)
        frames = []
        if sensors.window_started():
            label = sensors.current_label()
            if label is not None:
                frames.append(self._event(cmd.LabelEvent(label, timestamp)))
        count = min(stream.samples_per_frame, due, sensors.samples_to_boundary())
        samples = sensors.read(count)
        stream.samples_sent += count
        frames.append(self._event(cmd.SensorFrame(timestamp, samples)))
        return frames

    def seconds_to_next_tick(self, now: float) -> float | None:
        """How long until the next sensor frame is due (None when not streaming)."""
        stream, sensors = self._stream, self.sensors
        if stream is None or sensors is None:
            return None
        next_at = stream.started_at + (stream.samples_sent + 1) / sensors.sample_rate_hz
        return max(0.0, next_at - now)

    # --- lifetime -----------------------------------------------------------------------

    def power_on(self, now: float) -> None:
        """Start the device clock (timestamps count microseconds since power-on)."""
        self._boot_time = now

    def reset(self, now: float) -> list[Frame]:
        """Reboot: RAM state is lost (stream, staged upload, reply cache); flash survives."""
        self.resets += 1
        self._stream = None
        self.flash.abort()
        self.cache.clear()
        self._boot_time = now
        return [self._event(cmd.Log(2, "boot: device reset"))]

    def _event(self, message: cmd.Message) -> Frame:
        frame = message.to_frame(self._event_seq)
        self._event_seq = (self._event_seq + 1) % 256
        return frame

    def _micros(self, when: float) -> int:
        return max(0, round((when - self._boot_time) * 1e6))


_Answer = tuple[cmd.Message, list[cmd.Message]]
