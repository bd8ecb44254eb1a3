"""`python -m bench hostile`: a real aggregator process under a flood of hostile messages.

A real Mosquitto and a real `iomt aggregator` process (with a device registry) on a synthetic
signed bundle; an attacker holding a few registered identities publishes `--messages` hostile
messages of every kind in `bench.hostile_traffic`, and half-way through, an honest device
sends one valid update. Measured: the aggregator's RSS idle, at its peak during the flood and
after; the time from publishing the valid update to its ack; the rejections the state file
counted by reason; whether the global head is unchanged and finite; whether a restart on the
same state file serves again. Writes `bench/results/hostile.json`.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aggregator.broker import LocalBroker
from aggregator.device_registry import DeviceRegistry
from aggregator.state_store import StateStore
from bench.common import write_results
from bench.hostile_traffic import KINDS, FloodPlan, build_flood
from bench.synthetic_bundle import HEAD_SHAPES, write_synthetic_bundle
from fleet_protocol.messages import ModelUpdate, RoundAnnouncement, UpdateAck
from fleet_protocol.mqtt_link import LinkConfig, MqttLink
from fleet_protocol.signing import generate_signing_key, public_key_to_bytes
from fleet_protocol.topics import ack_topic, round_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

FLEET = "hostile"
HONEST = "honest-1"
ATTACKERS = tuple(f"mallory-{i}" for i in range(10))
REPO = Path(__file__).resolve().parents[1]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class RssWatch:
    """Samples a process's RSS on a thread until stopped; keeps the peak."""

    pid: int
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_aggregator(
    broker: str, bundle: Path, state: Path, registry: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "iomt.cli", "aggregator", "--broker", broker,
               "--fleet", FLEET, "--bundle", str(bundle), "--state", str(state),
               "--registry", str(registry), "--rounds", "100", "--min-clients", "2",
               "--deadline", "600", "--codec", "float32"]  # fmt: skip
    log = (state.parent / "aggregator.log").open("ab")  # a pipe nobody reads would block it
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def wait_for_round(link: MqttLink, timeout_s: float = 60.0) -> RoundAnnouncement:
    """The retained round announcement (the aggregator is serving)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = link.next_event(0.5)
        if event is not None and event.kind == "message" and event.topic == round_topic(FLEET):
            message = decode_message(event.payload)
            assert isinstance(message, RoundAnnouncement)
            return message
    raise RuntimeError("the aggregator announced no round")


def wait_for_ack(link: MqttLink, timeout_s: float) -> UpdateAck | None:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        event = link.next_event(left)
        if event is not None and event.kind == "message" and "/ack/" in event.topic:
            ack = decode_message(event.payload)
            assert isinstance(ack, UpdateAck)
            return ack
    return None


@dataclass
class Setup:
    """Everything a run needs on disk."""

    root: Path
    bundle: Path
    state: Path
    registry: Path
    keys: dict[str, Any]


def prepare(root: Path) -> Setup:
    keys = {name: generate_signing_key() for name in (HONEST, *ATTACKERS)}
    registry = DeviceRegistry(root / "fleet.json")
    for name, key in keys.items():
        registry.add(name, public_key_to_bytes(key.public_key()))
    registry.save()
    bundle = write_synthetic_bundle(root / "bundle")
    return Setup(root, bundle, root / "agg.sqlite", registry.path, keys)


def flood(url: str, messages: list[Any], halfway: threading.Event) -> None:
    with MqttLink(LinkConfig(url, "mallory", (), persistent_session=False)) as link:
        for index, message in enumerate(messages):
            link.publish(message.topic, message.payload)
            if index == len(messages) // 2:
                halfway.set()


def honest_update(setup: Setup, announced: RoundAnnouncement) -> bytes:
    delta = [np.full(shape, 0.01, np.float32) for shape in HEAD_SHAPES]
    update = ModelUpdate(FLEET, announced.round_id, announced.model_version, HONEST, 1, 32, delta)
    return encode_message(update, codec="float32", signing_key=setup.keys[HONEST])


def run(total: int, root: Path) -> dict[str, Any]:
    """One flood against one aggregator; the figures for hostile.json."""
    setup = prepare(root)
    with LocalBroker() as broker:
        process = start_aggregator(broker.url, setup.bundle, setup.state, setup.registry)
        topics = (round_topic(FLEET), ack_topic(FLEET, HONEST))
        honest = MqttLink(LinkConfig(broker.url, HONEST, topics, persistent_session=False)).start()
        try:
            announced = wait_for_round(honest)
            time.sleep(1.0)  # settle: idle RSS after start-up
            idle = rss_bytes(process.pid)
            attackers = {a: setup.keys[a] for a in ATTACKERS}
            plan = FloodPlan(FLEET, announced.round_id, announced.model_version,
                             list(HEAD_SHAPES), attackers)  # fmt: skip
            messages = build_flood(plan, total)
            halfway = threading.Event()
            with RssWatch(process.pid) as watch:
                flooder = threading.Thread(target=flood, args=(broker.url, messages, halfway))
                flooder.start()
                halfway.wait(120)
                sent_at = time.monotonic()
                honest.publish(update_topic(FLEET, HONEST), honest_update(setup, announced))
                ack = wait_for_ack(honest, 30.0)
                ack_s = time.monotonic() - sent_at
                flooder.join()
            time.sleep(2.0)  # the core stores its quiet-drop counters at least once a second
            after = rss_bytes(process.pid)
            alive = process.poll() is None
        finally:
            honest.stop()
            exit_code = stop(process)
        restart = restart_serves(broker.url, setup)
    return summarise(setup, messages, announced.round_id, idle, watch.peak, after, ack, ack_s,
                     alive, exit_code, restart)  # fmt: skip


def restart_serves(url: str, setup: Setup) -> bool:
    """A second aggregator process on the same state file announces a round again."""
    process = start_aggregator(url, setup.bundle, setup.state, setup.registry)
    try:
        with MqttLink(
            LinkConfig(url, "watcher", (round_topic(FLEET),), persistent_session=False)
        ) as link:
            wait_for_round(link)
        return process.poll() is None
    finally:
        stop(process)


def summarise(setup: Setup, messages: list[Any], round_id: int, idle: int, peak: int, after: int,
              ack: UpdateAck | None, ack_s: float, alive: bool, exit_code: int,
              restart: bool) -> dict[str, Any]:  # fmt: skip
    sent = {kind: sum(1 for m in messages if m.kind == kind) for kind in KINDS}
    with StateStore(setup.state) as store:
        rejected = store.rejections(round_id)
        latest = store.latest_version()
        head = store.load_weights(latest.version) if latest else []
    mb = 1024 * 1024
    return {
        "kinds": list(KINDS),
        "messages_sent": len(messages),
        "sent_by_kind": sent,
        "rejected_by_reason": rejected,
        "rejected_total": sum(rejected.values()),
        "rss_mb": {
            "idle": round(idle / mb, 1),
            "peak_during_flood": round(peak / mb, 1),
            "after": round(after / mb, 1),
            "peak_over_idle": round((peak - idle) / mb, 1),
        },
        "valid_update": {
            "acked": bool(ack and ack.accepted),
            "reason": ack.reason if ack else None,
            "seconds_to_ack": round(ack_s, 3),
        },
        "aggregator_alive_after_flood": alive,
        "aggregator_exit_code": exit_code,
        "model_version_after": latest.version if latest else None,
        "model_finite_after": bool(all(np.all(np.isfinite(w)) for w in head)),
        "restart_serves": restart,
        "acceptance": {
            "rss_within_20_mb": (peak - idle) <= 20 * mb,
            "valid_ack_within_1_s": bool(ack and ack.accepted) and ack_s <= 1.0,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hostile", description=__doc__)
    parser.add_argument("--messages", type=int, default=3000, help="hostile messages to send")
    parser.add_argument(
        "--out", type=Path, help="results file (default bench/results/hostile.json)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        results = run(args.messages, Path(tmp))
    path = write_results("hostile", results, args.out)
    print(f"wrote {path}", file=sys.stderr)
    ok = all(results["acceptance"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
