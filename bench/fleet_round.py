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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.fleet_devices import device_signing_key

RSS_POLL_S = 0.05
LOG_TAIL_BYTES = 300


class AggregatorExitedError(RuntimeError):
    """An aggregator process ended while the bench still needed it."""


@dataclass(frozen=True)
class AggregatorProcess:
    """One `iomt aggregator` process of a run: what to call it and where its output goes."""

    name: str
    log: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid


def check_running(processes: Sequence[AggregatorProcess]) -> None:
    """Raise, in one line, if a process has ended: its name, exit code and the tail of its log."""
    for process in processes:
        code = process.popen.poll()
        if code is not None:
            tail = process.log.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")
            tail = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
            raise AggregatorExitedError(f"{process.name} exited with code {code}: {tail}")


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
    aggregator_cpu_s: float  # every aggregator process (coordinator and workers) together
    cpu_by_process_s: dict[int, float]
    peak_rss_mb: dict[int, float]  # polled, per process


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
    broker_url: str, fleet: str, setup: RoundSetup, count: int, workdir: Path, role: str = "single"
) -> AggregatorProcess:
    """`iomt aggregator` for one round that needs every device (a second round keeps it alive)."""
    args = [
        *_aggregator_command(broker_url, fleet, setup, setup.state),
        "--bundle", str(setup.bundle), "--rounds", "2", "--min-clients", str(count),
        "--deadline", "600", "--codec", "int8", "--local-epochs", "1", "--role", role,
    ]  # fmt: skip
    return _start(f"aggregator ({role})", workdir / f"aggregator-{role}.log", args)


def start_worker(
    broker_url: str,
    fleet: str,
    setup: RoundSetup,
    worker: int,
    workdir: Path,
    extra: tuple[str, ...] = (),
) -> AggregatorProcess:
    """`iomt aggregator --role worker` with its own state file; it logs once it is connected.

    `extra`: more options, e.g. `--queue-group-url` on a NATS cluster.
    """
    state = workdir / f"worker-{worker}.sqlite"
    args = [*_aggregator_command(broker_url, fleet, setup, state), "--role", "worker",
            "--worker-id", f"w{worker}", "--json", *extra]  # fmt: skip
    return _start(f"worker w{worker}", workdir / f"worker-{worker}.log", args)


def _start(name: str, log: Path, args: list[str]) -> AggregatorProcess:
    with log.open("wb") as out:  # the child keeps its own descriptor
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    return AggregatorProcess(name, log, popen)


def _aggregator_command(broker_url: str, fleet: str, setup: RoundSetup, state: Path) -> list[str]:
    return [sys.executable, "-m", "iomt.cli", "aggregator", "--broker", broker_url,
            "--fleet", fleet, "--state", str(state), "--registry", str(setup.registry)]  # fmt: skip


def wait_for_log(process: AggregatorProcess, text: str, timeout_s: float) -> None:
    """Until `text` appears in a process's log file (or the process ends: that raises)."""
    deadline = time.monotonic() + timeout_s
    while text not in process.log.read_text(errors="replace"):
        check_running([process])
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.log.name}: no {text!r} within {timeout_s:.0f} s")
        time.sleep(0.1)


def aggregator_peak_mb(pid: int, polled_mb: float) -> float:
    """VmHWM (the kernel's own peak RSS) when readable, else the polled peak."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return max(polled_mb, int(line.split()[1]) / 1024)
    except OSError:
        pass
    return polled_mb


def peak_mb_of(pids: list[int], polled: dict[int, float]) -> dict[int, float]:
    """Each aggregator process's peak RSS (VmHWM, or what the observer polled)."""
    return {pid: aggregator_peak_mb(pid, polled.get(pid, 0.0)) for pid in pids}


class RoundObserver:
    """Watches round, ack and model topics of one fleet and times the first round."""

    def __init__(self, host: str, port: int, fleet: str) -> None:
        import paho.mqtt.client as mqtt

        from fleet_protocol.topics import subscription_topic

        self.fleet = fleet
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{fleet}-observer")
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = self._on_subscribe
        self.topics = [subscription_topic(fleet, kind) for kind in ("round", "ack", "model")]
        self.client.on_connect = lambda c, *args: c.subscribe([(t, 1) for t in self.topics])
        self.host, self.port = host, port
        self.lock = threading.Lock()
        self.announced_at: float | None = None
        self.cpu_at_announce: dict[int, float] = {}
        self.model_at: float | None = None
        self.last_ack_at: float | None = None
        self.acks = 0
        self.pids: list[int] = []
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

    def watch(self, pids: list[int]) -> None:
        """The aggregator processes whose CPU counts from the announcement on."""
        with self.lock:
            self.pids = list(pids)

    def wait_round(
        self, pids: list[int], devices: int, timeout_s: float, check: Callable[[], None],
        acked: Callable[[], bool] | None = None,
    ) -> RoundTiming:  # fmt: skip
        """Sample the aggregators until the new model is out and every device has its ack;
        `check()` raises if the round can no longer close (an aggregator process ended).

        `acked()`: whether every device heard its ack (the devices' own word); by default, this
        observer saw as many acks as there are devices. On NATS the observer's one QoS 1
        subscription to every ack topic missed 2 of 1,000 acks in a run whose every device
        heard its own, so the bench asks the devices there.
        """
        import psutil

        every_ack = acked or (lambda: self._acks() >= devices)
        self.watch(pids)
        processes = [psutil.Process(pid) for pid in pids]
        peak_mb = dict.fromkeys(pids, 0.0)
        deadline = time.monotonic() + timeout_s
        while not (self.model_seen.wait(RSS_POLL_S) and every_ack()):
            try:
                check()
            except RuntimeError as exc:  # what the round's observer had seen, for the reader
                raise type(exc)(f"{exc} (the observer saw the model: {self.model_seen.is_set()},"
                                f" acks: {self._acks()} of {devices})") from exc  # fmt: skip
            for process in processes:
                peak_mb[process.pid] = max(peak_mb[process.pid], process.memory_info().rss / 2**20)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the round did not close within {timeout_s:.0f} s (model"
                                   f" seen: {self.model_seen.is_set()}, acks seen:"
                                   f" {self._acks()} of {devices})")  # fmt: skip
        cpu_end = {process.pid: _cpu_s(process) for process in processes}
        with self.lock:
            used = {pid: cpu - self.cpu_at_announce.get(pid, 0.0) for pid, cpu in cpu_end.items()}
            assert self.announced_at is not None and self.model_at is not None
            return RoundTiming(
                model_s=self.model_at - self.announced_at,
                last_ack_s=(self.last_ack_at or self.model_at) - self.announced_at,
                acks=self.acks,
                aggregator_cpu_s=sum(used.values()),
                cpu_by_process_s=used,
                peak_rss_mb=peak_mb,
            )

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, codes: Any, props: Any) -> None:
        """Subscribed once every topic is granted; a refusal (NATS, under load) asks again."""
        if any(code.is_failure for code in codes):
            client.subscribe([(t, 1) for t in self.topics])
        else:
            self.subscribed.set()

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

    def _aggregator_cpu(self) -> dict[int, float]:
        import psutil

        try:
            return {pid: _cpu_s(psutil.Process(pid)) for pid in self.pids}
        except psutil.Error:
            return {}


def _cpu_s(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
