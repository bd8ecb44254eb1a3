"""What an edge device runs: sample source -> backbone embeddings -> store -> federated rounds.

One thread drives everything: it feeds due windows from the source (a replayed `.npz` at a
chosen speed, with its labels), embeds each with the bundle's int8 backbone, stores the
embedding (and the raw window only if asked; raw windows never leave the device), and hands
MQTT events to `FedClient`. paho's own thread only fills the link's queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_runtime.bundle import Bundle, load_bundle
from edge_runtime.fed_client import (
    ClientConfig,
    FedClient,
    client_subscriptions,
    last_will,
    load_or_create_key,
)
from edge_runtime.head import Head
from edge_runtime.interpreter import Int8Model
from edge_runtime.sample_store import SampleStore
from federation.mqtt_link import LinkConfig, MqttLink

POLL_S = 0.05


@dataclass(frozen=True)
class BundleParts:
    """The pieces of a verified bundle an edge process and the aggregator use."""

    bundle: Bundle
    head: Head

    def backbone(self, num_threads: int = 1) -> Int8Model:
        return Int8Model.from_path(self.bundle.backbone_path, num_threads=num_threads)

    def embed_windows(self, windows: NDArray[np.floating], model: Int8Model | None = None) -> Any:
        """Raw sensor windows [N, T, C] -> embeddings [N, D] (normalised, then the backbone)."""
        model = model or self.backbone()
        return model.run_batch(self.bundle.normalise(windows))

    def embed_dataset(self, path: Path) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Embeddings and labels of every window of a window-dataset `.npz`."""
        with np.load(path, allow_pickle=False) as data:
            X, y = data["X"], data["y"].astype(np.int64)
        return self.embed_windows(X), y


def read_bundle_parts(path: Path, trusted_keys: Any = None) -> BundleParts:
    """Verify the bundle and load its head."""
    bundle = load_bundle(path, trusted_keys)
    return BundleParts(bundle, bundle.load_head())


def device_directory(store_path: Path) -> Path:
    """Where a device keeps its key, installed heads and outbox, next to its store."""
    return store_path.with_name(store_path.name + ".d")


@dataclass(frozen=True)
class ReplayWindow:
    """One window of a replayed dataset, due at `due` on the device clock."""

    due: float
    start_ts: float
    end_ts: float
    values: NDArray[np.float32]
    label: int | None


def replay_schedule(
    path: Path, subject: int | None, speed: float, start: float, with_labels: bool = True
) -> Iterator[ReplayWindow]:
    """The windows of one subject in recording order, spaced by stride / rate / speed."""
    with np.load(path, allow_pickle=False) as data:
        X, y = data["X"], data["y"]
        rate = float(data["sample_rate_hz"])
        every = np.arange(len(y))
        chosen = every if subject is None else np.flatnonzero(data["subject"] == subject)
    length_s = X.shape[1] / rate
    step_s = length_s / 2.0  # dataset windows overlap by half by convention
    for i, index in enumerate(chosen):
        offset = i * step_s
        due = start + (offset / speed if speed > 0 else 0.0)
        label = int(y[index]) if with_labels else None
        t0 = start + offset
        yield ReplayWindow(due, t0, t0 + length_s, X[index].astype(np.float32), label)


@dataclass(frozen=True)
class DeviceOptions:
    """Everything `iomt edge` was asked to do."""

    broker_url: str
    fleet: str
    device_id: str
    bundle_path: Path
    store_path: Path
    replay_path: Path | None = None
    subject: int | None = None
    speed: float = 1.0
    keep_windows: bool = False
    max_rounds: int | None = None
    min_samples: int = 16
    seed: int = 0
    connect_timeout_s: float = 30.0


class DeviceLoop:
    """Runs one device until `max_rounds` rounds are done (or forever)."""

    def __init__(
        self,
        options: DeviceOptions,
        *,
        clock: Callable[[], float] = time.time,
        log: Callable[[dict[str, Any]], None] = lambda record: None,
    ) -> None:
        self.options, self._clock, self._log = options, clock, log
        self.parts = read_bundle_parts(options.bundle_path)
        self.backbone = self.parts.backbone()
        self.directory = device_directory(options.store_path)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = SampleStore(options.store_path, clock=clock)
        self.key = load_or_create_key(self.directory)
        self._pending: Iterator[ReplayWindow] = iter(())
        self._next: ReplayWindow | None = None
        self.windows_seen = 0

    def run(self) -> int:
        """Connect, follow rounds, feed samples; returns the number of rounds acked here."""
        o = self.options
        config = LinkConfig(
            o.broker_url,
            f"{o.fleet}-{o.device_id}",
            client_subscriptions(o.fleet, o.device_id),
            last_will(o.fleet, o.device_id),
        )
        if o.replay_path is not None:
            schedule = replay_schedule(o.replay_path, o.subject, o.speed, self._clock())
            self._pending = schedule
        client_config = ClientConfig(o.fleet, o.device_id, o.min_samples, seed=o.seed)
        link = MqttLink(config).start(o.connect_timeout_s)
        client = FedClient(client_config, link, self.store, self.directory / "heads", self.key,
                           clock=self._clock, log=self._log)  # fmt: skip
        try:
            while not self._finished(client):
                event = link.next_event(POLL_S)
                if event is not None:
                    client.handle(event)
                self._feed_due_windows()
                client.tick()
            client.publish_status(False)
        finally:
            link.stop()
            self.store.close()
        return client.rounds_acked

    def _finished(self, client: FedClient) -> bool:
        """Done after `max_rounds` accepted rounds and the head they produced is installed."""
        limit = self.options.max_rounds
        if limit is None or client.rounds_acked < limit:
            return False
        rounds = self.store.recent_rounds(1)
        installed = client.installed_version
        return bool(rounds) and installed is not None and installed > int(rounds[0].base_version)

    def _feed_due_windows(self) -> None:
        now = self._clock()
        while True:
            if self._next is None:
                self._next = next(self._pending, None)
                if self._next is None:
                    return
            if self._next.due > now:
                return
            self._store_window(self._next)
            self._next = None

    def _store_window(self, window: ReplayWindow) -> None:
        embedding = self.backbone.run(self.parts.bundle.normalise(window.values)).reshape(-1)
        raw = window.values if self.options.keep_windows else None
        self.store.add_window(window.start_ts, window.end_ts, window=raw, embedding=embedding)
        if window.label is not None:  # a range around this window's midpoint only
            middle = (window.start_ts + window.end_ts) / 2
            self.store.label_range(middle - 1e-3, middle + 1e-3, window.label)
        self.windows_seen += 1
