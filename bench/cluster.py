"""`python -m bench cluster`: a fleet on a 3-node NATS cluster, one node killed mid-round.

Real parts throughout: three `nats-server` processes (JetStream, MQTT on each node), one
`iomt aggregator` and `--devices` `iomt edge --replay` processes on the watch bundle, each
given every node's URL, rotated so that the clients start spread over the nodes. When the
aggregator has accepted the first update of round `--kill-at-round`, the node it (and every
device that started on node 0) is connected to gets SIGKILL. Written to
`bench/results/cluster.json`:

- `rounds_completed`: rounds closed with a new global version (of `--rounds`);
- `acknowledged_lost`: updates a device saw acknowledged that are not in the aggregator's state
  file (the aggregator commits before it acks, so this must be 0);
- `failover_s`: from the kill until the last client of the killed node is connected to another
  node (from the clients' own `connected` log lines);
- `recovery_s`: from the kill until the aggregator closed the round the node died in.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import watch_bundle, write_results
from bench.fleet_report import SCALING_DOC, replace_marked_block
from bench.report import fmt, markdown_table

FLEET = "cluster-bench"
POLL_S = 0.1
RUN_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ClusterRun:
    """What one run is asked to do."""

    devices: int
    rounds: int
    kill_at_round: int
    deadline_s: float
    workdir: Path
    bundle: Path
    data: Path


def _rotated(urls: list[str], start: int) -> str:
    start %= len(urls)
    return ",".join(urls[start:] + urls[:start])


def _start(name: str, args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    out, err = (workdir / f"{name}.out").open("wb"), (workdir / f"{name}.err").open("wb")
    return subprocess.Popen([sys.executable, "-m", "iomt.cli", *args], stdout=out, stderr=err)


def _start_fleet(run: ClusterRun, urls: list[str]) -> list[subprocess.Popen[bytes]]:
    subjects = sorted(int(s) for s in np.unique(np.load(run.data)["subject"]))
    started = [_start("aggregator", [
        "aggregator", "--broker", _rotated(urls, 0), "--fleet", FLEET, "--bundle", str(run.bundle),
        "--state", str(run.workdir / "aggregator.sqlite"), "--rounds", str(run.rounds),
        "--min-clients", str(run.devices), "--deadline", str(run.deadline_s), "--json",
    ], run.workdir)]  # fmt: skip
    for d in range(run.devices):
        started.append(_start(f"dev{d}", [
            "edge", "--broker", _rotated(urls, d), "--fleet", FLEET, "--device-id", f"dev{d}",
            "--bundle", str(run.bundle), "--store", str(run.workdir / f"dev{d}.sqlite"),
            "--replay", str(run.data), "--subject", str(subjects[d % len(subjects)]),
            "--speed", "0", "--max-rounds", str(run.rounds), "--json",
        ], run.workdir))  # fmt: skip
    return started


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _unix(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


def _wait_for_message(path: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(POLL_S)
    raise RuntimeError(f"no {text!r} in {path} within {timeout_s:.0f} s")


def _acked(workdir: Path, devices: int) -> set[tuple[str, int]]:
    acked = set()
    for d in range(devices):
        for event in _json_lines(workdir / f"dev{d}.out"):
            if event.get("event") == "ack" and event.get("accepted"):
                acked.add((f"dev{d}", int(event["round"])))
    return acked


def _stored(state: Path) -> tuple[set[tuple[str, int]], int]:
    import sqlite3

    with sqlite3.connect(state) as db:
        stored = {(d, int(r)) for d, r in db.execute("SELECT device_id, round_id FROM updates")}
        query = "SELECT COUNT(*) FROM rounds WHERE result_version IS NOT NULL"
        closed = int(db.execute(query).fetchone()[0])
    return stored, closed


def _failover_s(workdir: Path, devices: int, killed_port: int, killed_unix: float) -> float:
    """Kill until the last client that was on the killed node connected elsewhere."""
    back = []
    for d in range(devices):
        events = [e for e in _json_lines(workdir / f"dev{d}.out") if e.get("event") == "connected"]
        before = [e for e in events if _unix(e) <= killed_unix]
        if not before or not before[-1]["broker"].endswith(f":{killed_port}"):
            continue
        after = [_unix(e) for e in events if _unix(e) > killed_unix]
        back.append(min(after) - killed_unix if after else float("inf"))
    return round(max(back, default=0.0), 3)


def _recovery_s(workdir: Path, killed_unix: float, round_id: int) -> float:
    """Kill until the aggregator closed the round the node died in."""
    for event in _json_lines(workdir / "aggregator.out"):
        if str(event.get("message", "")).startswith(f"round {round_id}: closed"):
            return round(max(0.0, _unix(event) - killed_unix), 3)
    return float("inf")


def run_once(run: ClusterRun) -> dict[str, Any]:
    """One fleet on a fresh cluster; the figures of cluster.json."""
    from aggregator.nats_cluster import NatsCluster

    with NatsCluster(run.workdir / "nats") as cluster:
        urls = [node.mqtt_url for node in cluster.nodes]
        processes = _start_fleet(run, urls)
        try:
            marker = f"round {run.kill_at_round}: accepted"
            _wait_for_message(run.workdir / "aggregator.out", marker, RUN_TIMEOUT_S)
            killed = cluster.nodes[0]
            cluster.kill_node(killed.name)
            killed_unix = time.time()
            codes = [p.wait(timeout=RUN_TIMEOUT_S) for p in processes]
        finally:
            for process in processes:
                process.kill()
    stored, completed = _stored(run.workdir / "aggregator.sqlite")
    acked = _acked(run.workdir, run.devices)
    return {
        "nodes": len(urls), "devices": run.devices, "rounds": run.rounds,
        "node_killed_at_round": run.kill_at_round, "rounds_completed": completed,
        "acknowledged": len(acked), "acknowledged_lost": len(acked - stored),
        "failover_s": _failover_s(run.workdir, run.devices, killed.mqtt_port, killed_unix),
        "recovery_s": _recovery_s(run.workdir, killed_unix, run.kill_at_round), "exit_codes": codes,
    }  # fmt: skip


def cluster_figures(results: dict[str, Any]) -> str:
    """The measured block of docs/scaling.md and the section of docs/benchmarks.md."""
    rows = [
        ["nodes (nats-server, JetStream, MQTT 3.1.1)", fmt(results["nodes"])],
        ["devices (`iomt edge` processes, watch bundle)", fmt(results["devices"])],
        ["node killed (SIGKILL) in round", fmt(results["node_killed_at_round"])],
        ["rounds completed", f"{results['rounds_completed']} of {results['rounds']}"],
        ["updates acknowledged to devices", fmt(results["acknowledged"])],
        ["acknowledged updates lost", fmt(results["acknowledged_lost"])],
        ["failover: kill -> its clients connected to another node (s)", fmt(results["failover_s"])],
        ["recovery: kill -> that round closed (s)", fmt(results["recovery_s"])],
    ]
    return (
        "Measured by `python -m bench cluster` (one run; the aggregator and every device on "
        "the killed node fail over):\n\n" + markdown_table(["figure", "value"], rows)
    )


def report_section(results: dict[str, Any], plots: Any) -> str:
    """docs/benchmarks.md's cluster section."""
    return cluster_figures(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__)
    parser.add_argument("--devices", type=int, default=6, help="iomt edge processes")
    parser.add_argument("--rounds", type=int, default=4, help="rounds to run")
    parser.add_argument("--kill-at-round", type=int, default=2, help="round the node dies in")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per round")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args(argv)
    if not 1 <= args.kill_at_round <= args.rounds or args.devices < 1:
        parser.error("--kill-at-round must be within --rounds, --devices at least 1")
    prepared = watch_bundle()
    with tempfile.TemporaryDirectory(prefix="iomt-bench-cluster-") as tmp:
        run = ClusterRun(args.devices, args.rounds, args.kill_at_round, args.deadline,
                         Path(tmp), prepared.bundle, prepared.data)  # fmt: skip
        results = run_once(run)
    print(json.dumps(results))
    print(f"wrote {write_results('cluster', results, args.out)}")
    if args.out is None:
        replace_marked_block(SCALING_DOC, "cluster-figures", cluster_figures(results))
    ok = results["rounds_completed"] == args.rounds and results["acknowledged_lost"] == 0
    return 0 if ok else 1
