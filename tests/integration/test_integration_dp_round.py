"""Central DP end to end over real Mosquitto: epsilon per device in `iomt aggregator status
--json`, the budget refusing devices that then stop, and the clinician report's (epsilon, delta)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from aggregator.privacy_accountant import PrivacyAccountant
from fleet_protocol.differential_privacy import DpConfig
from iomt.cli import main
from iomt.environment import Environment

pytestmark = [pytest.mark.integration, pytest.mark.tf]

FLEET = "dp-round"
DEVICES = 2


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), Environment(stdout=out, stderr=io.StringIO(), interactive=False))
    return code, out.getvalue()


def test_epsilon_per_device_budget_stop_and_report(
    mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare: z = 1 spends epsilon 4.75 in one round and 7.09 in two; the budget is 6
    state = tmp_path / "agg.sqlite"
    aggregator = [
        "aggregator", "--broker", mosquitto.url, "--fleet", FLEET,
        "--bundle", str(tiny_task.bundle_path), "--state", str(state),
        "--rounds", "2", "--min-clients", str(DEVICES), "--deadline", "20",
        "--strategy", "fedavg", "--dp-noise-multiplier", "1", "--dp-clip", "0.5",
        "--dp-clip-quantile", "0.9", "--dp-bit-noise", "1", "--max-epsilon", "6", "--json",
    ]  # fmt: skip
    started = [processes.start("aggregator", aggregator)]
    for device in range(DEVICES):
        edge = [
            "edge", "--broker", mosquitto.url, "--fleet", FLEET, "--device-id", f"dev{device}",
            "--bundle", str(tiny_task.bundle_path), "--store", str(tmp_path / f"d{device}.sqlite"),
            "--replay", str(tiny_task.data_path), "--subject", str(device), "--speed", "0",
            "--max-rounds", "2", "--json",
        ]  # fmt: skip
        started.append(processes.start(f"dev{device}", edge))

    # Execute
    exit_codes = [process.finish(timeout_s=120) for process in started]
    code, status_text = _run("aggregator", "status", "--state", str(state), "--json")
    assert _run("report", "keygen", "--out", str(tmp_path / "doctor"))[0] == 0
    made = _run(
        "report",
        "--device-store",
        str(tmp_path / "d0.sqlite"),
        "--recipient",
        str(tmp_path / "doctor" / "clinician.pub"),
        "--out",
        str(tmp_path / "r.enc"),
    )
    opened = _run(
        "report",
        "open",
        str(tmp_path / "r.enc"),
        "--key",
        str(tmp_path / "doctor" / "clinician.key"),
        "--out",
        str(tmp_path / "r.html"),
    )

    # Assert
    assert exit_codes == [0] * (DEVICES + 1)
    assert code == 0 and made[0] == 0 and opened[0] == 0
    privacy = json.loads(status_text)["privacy"]
    epsilon = PrivacyAccountant(DpConfig(1.0, 0.5)).epsilon(1)
    devices = {row["device_id"]: row for row in privacy["devices"]}
    assert set(devices) == {"dev0", "dev1"}
    for row in devices.values():
        assert row["epsilon"] == pytest.approx(epsilon) and row["budget_spent"]
        assert row["rounds_included"] == 1
    assert [v["version"] for v in privacy["versions"]] == [1]
    for device in range(DEVICES):
        records = [json.loads(line) for line in started[device + 1].output()]
        assert any(r["event"] == "privacy_budget_spent" for r in records)
    page = (tmp_path / "r.html").read_text()
    assert f"(ε, δ) = ({epsilon:.2f}, 1e-05)" in page
