"""The aggregator side of a fleet-scale round: its files, its process, and a watch on the round.

`RoundObserver` is one more MQTT client (not a device) that timestamps what the fleet sees: the
round announcement, every ack, the new global model. It samples the aggregator's CPU time and
RSS with psutil while the round is open.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.fleet_devices import device_signing_key

RSS_POLL_S = 0.05


@dataclass(frozen=True)
class RoundSetup:
    """Files an aggregator run needs: a head-only bundle, the device registry, a state path."""

    bundle: Path
    head: Path
    registry: Path
    state: Path


@dataclass(frozen=True)
class RoundTiming:
    """Seconds from the announcement the observer saw, and the aggregator's cost meanwhile."""

    model_s: float
    last_ack_s: float
    acks: int
    aggregator_cpu_s: float
    peak_rss_mb: float


def write_setup(workdir: Path, device_ids: tuple[str, ...], head: Any) -> RoundSetup:
    """A signed head-only bundle (all the aggregator reads) and a registry of every device."""
    from aggregator.device_registry import DeviceRegistry
    from bundle_format import signing
    from fleet_protocol.signing import public_key_to_bytes

    bundle = workdir / "bundle"
    bundle.mkdir(parents=True)
    head.to_npz(bundle / "head.npz")
    content = (json.dumps(_manifest(bundle, head), indent=2) + "\n").encode()
    key = signing.generate_private_key()
    (bundle / "manifest.json").write_bytes(content)
    (bundle / "manifest.sig").write_bytes(signing.sign_bytes(key, content))
    (bundle / "signer.pub").write_bytes(signing.public_key_bytes(key))
    registry = DeviceRegistry(workdir / "registry.json")
    for device_id in device_ids:
        registry.add(device_id, public_key_to_bytes(device_signing_key(device_id).public_key()))
    registry.save()
    return RoundSetup(bundle, bundle / "head.npz", registry.path, workdir / "aggregator.sqlite")


def _manifest(bundle: Path, head: Any) -> dict[str, Any]:
    data = (bundle / "head.npz").read_bytes()
    return {
        "schema_version": 1, "task": "fleet-bench",
        "labels": [str(k) for k in range(head.num_classes)], "channels": ["synthetic"],
        "sample_rate_hz": 1.0, "window_length": 1,
        "normalisation": {"mean": [0.0], "std": [1.0]}, "models": {},
        "files": {"head.npz": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}},
        "model_version": "fleet-bench", "embedding_size": head.input_size,
    }  # fmt: skip


def start_aggregator(
    broker_url: str, fleet: str, setup: RoundSetup, count: int, workdir: Path
) -> subprocess.Popen[bytes]:
    """`iomt aggregator` for one round that needs every device (a second round keeps it alive)."""
    args = [
        sys.executable, "-m", "iomt.cli", "aggregator", "--broker", broker_url, "--fleet", fleet,
        "--bundle", str(setup.bundle), "--state", str(setup.state), "--rounds", "2",
        "--min-clients", str(count), "--deadline", "600", "--registry", str(setup.registry),
        "--codec", "int8", "--local-epochs", "1",
    ]  # fmt: skip
    log = (workdir / "aggregator.log").open("wb")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def aggregator_peak_mb(pid: int, polled_mb: float) -> float:
    """VmHWM (the kernel's own peak RSS) when readable, else the polled peak."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return max(polled_mb, int(line.split()[1]) / 1024)
    except OSError:
        pass
    return polled_mb


class RoundObserver:
    """Watches round, ack and model topics of one fleet and times the first round."""

    def __init__(self, host: str, port: int, fleet: str) -> None:
        import paho.mqtt.client as mqtt

        from fleet_protocol.topics import subscription_topic

        self.fleet = fleet
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{fleet}-observer")
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.topics = [subscription_topic(fleet, kind) for kind in ("round", "ack", "model")]
        self.client.on_connect = lambda c, *args: c.subscribe([(t, 1) for t in self.topics])
        self.host, self.port = host, port
        self.lock = threading.Lock()
        self.announced_at: float | None = None
        self.cpu_at_announce: float | None = None
        self.model_at: float | None = None
        self.last_ack_at: float | None = None
        self.acks = 0
        self.pid: int | None = None
        self.model_seen = threading.Event()

    def __enter__(self) -> RoundObserver:
        self.client.connect(self.host, self.port, keepalive=120)
        self.client.loop_start()
        if not self.subscribed.wait(30):
            raise TimeoutError("observer could not subscribe")
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None):
        self.client.disconnect()
        self.client.loop_stop()

    def wait_round(self, pid: int, devices: int, timeout_s: float) -> RoundTiming:
        """Sample the aggregator until the new model is out and every device has its ack."""
        import psutil

        self.pid = pid
        process = psutil.Process(pid)
        peak_mb, deadline = 0.0, time.monotonic() + timeout_s
        while not (self.model_seen.wait(RSS_POLL_S) and self._acks() >= devices):
            peak_mb = max(peak_mb, process.memory_info().rss / 2**20)
            if time.monotonic() > deadline:
                raise TimeoutError("the round did not close in time")
        cpu_end = _cpu_s(process)
        peak_mb = max(peak_mb, process.memory_info().rss / 2**20)
        with self.lock:
            assert self.announced_at is not None and self.model_at is not None
            return RoundTiming(
                model_s=self.model_at - self.announced_at,
                last_ack_s=(self.last_ack_at or self.model_at) - self.announced_at,
                acks=self.acks,
                aggregator_cpu_s=cpu_end - (self.cpu_at_announce or 0.0),
                peak_rss_mb=peak_mb,
            )

    def _acks(self) -> int:
        with self.lock:
            return self.acks

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now = time.monotonic()
        kind = message.topic.split("/")[3]
        with self.lock:
            if kind == "round" and self.announced_at is None and message.payload:
                self.announced_at = now
                self.cpu_at_announce = self._aggregator_cpu()
            elif kind == "ack":
                self.acks += 1
                self.last_ack_at = now
            elif kind == "model" and int(message.topic.rsplit("/", 1)[1]) >= 1:
                self.model_at = self.model_at or now
                self.model_seen.set()

    def _aggregator_cpu(self) -> float:
        import psutil

        if self.pid is None:
            return 0.0
        try:
            return _cpu_s(psutil.Process(self.pid))
        except psutil.Error:
            return 0.0


def _cpu_s(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
