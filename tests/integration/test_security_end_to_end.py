"""`iomt aggregator` and `iomt edge` processes over Mosquitto with TLS, client certificates,
the per-device ACL, a device registry, aggregator-signed models and central DP all switched on."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.broker import LocalBroker, find_mosquitto
from aggregator.certs import init_directory, issue_client, member_identity
from aggregator.device_registry import DeviceRegistry, parse_public_key
from bundle_format.signing import write_key_pair
from iomt.cli import main
from iomt.environment import Environment

pytestmark = [pytest.mark.integration, pytest.mark.tf]

FLEET = "secure"
DEVICES = ("ward-a", "ward-b")
WORKERS = ("w1", "w2")
ROUNDS = 2


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, Path]]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    certs = init_directory(tmp_path / "certs")
    for name in (*DEVICES, *(member_identity(w) for w in WORKERS)):
        issue_client(certs, name)
    with LocalBroker(tls_dir=certs.root, acl_fleet=FLEET) as broker:
        yield broker, certs.root


def _device_public_key(store: Path) -> bytes:
    out = io.StringIO()
    assert main(["edge", "keygen", "--store", str(store)], Environment(stdout=out)) == 0
    return parse_public_key(out.getvalue())


class _SecuredFleet:
    """Registered device keys and an aggregator signing key, and the command lines that use
    them over the TLS broker."""

    def __init__(self, broker: LocalBroker, certs: Path, task: Any, tmp_path: Path) -> None:
        self.broker, self.certs, self.task, self.tmp_path = broker, certs, task, tmp_path
        registry = DeviceRegistry(tmp_path / "fleet.json")
        for device_id in DEVICES:
            registry.add(device_id, _device_public_key(tmp_path / f"{device_id}.sqlite"))
        registry.save()
        self.signer = write_key_pair(tmp_path / "aggregator-key")
        self.metrics_path = tmp_path / "metrics.jsonl"

    def aggregator_args(self, *extra: str) -> list[str]:
        return [
            "aggregator", "--broker", self.broker.url, "--fleet", FLEET, "--tls", str(self.certs),
            "--bundle", str(self.task.bundle_path), "--state", str(self.tmp_path / "agg.sqlite"),
            "--rounds", str(ROUNDS), "--min-clients", str(len(DEVICES)), "--deadline", "60",
            "--registry", str(self.tmp_path / "fleet.json"),
            "--model-signing-key", str(self.signer.private_path),
            "--metrics-out", str(self.metrics_path), "--json", *extra,
        ]  # fmt: skip

    def edge_args(self, index: int, device_id: str) -> list[str]:
        return [
            "edge", "--broker", self.broker.url, "--fleet", FLEET, "--device-id", device_id,
            "--tls", str(self.certs), "--aggregator-key", str(self.signer.public_path),
            "--bundle", str(self.task.bundle_path),
            "--store", str(self.tmp_path / f"{device_id}.sqlite"),
            "--replay", str(self.task.data_path), "--subject", str(index), "--speed", "0",
            "--max-rounds", str(ROUNDS), "--json",
        ]  # fmt: skip


def test_secured_fleet_runs_rounds_end_to_end(
    tls_broker, tiny_task, processes, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Prepare: registry of device keys, the aggregator's model-signing key
    fleet = _SecuredFleet(*tls_broker, tiny_task, tmp_path)
    dp = ["--dp-noise-multiplier", "0.5", "--dp-clip", "1.0", "--dp-delta", "1e-5"]
    started = [processes.start("aggregator", fleet.aggregator_args(*dp))]
    for index, device_id in enumerate(DEVICES):
        edge = fleet.edge_args(index, device_id)
        if index == 1:  # this one also adds its own noise before anything leaves it
            edge += ["--dp-local-noise", "0.5", "--dp-local-clip", "1.0"]
        started.append(processes.start(device_id, edge))
    metrics_path = fleet.metrics_path

    # Execute
    exit_codes = [process.finish(timeout_s=120) for process in started]

    # Assert
    assert exit_codes == [0] * (len(DEVICES) + 1)
    rounds = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["participants"] == len(DEVICES) and r["rejected"] == {} for r in rounds)
    assert 0 < rounds[0]["dp_epsilon"] < rounds[1]["dp_epsilon"]
    device_log = [json.loads(line) for line in started[1].output() if line.startswith("{")]
    installed = [r["version"] for r in device_log if r.get("event") == "installed"]
    assert installed[-1] == ROUNDS  # the device verified and installed the signed models
    assert not any(r.get("event") == "bad_message" for r in device_log)
    noisy_log = [json.loads(line) for line in started[2].output() if line.startswith("{")]
    local = [r["epsilon"] for r in noisy_log if r.get("event") == "dp_local"]
    assert len(local) == ROUNDS and 0 < local[0] < local[1]


def test_secure_aggregation_rounds_end_to_end(
    tls_broker, tiny_task, processes, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Prepare: same secured fleet, but devices send only masked vectors
    fleet = _SecuredFleet(*tls_broker, tiny_task, tmp_path)
    started = [processes.start("aggregator", fleet.aggregator_args("--secure-agg"))]
    for index, device_id in enumerate(DEVICES):
        started.append(
            processes.start(device_id, [*fleet.edge_args(index, device_id), "--secure-agg"])
        )
    metrics_path = fleet.metrics_path

    # Execute
    exit_codes = [process.finish(timeout_s=120) for process in started]

    # Assert
    assert exit_codes == [0] * (len(DEVICES) + 1)
    rounds = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["status"] == "aggregated" and r["participants"] == len(DEVICES) for r in rounds)
    assert all(r["bytes_in"] > 0 and r["bytes_out"] > 0 for r in rounds)  # phase traffic counted
    assert rounds[-1]["model_version"] == ROUNDS
    device_log = [json.loads(line) for line in started[1].output() if line.startswith("{")]
    events = [r.get("event") for r in device_log]
    assert events.count("secure_round") == ROUNDS and "update" not in events  # no clear delta


def test_workers_with_certificates_and_keys_of_their_own_run_rounds_over_tls(
    tls_broker, tiny_task, processes, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Prepare: each worker its own TLS certificate (aggregator.ID) and signing key; the devices
    # take acks from either worker's key and rounds and models only from the coordinator's
    fleet = _SecuredFleet(*tls_broker, tiny_task, tmp_path)
    signers = DeviceRegistry(tmp_path / "signers.json")
    keys = {w: write_key_pair(tmp_path / f"{w}-key") for w in WORKERS}
    for worker, pair in keys.items():
        signers.add(worker, pair.public_key)
    signers.save()
    workers = [processes.start(w, [
        "aggregator", "--broker", fleet.broker.url, "--fleet", FLEET, "--tls", str(fleet.certs),
        "--state", str(tmp_path / f"{w}.sqlite"), "--registry", str(tmp_path / "fleet.json"),
        "--role", "worker", "--worker-id", w, "--worker-key", str(keys[w].private_path),
        "--aggregator-key", str(fleet.signer.public_path), "--partial-signers", str(signers.path),
        "--json",
    ]) for w in WORKERS]  # fmt: skip
    for worker in workers:
        worker.wait_for("0 committed updates")
    coordinator = processes.start("coordinator", fleet.aggregator_args(
        "--role", "coordinator", "--partial-signers", str(signers.path)))  # fmt: skip
    site_keys = [arg for w in WORKERS for arg in ("--site-key", str(keys[w].public_path))]
    devices = [processes.start(device_id, [*fleet.edge_args(index, device_id), *site_keys])
               for index, device_id in enumerate(DEVICES)]  # fmt: skip

    # Execute
    exit_codes = [process.finish(timeout_s=120) for process in [coordinator, *devices]]

    # Assert: every round closed with both devices, acked under a worker's key, models verified
    assert exit_codes == [0] * (len(DEVICES) + 1)
    rounds = [json.loads(line) for line in fleet.metrics_path.read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["participants"] == len(DEVICES) for r in rounds)
    for device in devices:
        log = [json.loads(line) for line in device.output() if line.startswith("{")]
        assert not any(r.get("event") == "bad_message" for r in log)
        assert [r["version"] for r in log if r.get("event") == "installed"][-1] == ROUNDS
    assert not any("refused" in line for line in coordinator.output())
