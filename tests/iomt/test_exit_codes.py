"""Every `iomt` subcommand: 2 for a usage error, 1 for a failure, 0 otherwise; one line; nothing
written when it refuses.

The policy (docs/configuration.md): 2 when the command line is wrong (a bad or missing option,
a path named on it that is missing or of the wrong kind, an output that would be overwritten),
checked at the door before anything is read at length or written; 1 when the work itself fails
(a broker or serial port that does not answer, a bundle that does not verify, data found
malformed deep inside). The walk below finds every subcommand of the real parser and fails
when one has no case here, so a new command comes with its bad inputs.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from iomt.cli import _available_commands, build_parser, main
from iomt.environment import Environment

UNREACHABLE = "mqtt://127.0.0.1:1"  # nothing listens on port 1
EDGE = "edge --broker {broker} --fleet f --device-id d --bundle bundle --store d.sqlite"
AGGREGATOR = "aggregator --broker {broker} --fleet f --bundle bundle --state a.sqlite"

CASES: list[tuple[str, str, int]] = [  # (subcommand, argv, exit status)
    ("iomt", "", 2),
    ("iomt", "no-such-command", 2),
    ("data", "data", 2),
    ("data prepare", "data prepare mnist --out x.npz", 2),
    ("data prepare", "data prepare uci-har missing-folder --out x.npz", 2),
    ("train", "train --data missing.npz --arch lstm-fcn --out runs/x", 2),
    ("train", "train --data notes.txt --arch lstm-fcn --out runs/x", 2),
    ("train", "train --data data.npz --arch lstm-fcn --out runs/x --epochs 0", 2),
    ("evaluate", "evaluate runs/missing --data data.npz", 2),
    ("convert", "convert runs/missing --out bundles/x", 2),
    ("convert", "convert empty-run --out bundles/x", 2),
    ("convert", "convert empty-run --out notes.txt", 2),
    ("verify", "verify tampered", 1),  # the verdict: refused
    ("keys", "keys --out notes.txt", 2),
    ("keys", "keys --out keys", 2),  # already holds a key
    ("broker", "broker --port 70000", 2),
    ("broker", "broker --tls certs", 2),  # --tls needs --fleet
    ("aggregator", "aggregator", 2),
    ("aggregator", AGGREGATOR.format(broker="bad://x"), 2),
    ("aggregator", AGGREGATOR.format(broker=UNREACHABLE) + " --deadline inf", 2),
    ("aggregator", AGGREGATOR.format(broker=UNREACHABLE), 1),
    ("aggregator status", "aggregator status --state missing.sqlite", 2),
    ("aggregator export", "aggregator export --state missing.sqlite --bundle bundle --out o", 2),
    ("aggregator rollback", "aggregator rollback 3 --state missing.sqlite", 2),
    ("aggregator rollback", "aggregator rollback three --state missing.sqlite", 2),
    ("aggregator promote", "aggregator promote 3 --state missing.sqlite", 2),
    ("edge", "edge", 2),
    ("edge", EDGE.format(broker="bad://x"), 2),
    (
        "edge",
        EDGE.format(broker=UNREACHABLE).replace("bundle", "tampered") + " --replay data.npz",
        2,
    ),
    ("edge", EDGE.format(broker=UNREACHABLE) + " --replay data.npz --subject 99", 2),
    ("edge", EDGE.format(broker=UNREACHABLE) + " --replay notes.txt", 2),
    ("edge status", "edge status --store missing.sqlite", 2),
    ("edge label", "edge label --store missing.sqlite --from 2 --to 1 --label 0", 2),
    ("edge keygen", "edge keygen", 2),
    ("fleet", "fleet", 2),
    ("fleet add", "fleet add d1 --registry r.json --public-key zz", 2),
    ("fleet revoke", "fleet revoke d1 --registry missing.json", 2),
    ("fleet list", "fleet list --registry missing.json", 2),
    ("fleet status", "fleet status --state missing.sqlite", 2),
    ("bridge", "bridge", 2),
    ("bridge info", "bridge info --port /dev/no-such-tty", 1),  # no device answers
    ("bridge stream", "bridge stream --port /dev/no-such-tty --seconds 1", 1),
    ("bridge infer", "bridge infer --port loop:// --data missing.npz", 2),
    ("bridge upload", "bridge upload missing --port loop://", 2),
    ("bridge emulate", "bridge emulate --board uno", 2),
    ("bridge emulate", "bridge emulate --bundle missing", 2),
    ("simulate", "simulate --devices 0", 2),
    ("simulate", "simulate --task nosuch", 2),
    ("certs", "certs", 2),
    ("certs init", "certs init --out notes.txt", 2),
    ("certs device", "certs device d1 --out missing-ca", 2),
    ("certs device", "certs device aggregator.w1 --out missing-ca", 2),
    ("certs aggregator", "certs aggregator w1 --out missing-ca", 2),
    ("certs server", "certs server --out missing-ca", 2),
    ("certs revoke", "certs revoke d1 --out missing-ca", 2),
    ("report", "report", 2),
    ("report keygen", "report keygen --out notes.txt", 2),
    ("report open", "report open missing.enc --key k --out o.html", 2),
    ("mqtt", "mqtt", 2),
    ("mqtt sub", "mqtt sub --broker bad://x", 2),
    ("mqtt sub", f"mqtt sub --broker {UNREACHABLE} --fleet f --timeout 1", 1),
    ("keys", "keys --out fresh-keys", 0),
]


def _subcommands(parser: argparse.ArgumentParser, path: str) -> list[str]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subcommands(sub, f"{path} {name}".strip())
    return found


def test_every_subcommand_has_a_bad_input_case() -> None:
    every = _subcommands(build_parser(_available_commands()), "")
    covered = {name for name, _, _ in CASES} | {""}
    assert sorted(set(every) - covered - {"iomt"}) == []


def _bundle(root: Path) -> Path:
    """A signed bundle with a real head (its backbone bytes are never run here)."""
    import hashlib

    import numpy as np

    from bundle_format.signing import generate_private_key
    from bundle_format.writer import write_bundle
    from edge_runtime.head import Head

    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype(np.float32) for s in ((4, 6), (6,), (6, 1), (1,))]
    files = {
        "backbone.int8.tflite": b"not run",
        "head.npz": Head.from_weights(weights, ("relu", "softmax")).to_npz_bytes(),
    }
    manifest = {"schema_version": 1, "labels": ["a"], "channels": ["x", "y", "z"],
                "sample_rate_hz": 10.0, "window_length": 16, "models": {}, "model_version": "t",
                "normalisation": {"mean": [0.0] * 3, "std": [1.0] * 3},
                "files": {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                          for n, d in files.items()}}  # fmt: skip
    return write_bundle(root, files, manifest, generate_private_key())


def _workdir(root: Path) -> Path:
    """Inputs the cases name: a text file, an empty run, a bundle, a tampered one, a key."""
    import numpy as np

    root.mkdir()
    (root / "notes.txt").write_text("not a dataset\n")
    (root / "empty-run").mkdir()
    _bundle(root / "bundle")
    tampered = _bundle(root / "tampered")
    (tampered / "head.npz").write_bytes(b"changed")
    (root / "keys").mkdir()
    (root / "keys" / "bundle_signing.key").write_text("taken")
    windows = {"X": np.zeros((4, 16, 3), np.float32), "y": np.zeros(4, np.int64),
               "subject": np.zeros(4, np.int64), "labels": np.asarray(["a"]),
               "channels": np.asarray(["x", "y", "z"]),
               "sample_rate_hz": np.asarray(10.0)}  # fmt: skip
    np.savez(root / "data.npz", **windows)
    return root


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in root.rglob("*")}  # fmt: skip


@pytest.mark.parametrize(("name", "argv", "status"), CASES, ids=[c[1][:60] for c in CASES])
def test_exit_status(
    name: str, argv: str, status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    root = _workdir(tmp_path / "work")
    monkeypatch.chdir(root)
    before = _snapshot(root)
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(stdout=stdout, stderr=stderr, config_dir=tmp_path / "config",
                      interactive=False)  # fmt: skip
    # Execute
    try:
        code = main(argv.split(), env)
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    # Assert
    assert code == status, stderr.getvalue()
    if status == 0:
        return
    errors = [line for line in stderr.getvalue().splitlines() if "error" in line]
    assert len(errors) <= 1  # argparse prints usage, then one error line; we print one line
    assert _snapshot(root) == before, "a refused or failed command wrote or changed files"
    assert not (tmp_path / "config").exists()


def _iomt(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "iomt.cli", *argv], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.integration
def test_sigterm_stops_broker_and_aggregator_with_status_0(mosquitto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Prepare
    root = _workdir(tmp_path / "work")
    broker = _iomt("broker", "--port", "0", cwd=root)
    assert broker.stdout is not None and broker.stdout.readline().startswith("mqtt://")
    aggregator = _iomt(*AGGREGATOR.format(broker=mosquitto.url).split(), cwd=root)
    assert aggregator.stderr is not None
    while "round 1" not in (line := aggregator.stderr.readline()):  # it serves round 1
        assert line, "the aggregator ended before opening round 1"
    # Execute
    broker.terminate()
    aggregator.terminate()
    # Assert
    assert broker.wait(timeout=60) == 0 and aggregator.wait(timeout=60) == 0
    assert "Traceback" not in aggregator.stderr.read() + (
        broker.stderr.read() if broker.stderr else ""
    )
