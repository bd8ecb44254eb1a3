"""`iomt fleet add|status` and `iomt aggregator rollback` as an operator types them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from iomt.cli import main
from iomt.environment import Environment


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Environment(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_fleet_add_takes_the_pem_public_key_iomt_keys_writes(tmp_path: Path) -> None:
    registry = str(tmp_path / "fleet.json")
    assert _run("keys", "--out", str(tmp_path / "k"))[0] == 0
    public = str(tmp_path / "k" / "bundle_signing.pub")
    code, out, _ = _run("fleet", "add", "dev7", "--public-key-file", public, "--registry", registry)
    assert Path(public).read_bytes().startswith(b"-----BEGIN PUBLIC KEY")
    assert code == 0 and out.startswith("added dev7 ")


def test_fleet_add_refuses_another_kind_of_key_in_one_line(tmp_path: Path) -> None:
    pem = (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "x25519.pub").write_bytes(pem)
    code, _, err = _run("fleet", "add", "dev7", "--public-key-file", str(tmp_path / "x25519.pub"),
                        "--registry", str(tmp_path / "fleet.json"))  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not an Ed25519" in err
    assert not (tmp_path / "fleet.json").exists()


def test_replacing_a_device_key_needs_replace(tmp_path: Path) -> None:
    registry = str(tmp_path / "fleet.json")
    first, second = "11" * 32, "22" * 32
    assert _run("fleet", "add", "dev7", "--public-key", first, "--registry", registry)[0] == 0
    code, _, err = _run("fleet", "add", "dev7", "--public-key", second, "--registry", registry)
    assert code == 2 and "--replace" in err
    assert json.loads(Path(registry).read_text())["devices"][0]["public_key_hex"] == first
    again = _run(
        "fleet", "add", "dev7", "--public-key", second, "--replace", "--registry", registry
    )
    assert again[0] == 0
    assert json.loads(Path(registry).read_text())["devices"][0]["public_key_hex"] == second


def test_fleet_status_and_rollback_refuse_a_missing_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "none.sqlite")
    assert _run("fleet", "status", "--state", state)[0] == 2
    code, _, err = _run("aggregator", "rollback", "1", "--state", state)
    assert code == 2 and "no state file" in err
    assert not Path(state).exists()


def test_rollback_to_an_unknown_version_is_refused(tmp_path: Path) -> None:
    from aggregator.state_store import StateStore
    from fleet_protocol.wire import message_sha256

    state = tmp_path / "agg.sqlite"
    weights = [np.zeros(2, np.float32)]
    with StateStore(state) as store:
        store.add_version(0, weights, None, None, message_sha256(weights), 1.0)
    code, _, err = _run("aggregator", "rollback", "4", "--state", str(state))
    assert code == 2 and "no version 4" in err
    code, out, _ = _run("aggregator", "rollback", "0", "--state", str(state))
    assert code == 0 and out.startswith("version 1 = version 0")
    code, out, _ = _run("fleet", "status", "--state", str(state))
    assert code == 0 and out.strip() == "no devices heard of yet"


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    registry = tmp_path / "fleet.json"
    for index in range(3):
        assert _run("fleet", "add", f"dev{index}", "--public-key", f"{index:02d}" * 32,
                    "--registry", str(registry))[0] == 0  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "iomt.cli", "fleet", "list", "--registry", str(registry)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head -0`: the reader is gone before the first line
    code, err = process.wait(timeout=60), process.stderr.read()
    assert (code, err) == (0, b"")


def test_edge_keygen_pem_is_what_fleet_add_reads(tmp_path: Path) -> None:
    code, printed, _ = _run("edge", "keygen", "--store", str(tmp_path / "d.sqlite"),
                            "--out", str(tmp_path / "dev7.pub"))  # fmt: skip
    assert code == 0 and (tmp_path / "dev7.pub").read_bytes().startswith(b"-----BEGIN PUBLIC")
    code, out, _ = _run("fleet", "add", "dev7", "--public-key-file", str(tmp_path / "dev7.pub"),
                        "--registry", str(tmp_path / "fleet.json"))  # fmt: skip
    assert code == 0 and out.split()[-1] == printed.strip()
