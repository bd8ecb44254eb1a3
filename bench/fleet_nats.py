"""`python -m bench fleet --broker nats`: the fleet bench's rounds on a 3-node NATS cluster.

The devices, aggregator processes, observer and figures are those of the Mosquitto bench
(`bench.fleet_scale.measure_round`); what differs:

- every run gets a fresh cluster (`aggregator.nats_cluster.NatsCluster` with new JetStream store
  directories), so no run inherits the sessions, consumers and retained messages of the last;
- device process i connects to node i mod 3, the observer to n0, the single aggregator or the
  coordinator gets every node (n0 first);
- worker w takes the updates from the NATS queue group (`--queue-group-url`), its MQTT and NATS
  lists starting at node (w-1) mod 3;
- a node that exits ends the run with one line (`bench.fleet_liveness`), and a failed run's
  directory (node logs, aggregator logs) is kept and named.

Results: `bench/results/fleet-nats.json` and the `nats-fleet-figures` block of docs/scaling.md.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator.nats_cluster import NatsCluster, NatsNode
from bench.common import RESULTS_DIR, write_results
from bench.fleet_liveness import FleetProcessDiedError, last_line
from bench.fleet_report import SCALING_DOC, replace_marked_block, scaling_figures
from bench.fleet_round import AggregatorExitedError
from bench.fleet_scale import (
    BenchPlan,
    RunResult,
    measure_round,
    raise_open_files_limit,
    results_of,
)

RESULTS = RESULTS_DIR / "fleet-nats.json"
NODES = 3


@dataclass(frozen=True)
class ClusterBroker:
    """A running cluster as `measure_round` sees a broker: where each client connects."""

    cluster: NatsCluster

    @property
    def url(self) -> str:
        """Every node's MQTT URL (n0 first): the single aggregator's or coordinator's list."""
        return self.cluster.url

    @property
    def host(self) -> str:
        return self.cluster.nodes[0].host

    @property
    def port(self) -> int:
        return self.cluster.nodes[0].mqtt_port

    def device_address(self, index: int) -> tuple[str, int]:
        """Device process `index` on node `index` mod 3."""
        node = self.cluster.nodes[index % len(self.cluster.nodes)]
        return node.host, node.mqtt_port

    def worker_options(self, worker: int) -> tuple[str, tuple[str, ...]]:
        """Worker `worker`'s `--broker` list and its queue group, both from its own node."""
        nodes = _rotated(self.cluster.nodes, worker - 1)
        queue = ",".join(node.nats_url for node in nodes)
        return ",".join(node.mqtt_url for node in nodes), ("--queue-group-url", queue)

    def dead(self) -> str | None:
        """The first node that is no longer running, with the last line it logged."""
        running = set(self.cluster.running())
        for node in self.cluster.nodes:
            if node.name not in running:
                log = self.cluster.directory / f"{node.name}.log"
                return f"NATS node {node.name} exited: {last_line(log)}"
        return None


def _rotated(nodes: list[NatsNode], start: int) -> list[NatsNode]:
    start %= len(nodes)
    return nodes[start:] + nodes[:start]


def run_bench(plan: BenchPlan, out: Path | None = RESULTS) -> dict[str, Any]:
    """Every (count, workers) `repeats` times, each on a fresh cluster; writes `out`."""
    raise_open_files_limit()  # the nodes inherit it: 1,000 devices need > 1,024 descriptors
    runs: list[RunResult] = []
    failed: list[dict[str, Any]] = []  # runs that did not end, each with its one line
    root = Path(tempfile.mkdtemp(prefix="fleet-nats-"))
    for count, workers, repeat in itertools.product(plan.counts, plan.workers,
                                                    range(plan.repeats)):  # fmt: skip
        try:
            runs.append(_one_run(root, count, workers, repeat, plan))
        except (FleetProcessDiedError, AggregatorExitedError, TimeoutError) as exc:
            failed.append({"devices": count, "workers": workers, "error": str(exc)})
            print(f"fleet (nats): {count} devices, {workers} workers: FAILED {exc}"
                  f" (logs kept in {root})", file=sys.stderr)  # fmt: skip
            continue
        print(f"fleet (nats): {count} devices, {workers} workers: {runs[-1]}", file=sys.stderr)
    if not failed:
        shutil.rmtree(root, ignore_errors=True)
    done = {(r.devices, r.workers) for r in runs}
    if done != set(itertools.product(plan.counts, plan.workers)):
        raise FleetProcessDiedError(f"no run ended for some configurations: {failed}")
    result = {**results_of(runs, plan, broker_kind()), "failed_runs": failed}
    if out is not None:
        write_results("fleet-nats", result, out)
        if out == RESULTS:
            update_nats_figures(json.loads(out.read_text()))
    return result


def _one_run(root: Path, count: int, workers: int, repeat: int, plan: BenchPlan) -> RunResult:
    """One round on a cluster started for it alone (its store directories are new)."""
    name = f"n{count}-w{workers}-r{repeat}"
    with NatsCluster(root / f"{name}-nats", NODES) as cluster:
        return measure_round(ClusterBroker(cluster), count, workers, plan, root / name)


def broker_kind() -> str:
    """How the results name the broker."""
    from aggregator.nats_cluster import find_nats_server, nats_server_version

    version = nats_server_version(find_nats_server() or "nats-server")
    return (f"{NODES}-node nats-server {version} cluster (JetStream, MQTT 3.1.1; workers in a"
            " NATS queue group)")  # fmt: skip


def update_nats_figures(results: dict[str, Any], doc: Path = SCALING_DOC) -> bool:
    """Rewrite the `nats-fleet-figures` block of docs/scaling.md; False if it has none."""
    block = scaling_figures(results).replace("`python -m bench fleet`",
                                             "`python -m bench fleet --broker nats`")  # fmt: skip
    return replace_marked_block(doc, "nats-fleet-figures", block)
