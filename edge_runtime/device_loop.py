"""What an edge device runs: sample source -> backbone embeddings -> store -> federated rounds.

One thread drives everything: it feeds due windows from the source (a replayed `.npz` at a
chosen speed, with its labels), embeds each with the bundle's int8 backbone, stores the
embedding (and the raw window only if asked; raw windows never leave the device), and hands
MQTT events to `FedClient`. paho's own thread only fills the link's queue.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from bundle_format.reader import Bundle, load_bundle
from edge_runtime.device_health import read_health
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.fed_client import (
    FedClient,
    client_subscriptions,
    last_will,
    load_or_create_key,
)
from edge_runtime.head import Head
from edge_runtime.interpreter import Int8Model
from edge_runtime.mcu_training import McuTrainer, Quantisation
from edge_runtime.round_core import ClientConfig
from edge_runtime.round_events import LogRecord
from edge_runtime.sample_store import SampleStore
from edge_runtime.secure_agg_device import SecureAggDevice
from edge_runtime.streaming import WindowAssembler, WindowSpec
from fleet_protocol.differential_privacy import DpConfig
from fleet_protocol.messages import DeviceStatus
from fleet_protocol.mqtt_link import LinkConfig, LinkEvent, MqttLink, MqttLinkError, TlsFiles
from fleet_protocol.signing import public_key_from_bytes
from fleet_protocol.topics import status_topic
from fleet_protocol.wire import encode_message
from hardware.sensors.wrist_frame import MODEL_WRIST, to_model_wrist

if TYPE_CHECKING:
    from bundle_format.reader import TrustedKey
    from firmware_bridge.protocol.commands import SensorFrame

POLL_S = 0.05
HEALTH_S = 60.0  # how often a device refreshes the health in its retained status
POISON_SCALE = -10.0  # sign-flipped and scaled x10, the robustness benchmark's attack
RUN_OVER_GRACE_S = 5.0  # a passed-deadline announcement not followed by a new round this long


@dataclass(frozen=True)
class BundleParts:
    """The pieces of a verified bundle an edge process and the aggregator use."""

    bundle: Bundle
    head: Head

    def backbone(self, num_threads: int = 1) -> Int8Model:
        return Int8Model.from_path(self.bundle.backbone_path, num_threads=num_threads)

    def embed_windows(
        self, windows: NDArray[np.floating], model: Int8Model | None = None
    ) -> NDArray[np.float32]:
        """Raw sensor windows [N, T, C] -> embeddings [N, D] (normalised, then the backbone)."""
        model = model or self.backbone()
        return model.run_batch(self.bundle.normalise(windows))

    def embed_dataset(self, path: Path) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Embeddings and labels of every window of a window-dataset `.npz`."""
        with np.load(path, allow_pickle=False) as data:
            X, y = data["X"], data["y"].astype(np.int64)
        return self.embed_windows(X), y


def read_bundle_parts(path: Path, trusted_keys: Iterable[TrustedKey] | None = None) -> BundleParts:
    """Verify the bundle and load its head."""
    bundle = load_bundle(path, trusted_keys)
    return BundleParts(bundle, Head.from_npz(bundle.verified_head_path))


def check_labelled_windows(flag: str, path: Path, num_classes: int) -> None:
    """A labelled window dataset (`--replay`, `--holdout`, ...): one label per window, each a
    class of the model; `EdgeRuntimeError` with one line otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            windows, labels = len(data["X"]), np.asarray(data["y"])
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeRuntimeError(
            f"{flag} {path} is not a window dataset (.npz with X, y): {exc}"
        ) from exc
    if labels.ndim != 1 or len(labels) != windows:
        raise EdgeRuntimeError(f"{flag} {path} has {len(labels)} labels for {windows} windows")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise EdgeRuntimeError(f"{flag} {path} has labels outside 0..{num_classes - 1} "
                               f"(the model has {num_classes} classes)")  # fmt: skip


def device_directory(store_path: Path) -> Path:
    """Where a device keeps its key, installed heads and outbox, next to its store."""
    return store_path.with_name(store_path.name + ".d")


@dataclass(frozen=True)
class ArrivingWindow:
    """One normalised window [T, C] as it arrives, with its label if the source knows it."""

    start_ts: float
    end_ts: float
    values: NDArray[np.float32]
    label: int | None = None


@dataclass(frozen=True)
class SourceBatch:
    """What a source delivered since the last poll: windows and button presses (ts, label)."""

    windows: list[ArrivingWindow] = field(default_factory=list)
    label_events: list[tuple[float, int]] = field(default_factory=list)


class ReplaySource:
    """The windows of one subject of a window dataset, in order, as if they arrived live.

    Window i is due `i * (window length / 2) / speed` seconds after `start` (speed 0: all at
    once) and carries the dataset's label.
    """

    def __init__(self, path: Path, bundle: Bundle, subject: int | None, speed: float,
                 start: float) -> None:  # fmt: skip
        with np.load(path, allow_pickle=False) as data:
            every = np.arange(len(data["y"]))
            chosen = every if subject is None else np.flatnonzero(data["subject"] == subject)
            if len(chosen) == 0:
                raise EdgeRuntimeError(_no_windows(path, subject, data["subject"]))
            self._X, self._y = data["X"][chosen], data["y"][chosen].astype(np.int64)
            rate = float(data["sample_rate_hz"])
        self._bundle, self._start, self._speed = bundle, start, speed
        self._length_s = float(self._X.shape[1]) / rate
        self._next = 0

    def _offset(self, index: int) -> float:
        return index * self._length_s / 2.0  # dataset windows overlap by half by convention

    def poll(self, now: float) -> SourceBatch:
        batch = SourceBatch()
        while self._next < len(self._y):
            offset = self._offset(self._next)
            if self._speed > 0 and self._start + offset / self._speed > now:
                break
            t0 = self._start + offset
            values = self._bundle.normalise(self._X[self._next])
            label = int(self._y[self._next])
            batch.windows.append(ArrivingWindow(t0, t0 + self._length_s, values, label))
            self._next += 1
        return batch

    def close(self) -> None:
        return None


def _no_windows(path: Path, subject: int | None, subjects: NDArray[np.int64]) -> str:
    known = np.unique(subjects)
    span = f"{known.min()}-{known.max()}" if len(known) else "none"
    if subject is None:
        return f"{path} holds no windows"
    return f"--subject {subject}: no windows in {path} (its subjects: {span})"


class SerialSource:
    """Sensor frames and button presses from a microcontroller through `firmware_bridge`.

    The bridge's reader thread only enqueues frames; `poll` turns them into windows with the
    manifest's length, stride and normalisation. Device time is mapped onto the host clock at
    the first frame. Samples from a sensor on the other wrist than the model's are mirrored first.
    """

    def __init__(
        self, port: str, bundle: Bundle, clock: Callable[[], float], wrist: str = MODEL_WRIST
    ) -> None:
        from firmware_bridge.host_driver import HostDriver

        self._clock, self._wrist, self._channels = clock, wrist, bundle.channels
        spec = WindowSpec(bundle.window_length, bundle.stride, tuple(map(float, bundle.mean)),
                          tuple(map(float, bundle.std)), bundle.sample_rate_hz)  # fmt: skip
        self._assembler = WindowAssembler(spec)
        self._frames: queue.Queue[SensorFrame] = queue.Queue()
        self._origin: tuple[int, float] | None = None
        self.driver = HostDriver.open(port)
        self._stream = self.driver.stream(self._frames.put)

    def _host_time(self, device_us: int) -> float:
        if self._origin is None:
            self._origin = (device_us, self._clock())
        return self._origin[1] + (device_us - self._origin[0]) / 1e6

    def poll(self, now: float, wait_s: float = 0.0) -> SourceBatch:
        """Windows completed by the frames received so far (waits up to `wait_s` for one)."""
        batch = SourceBatch()
        pending = []
        if wait_s > 0:
            with contextlib.suppress(queue.Empty):
                pending.append(self._frames.get(timeout=wait_s))
        while not self._frames.empty():
            pending.append(self._frames.get_nowait())
        for frame in pending:
            start = self._host_time(frame.timestamp_us)
            samples = to_model_wrist(frame.samples.astype(np.float32), self._channels, self._wrist)
            for window in self._assembler.push(samples, start):
                batch.windows.append(ArrivingWindow(window.start_ts, window.end_ts, window.values))
        while not self.driver.label_events.empty():
            event = self.driver.label_events.get_nowait()
            batch.label_events.append((self._host_time(event.timestamp_us), int(event.label)))
        return batch

    def close(self) -> None:
        try:
            self._stream.stop()
        finally:
            self.driver.close()


@dataclass(frozen=True)
class DeviceOptions:
    """Everything `iomt edge` was asked to do."""

    broker_url: str
    fleet: str
    device_id: str
    bundle_path: Path
    store_path: Path
    replay_path: Path | None = None
    serial_port: str | None = None
    subject: int | None = None
    speed: float = 1.0
    keep_windows: bool = False
    max_rounds: int | None = None
    min_samples: int = 16
    seed: int = 0
    connect_timeout_s: float = 30.0
    tls: TlsFiles | None = None  # verify the broker, present the device's certificate
    aggregator_key: bytes | None = None  # refuse rounds/models/acks not signed by this key
    site_keys: tuple[bytes, ...] = ()  # sites'/workers' own keys: their acks, a site's phases
    trusted_keys: tuple[bytes, ...] | None = None  # the bundle's signer must be one of these
    dp_local: DpConfig | None = None  # on-device differential privacy of every update
    poison: bool = False  # experiments only: send sign-flipped deltas scaled x10
    min_train_s: float = 0.0  # experiments only: emulate a slower CPU (real wait per training)
    secure_agg: bool = False  # answer secure-aggregation phases instead of sending deltas
    wrist: str = MODEL_WRIST  # where the serial sensor is worn
    train_on_mcu: bool = False  # the --serial microcontroller trains the rounds; we relay


class DeviceLoop:
    """Runs one device until `max_rounds` rounds are done (or forever)."""

    def __init__(
        self,
        options: DeviceOptions,
        *,
        clock: Callable[[], float] = time.time,
        log: Callable[[LogRecord], None] = lambda record: None,
    ) -> None:
        self.options, self._clock, self._log = options, clock, log
        self.parts = read_bundle_parts(options.bundle_path, options.trusted_keys)
        if options.replay_path is not None:  # before anything is written for this device
            check_labelled_windows("--replay", options.replay_path, len(self.parts.bundle.labels))
        self.backbone = self.parts.backbone()
        self.directory = device_directory(options.store_path)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = SampleStore(options.store_path, clock=clock)
        self.store.set_class_count(len(self.parts.bundle.labels))
        self.key = load_or_create_key(self.directory)
        self.source: ReplaySource | SerialSource | None = None
        self._trainer_link: Any = None  # --replay --serial --train-on-mcu: the MCU's link
        self.windows_seen = 0
        self._stop_requested = False
        self._run_is_over = False  # decided (and said) once
        self._health_due = 0.0

    def request_stop(self) -> None:
        """Finish the current step, publish offline and return from `run` (SIGTERM does this)."""
        self._stop_requested = True

    def run(self) -> int:
        """Connect, follow rounds, feed samples; returns the number of rounds acked here."""
        o = self.options
        config = LinkConfig(
            o.broker_url,
            f"{o.fleet}-{o.device_id}",
            client_subscriptions(o.fleet, o.device_id)
            + (SecureAggDevice.subscriptions(o.fleet, o.device_id) if o.secure_agg else ()),
            last_will(o.fleet, o.device_id, self.key),
            tls=o.tls,
        )
        bundle = self.parts.bundle
        if o.replay_path is not None:
            self.source = ReplaySource(o.replay_path, bundle, o.subject, o.speed, self._clock())
        elif o.serial_port is not None:
            self.source = SerialSource(o.serial_port, bundle, self._clock, o.wrist)
        client_config = ClientConfig(o.fleet, o.device_id, o.min_samples, seed=o.seed,
                                     dp_local=o.dp_local,
                                     poison_scale=POISON_SCALE if o.poison else None,
                                     min_train_s=o.min_train_s)  # fmt: skip
        link = MqttLink(config).start(o.connect_timeout_s)
        aggregator_key = public_key_from_bytes(o.aggregator_key) if o.aggregator_key else None
        site_keys = tuple(public_key_from_bytes(key) for key in o.site_keys)
        client = FedClient(client_config, link, self.store, self.directory / "heads", self.key,
                           clock=self._clock, log=self._log, aggregator_key=aggregator_key,
                           ack_keys=site_keys, mcu=self._mcu_trainer())  # fmt: skip
        # whoever runs the masked round signs it: the coordinator or the one secure site
        phases_key = site_keys[0] if site_keys else aggregator_key
        secure = SecureAggDevice(client, phases_key, self._log) if o.secure_agg else None
        try:
            while not self._stop_requested and not self._finished(client):
                event = link.next_event(POLL_S)
                while event is not None:  # every queued message before deciding to train
                    if secure is not None and secure.wants(event):
                        secure.handle(event)
                    else:
                        client.handle(event)
                        self._on_link_event(event, client, link)
                    event = link.next_event(0.0)
                self._feed_due_windows()
                self._refresh_health(client, link)
                if secure is None and not self._finished(client):  # no round past --max-rounds
                    client.tick()  # (secure rounds send no delta in clear)
            client.publish_status(False)
        finally:
            link.stop()
            if self.source is not None:
                self.source.close()
            if self._trainer_link is not None:
                self._trainer_link.close()
            self.store.close()
        return client.rounds_acked

    def _mcu_trainer(self) -> McuTrainer | None:
        """With --train-on-mcu, the serial microcontroller's trainer: the sensor's link, or
        (with --replay) a link of its own that only trains."""
        o = self.options
        if not o.train_on_mcu or o.serial_port is None:
            return None
        if isinstance(self.source, SerialSource):
            driver = self.source.driver
        else:
            from firmware_bridge.host_driver import HostDriver

            driver = self._trainer_link = HostDriver.open(o.serial_port)
        out = self.parts.bundle.quantisation("backbone", "output")
        return McuTrainer(driver, Quantisation(out.scale, out.zero_point))

    def _on_link_event(self, event: LinkEvent, client: FedClient, link: MqttLink) -> None:
        if event.kind == "connected":
            self._log({"event": "connected", "broker": event.broker,
                       "model_version": client.installed_version})  # fmt: skip
            self._health_due = 0.0  # the client just published a status without health
        elif event.kind == "message" and "/model/" in event.topic:
            self._health_due = 0.0  # a new head: the client re-publishes its status, as do we

    def _refresh_health(self, client: FedClient, link: MqttLink) -> None:
        """Re-publish the retained online status with the device's health, now and then."""
        now = self._clock()
        if now < self._health_due or not link.connected.is_set():
            return
        self._health_due = now + HEALTH_S
        o = self.options
        health = read_health(
            o.store_path,
            client.outbox,
            lambda round_id: self.store.get_meta(f"ack:{round_id}") is not None,
        )
        status = DeviceStatus(o.fleet, o.device_id, True, client.installed_version, "",
                              health.free_disk_bytes, health.cpu_temp_c, health.store_bytes,
                              health.outbox_backlog)  # fmt: skip
        try:
            payload = encode_message(status, signing_key=self.key)
            link.publish(status_topic(o.fleet, o.device_id), payload, retain=True)
        except MqttLinkError as exc:
            self._log({"event": "status_pending", "error": str(exc)})

    def _finished(self, client: FedClient) -> bool:
        """Done after `max_rounds` accepted rounds, once the last of them is over, or when the
        aggregator's run is over first (a round closed below quorum counts toward its rounds).

        Over means: the head it produced is installed, or (closed below quorum, or the run
        ended) a later round is announced or the announced round's deadline has passed.
        """
        limit = self.options.max_rounds
        if limit is not None and self._run_over(client, limit):
            return True
        if limit is None or client.rounds_done < limit:
            return False
        rounds = self.store.recent_rounds(1)
        if not rounds:
            return False
        installed, last = client.installed_version, rounds[0]
        if installed is not None and installed > last.base_version:
            return True
        announced = client.announcement
        return announced is not None and (
            announced.round_id > last.round_id or announced.deadline_unix <= self._clock()
        )

    def _run_over(self, client: FedClient, limit: int) -> bool:
        """The aggregator re-announced its last round with the deadline passed (it does so when
        its run ends) and no round followed: stop, saying so in one line. Only with
        `--max-rounds`; a device without it waits for the aggregator's next run."""
        if self._run_is_over:
            return True
        since, round_ = client.core.run_over_since, client.announcement
        if since is None or round_ is None or self._clock() - since < RUN_OVER_GRACE_S:
            return False
        self._log({"event": "run_over", "round": round_.round_id,
                   "rounds_done": client.rounds_done, "max_rounds": limit})  # fmt: skip
        self._run_is_over = True
        return True

    def _feed_due_windows(self) -> None:
        if self.source is None:
            return
        batch = self.source.poll(self._clock())
        for window in batch.windows:
            self._store_window(window)
        for ts, label in batch.label_events:
            self.store.add_label_event(ts, label, "button")

    def _store_window(self, window: ArrivingWindow) -> None:
        """Embed a normalised window, store the embedding (the raw window only if asked)."""
        embedding = self.backbone.run(window.values).reshape(-1)
        raw = window.values if self.options.keep_windows else None
        self.store.add_window(window.start_ts, window.end_ts, window=raw, embedding=embedding)
        if window.label is not None:  # a range around this window's midpoint only
            middle = (window.start_ts + window.end_ts) / 2
            self.store.label_range(middle - 1e-3, middle + 1e-3, window.label)
        self.windows_seen += 1
