"""`iomt fleet` and `iomt aggregator status` in-process (no broker needed)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from aggregator.state_store import StateStore
from iomt.cli import main
from iomt.environment import Environment


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, Environment(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_fleet_add_revoke_list(tmp_path: Path) -> None:
    # Prepare
    registry = str(tmp_path / "fleet.json")
    key = "ab" * 32

    # Execute
    added = _run(["fleet", "add", "dev1", "--public-key", key, "--registry", registry])
    revoked = _run(["fleet", "revoke", "dev1", "--registry", registry])
    listed = _run(["fleet", "list", "--registry", registry, "--json"])

    # Assert
    assert added[0] == revoked[0] == listed[0] == 0
    assert json.loads(listed[1]) == [{"device_id": "dev1", "public_key": key, "revoked": True}]


def test_fleet_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = _run(["fleet", "add", "dev1", "--public-key", "abc", "--registry",
                         str(tmp_path / "f.json")])  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and "hex" in err
    code, _, err = _run(["fleet", "list", "--registry", str(tmp_path / "missing.json")])
    assert code == 2 and "no device registry" in err


def test_aggregator_status_lists_rounds_and_versions(tmp_path: Path) -> None:
    # Prepare
    state = tmp_path / "agg.sqlite"
    weights = [np.zeros((2, 2), np.float32)]
    with StateStore(state) as store:
        store.add_version(0, weights, None, None, "a" * 64)
        store.open_round(1, 0, 0.0, 9.0, 1, {})
        store.close_round(1, 1, weights, "b" * 64, {"participants": 1, "accuracy": 0.5}, 1.0)

    # Execute
    code, out, _ = _run(["aggregator", "status", "--state", str(state)])
    json_code, json_out, _ = _run(["aggregator", "status", "--state", str(state), "--json"])

    # Assert
    assert code == json_code == 0
    assert "round    1  closed" in out and "participants 1" in out
    assert [r["result_version"] for r in json.loads(json_out)["rounds"]] == [1]


def test_aggregator_without_required_options_is_a_usage_error() -> None:
    code, _, err = _run(["aggregator", "--fleet", "f"])
    assert code == 2 and "--broker" in err


def test_aggregator_roles_refuse_what_partial_sums_cannot_do(tmp_path: Path) -> None:
    common = ["aggregator", "--broker", "mqtt://127.0.0.1:1", "--fleet", "f",
              "--state", str(tmp_path / "w.sqlite")]  # fmt: skip
    coordinator = ["--role", "coordinator", "--bundle", str(tmp_path / "b")]
    worker = ["--role", "worker", "--worker-id", "w1"]

    def nats(url: str) -> list[str]:
        return ["--queue-group-url", url]

    cases = [
        (["--role", "worker"], "--worker-id"),
        (["--role", "worker", "--worker-id", "w1", "--strategy", "krum"], "--strategy"),
        (["--role", "worker", "--worker-id", "w1", "--dp-noise-multiplier", "1.0"], "--dp-*"),
        (["--worker-id", "w1", "--bundle", str(tmp_path / "b")], "needs --role worker"),
        (["--worker-key", "k", "--bundle", "b"], "--worker-key needs --role worker or site"),
        (["--role", "worker", "--worker-id", "w1", "--secure-agg"], "needs --role single or site"),
        (
            [
                "--role",
                "site",
                "--worker-id",
                "s",
                "--upstream",
                "mqtt://127.0.0.1:1",
                "--partial-signers",
                "r.json",
            ],
            "--partial-signers needs --role coordinator",
        ),
        (["--role", "worker", "--worker-id", "w1", "--worker-key", "k"], "--aggregator-key"),
        (
            ["--role", "worker", "--worker-id", "w1", "--worker-key", "k", "--aggregator-key", "p"],
            "--partial-signers",
        ),
        (
            [
                "--role",
                "worker",
                "--worker-id",
                "w1",
                "--worker-key",
                "k",
                "--aggregator-key",
                "p",
                "--model-signing-key",
                "c",
            ],
            "replaces --model-signing-key",
        ),
        (
            [
                "--role",
                "coordinator",
                "--bundle",
                "b",
                "--partial-signers",
                str(tmp_path / "none.json"),
            ],
            "no device registry",
        ),
        ([*coordinator, *nats("nats://127.0.0.1:4222")], "--queue-group-url needs --role worker"),
        ([*worker, *nats("mqtt://127.0.0.1:1")], "not a NATS server URL"),
        ([*worker, *nats("nats://h:port")], "not a NATS server URL"),
    ]
    for extra, said in cases:
        code, _, err = _run([*common, *extra])
        assert code == 2 and said in err and err.count("\n") == 1, (extra, err)
    assert not (tmp_path / "w.sqlite").exists()


def test_edge_site_key_needs_the_aggregators_key(tmp_path: Path) -> None:
    code, _, err = _run(["edge", "--broker", "mqtt://127.0.0.1:1", "--fleet", "f", "--device-id",
                         "d", "--bundle", str(tmp_path), "--store", str(tmp_path / "s.sqlite"),
                         "--site-key", str(tmp_path / "site.pub")])  # fmt: skip
    assert code == 2 and "--site-key needs --aggregator-key" in err and err.count("\n") == 1
    assert not (tmp_path / "s.sqlite").exists()


def test_edge_secure_agg_takes_one_site_key(tmp_path: Path) -> None:
    code, _, err = _run(["edge", "--broker", "mqtt://127.0.0.1:1", "--fleet", "f", "--device-id",
                         "d", "--bundle", str(tmp_path), "--store", str(tmp_path / "s.sqlite"),
                         "--aggregator-key", str(tmp_path / "c.pub"), "--secure-agg",
                         "--site-key", str(tmp_path / "a.pub"),
                         "--site-key", str(tmp_path / "b.pub")])  # fmt: skip
    assert code == 2 and "--secure-agg takes one --site-key" in err and err.count("\n") == 1
    assert not (tmp_path / "s.sqlite").exists()


def test_a_bad_key_or_registry_is_one_line_and_writes_no_state(tmp_path: Path) -> None:
    # Prepare: a broker that would answer, so only the files can stop the command
    (tmp_path / "bad.key").write_text("not a key\n")
    (tmp_path / "bad.json").write_text("{")
    common = ["aggregator", "--broker", "mqtt://127.0.0.1:1", "--fleet", "f",
              "--state", str(tmp_path / "s.sqlite"), "--bundle", str(tmp_path / "missing"),
              "--rounds", "1", "--min-clients", "1"]  # fmt: skip
    for extra, said in (
        (["--model-signing-key", str(tmp_path / "bad.key")], "--model-signing-key"),
        (["--registry", str(tmp_path / "bad.json")], "--registry"),
        (
            ["--role", "worker", "--worker-id", "w1", "--registry", str(tmp_path / "bad.json")],
            "--registry",
        ),
    ):
        # Execute
        code, _, err = _run([*common, *extra])

        # Assert
        assert code == 2 and said in err and err.count("\n") == 1, (extra, err)
    assert not (tmp_path / "s.sqlite").exists()
