"""The edge install on its own: a venv holding only `pip install "<wheel>[edge]"`, as on a Pi.

The wheel is built from these sources and installed with its `edge` extra into a venv of its
own (cached per wheel content under the user's cache directory). From that venv: every
edge-side module imports (found by walking the packages, not listed by hand), and two devices
run two federated rounds with on-device differential privacy against a real Mosquitto and the
workstation's aggregator: one replaying a dataset, one reading the serial stream of an
emulated MCU that the edge venv itself starts. Both keep their sample stores.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from bench.pi_check.edge_venv import Wheel, build_wheel, edge_venv

pytestmark = [pytest.mark.integration, pytest.mark.tf, pytest.mark.slow]

EDGE_PACKAGES = ("edge_runtime", "firmware_bridge", "hardware")
# the device's side of the device-aggregator contract, and the bundle format it reads
DEVICE_PROTOCOL_PACKAGES = ("fleet_protocol", "bundle_format")
WORKSTATION_ONLY = ("tensorflow", "tf_keras", "scipy", "dp_accounting", "tflite_micro")
FLEET = "edge-only"
ROUNDS = 2

_IMPORT_EVERY_MODULE = textwrap.dedent(
    """
    import importlib, importlib.util, json, pkgutil, sys
    packages, absent = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    present = [name for name in absent if importlib.util.find_spec(name) is not None]
    imported, failed = [], []
    def record_failure(name):
        failed.append([name, repr(sys.exc_info()[1])])
    for package_name in packages:
        package = importlib.import_module(package_name)
        imported.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + ".", record_failure):
            try:
                importlib.import_module(info.name)
                imported.append(info.name)
            except Exception as exc:
                failed.append([info.name, repr(exc)])
    origin = importlib.util.find_spec("edge_runtime").origin
    print(json.dumps({"imported": imported, "failed": failed, "present": present,
                      "origin": origin}))
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def venv(wheel: Wheel) -> Path:
    return edge_venv(wheel)


def test_every_edge_module_imports_in_the_edge_only_venv(venv: Path, tmp_path: Path) -> None:
    # Execute
    packages = json.dumps([*EDGE_PACKAGES, *DEVICE_PROTOCOL_PACKAGES])
    completed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _IMPORT_EVERY_MODULE, packages,
         json.dumps(WORKSTATION_ONLY)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip

    # Assert
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    assert report["present"] == [], "the edge venv holds workstation-only packages"
    assert str(venv) in report["origin"], "imported the checkout, not the installed wheel"
    assert report["failed"] == [], report["failed"]
    walked = {name.split(".")[0] for name in report["imported"]}
    assert walked == {*EDGE_PACKAGES, *DEVICE_PROTOCOL_PACKAGES}
    assert len(report["imported"]) > 20


def _edge_args(url: str, device: str, bundle: Path, store: Path) -> list[str]:
    return [
        "edge", "--broker", url, "--fleet", FLEET, "--device-id", device, "--bundle", str(bundle),
        "--store", str(store), "--max-rounds", str(ROUNDS), "--json",
        "--dp-local-noise", "0.3", "--dp-local-clip", "5.0",
    ]  # fmt: skip


def test_edge_only_devices_run_two_rounds_with_local_dp(
    venv: Path, mosquitto, tiny_task, processes, tmp_path: Path
) -> None:
    # Prepare: the aggregator from this (workstation) environment, devices from the edge venv
    iomt = [str(venv / "bin" / "iomt")]
    metrics = tmp_path / "metrics.jsonl"
    aggregator = processes.start("aggregator", [
        "aggregator", "--broker", mosquitto.url, "--fleet", FLEET,
        "--bundle", str(tiny_task.bundle_path), "--state", str(tmp_path / "agg.sqlite"),
        "--rounds", str(ROUNDS), "--min-clients", "2", "--deadline", "90",
        "--holdout", str(tiny_task.holdout_path), "--metrics-out", str(metrics), "--json",
    ])  # fmt: skip
    emulator = processes.start(
        "emulator", ["bridge", "emulate", "--replay", str(tiny_task.holdout_path), "--json"], iomt
    )
    port = json.loads(emulator.wait_for('"port"', timeout_s=60))["port"]
    replayed = processes.start("replay", [
        *_edge_args(mosquitto.url, "replay0", tiny_task.bundle_path, tmp_path / "r.sqlite"),
        "--replay", str(tiny_task.data_path), "--subject", "0", "--speed", "0",
    ], iomt)  # fmt: skip
    serial = processes.start("serial", [
        *_edge_args(mosquitto.url, "serial0", tiny_task.bundle_path, tmp_path / "s.sqlite"),
        "--serial", port, "--min-samples", "4",
    ], iomt)  # fmt: skip

    # Execute
    codes = [p.finish(timeout_s=240) for p in (aggregator, replayed, serial)]
    emulator.kill()

    # Assert
    logs = {p.name: (tmp_path / f"{p.name}.stderr").read_text()[-2000:] for p in (replayed, serial)}
    assert codes == [0, 0, 0], logs
    rounds = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["participants"] == 2 and r["rejected"] == {} for r in rounds)
    for device in (replayed, serial):
        events = [json.loads(line) for line in device.output() if line.startswith("{")]
        private = [e for e in events if e["event"] == "dp_local"]
        assert [e["rounds"] for e in private] == [1, 2]
        assert 0 < private[0]["epsilon"] < private[1]["epsilon"] < float("inf")
        assert any(e["event"] == "installed" and e["version"] == ROUNDS for e in events)
        stop = next(e for e in events if e["event"] == "stop")
        assert stop["rounds_acked"] == ROUNDS and stop["windows"] > 0
    status = subprocess.run(
        [*iomt, "edge", "status", "--store", str(tmp_path / "s.sqlite"), "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    stored = json.loads(status.stdout)
    assert stored["labelled"] >= 4 and int(stored["model_version"]) == ROUNDS
