"""Aggregator workers on a 3-node NATS cluster, sharing the updates through a NATS queue group.

NATS has no MQTT shared subscriptions, so the workers take `iomt.v1.{fleet}.update.*` in a NATS
queue group (`--queue-group-url`, nats-py) and everything else over MQTT. Real `nats-server`
nodes and real `iomt aggregator` processes; the devices are one paho client (MQTT 3.1.1, QoS 1)
sending each device's signed update, as in the Mosquitto workers' test, and resending what is
not acknowledged as `iomt edge` does. The reference head is a `--role single` aggregator's on
the same cluster.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from aggregator.nats_cluster import NatsCluster, NatsNode, find_nats_server
from aggregator.nats_queue import NatsQueueFeed, subject_of
from bench.fleet_round import write_setup
from fleet_protocol.event_queue import BoundedEventQueue
from fleet_protocol.mqtt_link import LinkEvent
from fleet_protocol.topics import subscription_topic, update_topic
from tests.integration.partial_sum_fleet import (
    DEVICES,
    FleetSim,
    aggregator_args,
    assert_same_head,
    closed_metrics,
    make_head,
    round_args,
    single_aggregator_head,
    worker_rows,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_nats_server() is None, reason="nats-server is not installed"),
]

RESEND_S = 3.0  # the test's devices resend sooner than `iomt edge` (15 s) to keep it short
DEADLINE_S = 300  # beyond the failover test's waits (60 s to reconnect, 180 s to close)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats")) as running:
        yield running


def _plain(node: NatsNode) -> str:
    return f"mqtt://{node.host}:{node.mqtt_port}"  # FleetSim's form (paho speaks 3.1.1 to it)


def _rotated(urls: list[str], start: int) -> str:
    return ",".join(urls[start:] + urls[:start])


@pytest.fixture(scope="module")
def reference_head(cluster, process_group_class, tmp_path_factory) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """The head one `--role single` aggregator makes of the twelve updates, on the cluster."""
    root = tmp_path_factory.mktemp("single")
    return single_aggregator_head(
        process_group_class, root, cluster.url, _plain(cluster.nodes[2]), "single"
    )


class _Fleet:
    """Workers w1 (nodes from n0) and w2 (from n1), the coordinator and devices on n2."""

    def __init__(self, cluster: NatsCluster, processes: Any, fleet: str, root: Path) -> None:
        self.cluster, self.processes, self.fleet, self.root = cluster, processes, fleet, root
        self.setup = write_setup(root, DEVICES, make_head())
        self.workers = {w: self.start_worker(w) for w in ("w1", "w2")}
        for worker in self.workers.values():  # in the queue group before any device sends
            worker.wait_for("0 committed updates")
        mqtt_urls = [node.mqtt_url for node in cluster.nodes]
        self.coordinator = processes.start("coord", [
            *aggregator_args(_rotated(mqtt_urls, 2), fleet, self.setup, root / "c.s"),
            *round_args(self.setup, DEADLINE_S), "--role", "coordinator",
        ])  # fmt: skip
        self.sim = FleetSim(_plain(cluster.nodes[2]), fleet)

    def start_worker(self, worker: str, name: str | None = None) -> Any:
        first = int(worker[1:]) - 1
        mqtt_urls = [node.mqtt_url for node in self.cluster.nodes]
        nats_urls = [node.nats_url for node in self.cluster.nodes]
        return self.processes.start(name or worker, [
            *aggregator_args(_rotated(mqtt_urls, first), self.fleet, self.setup,
                     self.root / f"{worker}.sqlite"),
            "--role", "worker", "--worker-id", worker,
            "--queue-group-url", _rotated(nats_urls, first),
        ])  # fmt: skip

    def shares(self) -> dict[str, int]:
        return {w: worker_rows(self.root / f"{w}.sqlite") for w in self.workers}

    def close(self) -> None:
        """Stop the devices' client; keep every process's output beside its state file."""
        self.sim.close()
        for process in self.processes.started:
            (self.root / f"{process.name}.stdout").write_text("\n".join(process.output()))


def test_mqtt_qos1_updates_reach_one_queue_member_exactly_once(cluster: NatsCluster) -> None:
    # Prepare: two queue-group members on n0 and n1, an MQTT device client on n2
    fleet, sent = "probe", 200
    sinks = [BoundedEventQueue[LinkEvent]() for _ in range(2)]
    subject = subject_of(subscription_topic(fleet, "update"))
    feeds = [
        NatsQueueFeed((node.nats_url,), subject, "iomt-workers-probe", sink).start()
        for node, sink in zip(cluster.nodes[:2], sinks, strict=True)
    ]
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe-device",
                         protocol=mqtt.MQTTv311, clean_session=False)  # fmt: skip
    node = cluster.nodes[2]
    device.connect(node.host, node.mqtt_port)
    device.loop_start()
    # Execute: QoS 1 publishes, each waited for its PUBACK
    try:
        for i in range(sent):
            topic = update_topic(fleet, f"dev{i:03d}")
            device.publish(topic, f"u{i}".encode(), qos=1).wait_for_publish(10)
        got = [_drain(sink, expected=sent, feeds=feeds) for sink in sinks]
    finally:
        device.disconnect()
        device.loop_stop()
        for feed in feeds:
            feed.stop()
    # Assert: every update once, on its MQTT topic, with its payload; both members took some
    everything = [event for events in got for event in events]
    assert sorted(e.topic for e in everything) == [update_topic(fleet, f"dev{i:03d}")
                                                   for i in range(sent)]  # fmt: skip
    assert all(e.payload == f"u{int(e.topic[-3:])}".encode() for e in everything)
    assert min(len(events) for events in got) > 0


def _drain(sink: BoundedEventQueue[LinkEvent], expected: int, feeds: list[Any]) -> list[LinkEvent]:
    """What `sink` holds once the feeds together received `expected` messages (or 10 s idle)."""
    for _ in range(100):
        if sum(feed.received for feed in feeds) >= expected:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # anything delivered twice would have arrived by now
    events = []
    while (event := sink.get(0.0)) is not None:
        events.append(event)
    return events


def test_coordinator_and_two_queue_group_workers_give_the_single_aggregators_head(
    cluster, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare
    fleet = _Fleet(cluster, processes, "queued", tmp_path)
    # Execute
    try:
        fleet.sim.send(DEVICES)
        metrics = closed_metrics(fleet.coordinator)
        assert fleet.coordinator.finish(timeout_s=60) == 0
    finally:
        fleet.close()
    # Assert: the same head to 1e-6, every update in it once, both workers took a share
    assert_same_head(tmp_path / "c.s", reference_head)
    assert metrics["participants"] == len(DEVICES)
    assert metrics["num_examples"] == sum(10 + 3 * i for i in range(len(DEVICES)))
    for worker in fleet.workers.values():
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.finish() == 0
    shares = fleet.shares()
    assert sum(shares.values()) == len(DEVICES) and min(shares.values()) > 0


def test_kill_9_of_a_queue_group_worker_mid_round_loses_no_acknowledged_update(
    cluster, processes, reference_head, tmp_path: Path
) -> None:
    # Prepare: half the fleet acked; the worker holding more of it is the victim
    fleet = _Fleet(cluster, processes, "queuekill", tmp_path)
    try:
        fleet.sim.send(DEVICES[:6])
        shares = fleet.shares()
        victim = max(shares, key=lambda w: shares[w])
        # Execute: the victim hangs (SIGSTOP: still in the group, so NATS keeps handing it its
        # share) while the other half goes out, then dies by SIGKILL: what was in flight to it
        # is lost and unacknowledged, and the devices resend it; it restarts from its file
        fleet.workers[victim].popen.send_signal(signal.SIGSTOP)
        fleet.sim.send(DEVICES[6:], wait=False)
        time.sleep(1.0)  # the updates reach the cluster and are routed (no time is asserted)
        fleet.workers[victim].popen.send_signal(signal.SIGKILL)
        assert fleet.workers[victim].finish() == -signal.SIGKILL
        held = worker_rows(tmp_path / f"{victim}.sqlite")
        fleet.start_worker(victim, f"{victim}b").wait_for(f"{held} committed updates in its file")
        fleet.sim.wait_acked(DEVICES, resend_every_s=RESEND_S)
        metrics = closed_metrics(fleet.coordinator)
        assert fleet.coordinator.finish(timeout_s=60) == 0
    finally:
        fleet.close()
    # Assert: every acknowledged update is in the single aggregator's head, none twice
    assert held >= shares[victim] > 0
    assert metrics["participants"] == len(DEVICES)
    assert_same_head(tmp_path / "c.s", reference_head)


def test_a_workers_nats_node_killed_it_rejoins_the_queue_group_on_another(
    processes, tmp_path: Path, reference_head
) -> None:
    # Prepare: a cluster of this test's own (a node dies); half the fleet acked
    with NatsCluster(tmp_path / "nats") as own:
        fleet = _Fleet(own, processes, "queuefail", tmp_path)
        try:
            fleet.sim.send(DEVICES[:6])
            # Execute: w1's node (its NATS and MQTT connections) dies by SIGKILL
            own.kill_node(own.nodes[0].name)
            fleet.workers["w1"].wait_for("reconnected to", timeout_s=60)
            fleet.sim.send(DEVICES[6:], wait=False)
            metrics = _closed_resending(fleet)
            assert fleet.coordinator.finish(timeout_s=60) == 0
            # every device hears its ack, resending until it does (NATS closed the devices'
            # connection when it could not store a publish during the failover: their client
            # must subscribe again on the reconnect, as `iomt edge`'s link does)
            fleet.sim.wait_acked(DEVICES, resend_every_s=RESEND_S, timeout_s=90)
        finally:
            fleet.close()
        # Assert: every device in the head, and (above) every device acknowledged
        assert metrics["participants"] == len(DEVICES)
        assert_same_head(tmp_path / "c.s", reference_head)


def _closed_resending(fleet: _Fleet) -> dict[str, Any]:
    """The round's metrics; meanwhile devices resend what is unacknowledged, as `iomt edge`."""
    stop = threading.Event()

    def resend() -> None:
        while not stop.wait(RESEND_S):
            fleet.sim.resend_unacked(DEVICES)

    threading.Thread(target=resend, daemon=True).start()
    try:  # JetStream elects new leaders for what the dead node led: seconds, more on a busy box
        return dict(json.loads(fleet.coordinator.wait_for('"round_closed"', timeout_s=180)))
    finally:
        stop.set()


def test_a_worker_whose_nats_servers_do_not_answer_fails_with_nothing_written(
    cluster, processes, tmp_path: Path
) -> None:
    # Prepare: the MQTT side answers, nothing listens at the NATS URL
    from aggregator.broker import LOOPBACK, free_port

    setup = write_setup(tmp_path, DEVICES, make_head())
    state = tmp_path / "w.sqlite"
    nowhere = f"nats://{LOOPBACK}:{free_port()}"
    args = [*aggregator_args(cluster.url, "nonats", setup, state), "--role", "worker",
            "--worker-id", "w1", "--queue-group-url", nowhere]  # fmt: skip
    # Execute
    worker = processes.start("w1", args)
    code = worker.finish(timeout_s=60)
    # Assert
    error = (tmp_path / "w1.stderr").read_text().strip().splitlines()
    assert code == 1
    assert len(error) == 1 and "took no subscription" in error[0], error
    assert not state.exists()
