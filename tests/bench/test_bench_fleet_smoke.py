"""Fleet-scale bench, small: 3 and 5 emulated devices, real Mosquitto, real `iomt aggregator`
processes (one single aggregator, then a coordinator with two workers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.broker import find_mosquitto
from bench.fleet_scale import BenchPlan, run_bench
from bench.report import Plots

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    out = tmp_path_factory.mktemp("fleet") / "fleet.json"
    plan = BenchPlan([3, 5], [0, 2], repeats=1, processes=2, devices_per_connection=2)
    run_bench(plan, out=out)
    return json.loads(out.read_text())


def test_every_device_of_the_round_is_accepted(fleet_results: dict) -> None:
    for setup in ("single", "2 workers"):
        assert fleet_results["by_devices"]["5"][setup]["accepted_min"] == 5
        assert fleet_results["by_devices"]["3"][setup]["accepted_min"] == 3
    runs_5 = [run for run in fleet_results["runs"] if run["devices"] == 5]
    assert [run["workers"] for run in runs_5] == [0, 2]
    assert all(run["update_bytes"] > 5 * 4000 for run in runs_5)  # int8 136x32 + 32x7 weights


def test_results_carry_medians_growth_and_machine(fleet_results: dict) -> None:
    latency = fleet_results["by_devices"]["5"]["2 workers"]["round_latency_s"]
    assert latency["min"] <= latency["median"] <= latency["max"]
    assert latency["median"] > 0
    workers = fleet_results["by_devices"]["5"]["2 workers"]
    assert workers["aggregator_peak_mb"]["median"] > workers["largest_process_peak_mb"]["median"]
    assert set(fleet_results["growth"]) == {"3->5"}
    assert set(fleet_results["growth"]["3->5"]) == {"single", "2 workers"}
    assert fleet_results["machine"]["cores"] >= 1


def test_report_section_renders_the_table(fleet_results: dict, tmp_path: Path) -> None:
    from bench.fleet_scale import report_section

    section = report_section(fleet_results, Plots(tmp_path, "plots"))
    assert "| 5 | 2 workers |" in section
    assert "fleet_latency.png" in section
    assert (tmp_path / "fleet_latency.png").exists()


def test_byte_proxy_counts_every_byte_each_way() -> None:
    """The relay the Flower bench counts SuperNode traffic with (a loopback echo server)."""
    import socket
    import threading

    from bench.byte_proxy import ByteProxy

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def echo() -> None:
            connection, _ = server.accept()
            with connection:
                received = 0
                while received < 100:
                    received += len(connection.recv(4096))
                connection.sendall(b"y" * 10)

        threading.Thread(target=echo, daemon=True).start()
        with ByteProxy(server.getsockname()[1], ["node"]) as proxy:
            with socket.create_connection(("127.0.0.1", proxy.ports["node"])) as client:
                client.sendall(b"x" * 100)
                received = b""
                while len(received) < 10:
                    received += client.recv(100)
                client.shutdown(socket.SHUT_WR)
                client.recv(100)  # the relay closes after the server side is done
            traffic = proxy.traffic["node"]
    assert traffic.up == 100
    assert traffic.down == 10


def test_an_aggregator_that_dies_at_startup_fails_the_run_in_one_line(tmp_path: Path) -> None:
    """A worker that exits (here: an unreadable device registry) is named at once, with its
    exit code and what it printed, instead of the bench waiting for its log line or round."""
    from bench.fleet_round import AggregatorExitedError, write_setup
    from bench.fleet_scale import _start_aggregators, _synthetic_head

    setup = write_setup(tmp_path, ("d00000",), _synthetic_head())
    setup.registry.write_text("not json")
    with pytest.raises(AggregatorExitedError) as raised:
        _start_aggregators("mqtt://127.0.0.1:9", "dead", setup, 1, 2, tmp_path)
    message = str(raised.value)
    assert message.startswith("worker w1 exited with code ") and "\n" not in message
    assert "registry" in message.lower()
    assert int(message.split("code ")[1].split(":")[0]) != 0
    print(message)
