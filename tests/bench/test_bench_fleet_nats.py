"""The fleet bench on a 3-node NATS cluster (a fresh one per run), small: 4 emulated devices,
real `nats-server` nodes and real `iomt aggregator` processes (one single aggregator, then a
coordinator with two workers in a NATS queue group)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.nats_cluster import NatsCluster, find_nats_server
from bench.fleet_nats import ClusterBroker, run_bench
from bench.fleet_scale import BenchPlan

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_nats_server() is None, reason="nats-server is not installed"),
]


def test_queue_group_workers_take_every_update_on_a_fresh_cluster_per_run(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "fleet-nats.json"
    plan = BenchPlan([4], [0, 2], repeats=1, processes=3, devices_per_connection=2)
    # Execute
    run_bench(plan, out=out)
    # Assert
    results = json.loads(out.read_text())
    assert results["broker"].startswith("3-node nats-server")
    for setup in ("single", "2 workers"):
        assert results["by_devices"]["4"][setup]["accepted_min"] == 4
    workers = results["by_devices"]["4"]["2 workers"]
    assert workers["aggregator_peak_mb"]["median"] > workers["largest_process_peak_mb"]["median"]


def test_a_node_that_died_is_named_with_its_last_log_line(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "nats") as cluster:
        broker = ClusterBroker(cluster)
        assert broker.dead() is None
        # Execute
        cluster.kill_node("n1")
        # Assert
        dead = broker.dead()
        assert dead is not None and dead.startswith("NATS node n1 exited: ")
        assert "\n" not in dead


def test_clients_are_spread_over_the_nodes_and_workers_start_on_their_own(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "nats")
    cluster.write_configs()  # ports planned, nothing started
    broker = ClusterBroker(cluster)
    ports = [node.mqtt_port for node in cluster.nodes]
    assert [broker.device_address(i)[1] for i in range(4)] == [*ports, ports[0]]
    mqtt, extra = broker.worker_options(2)
    assert mqtt.split(",")[0] == cluster.nodes[1].mqtt_url
    assert extra[0] == "--queue-group-url"
    assert extra[1].split(",") == [cluster.nodes[i].nats_url for i in (1, 2, 0)]
