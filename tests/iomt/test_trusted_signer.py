"""Bundles verified against a trusted signer before every use (edge, aggregator, bridge).

In-process commands; the bridge ones upload to an emulated MCU on a real pty. A refused command
prints one line, exits non-zero and leaves nothing behind (no state file, no store, no key).
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bundle_format.reader import BACKBONE_FILE, HEAD_FILE, MODEL_FILE
from bundle_format.signing import generate_private_key, write_key_pair
from bundle_format.writer import write_bundle
from edge_runtime.head import Head
from firmware_bridge.emulated_mcu import EmulatedMcu
from firmware_bridge.emulator_model import EmulatorModel
from firmware_bridge.emulator_service import EmulatorService
from firmware_bridge.sensor_source import ImuActivitySource
from firmware_bridge.transport import PtyEndpoint
from hardware.board_profiles import get_board
from iomt.cli import main
from iomt.environment import Environment
from iomt.trust import TRUST_FILE

sys.path.insert(0, str(Path(__file__).parents[1] / "firmware_bridge"))
from bridge_fakes import FakeRuntime

MODEL = bytes(range(256)) * 8


def _run(argv: list[str], config_dir: Path | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, interactive=False)
    if config_dir is not None:
        env.config_dir = config_dir
    return main(argv, env), out.getvalue(), err.getvalue()


def _bundle(root: Path, key: object) -> Path:
    head = Head.from_weights([np.ones((4, 3)), np.zeros(3), np.ones((3, 2)), np.zeros(2)],
                             ["relu", "softmax"])  # fmt: skip
    files = {MODEL_FILE: MODEL, BACKBONE_FILE: b"backbone", HEAD_FILE: head.to_npz_bytes()}
    quant = {"dtype": "int8", "shape": [1, 8, 2], "scale": 0.05, "zero_point": 0}
    manifest = {
        "schema_version": 1, "labels": ["a", "b"], "channels": ["x", "y"],
        "sample_rate_hz": 50.0, "window_length": 8, "embedding_size": 4,
        "normalisation": {"mean": [0.0, 0.0], "std": [1.0, 1.0]},
        "models": {"model": {"input": quant, "output": quant}}, "model_version": "t-1",
        "files": {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                  for n, d in files.items()},
    }  # fmt: skip
    return write_bundle(root, files, manifest, key)  # type: ignore[arg-type]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """(our signer's public key file, a stranger's)."""
    ours = write_key_pair(tmp_path / "ours").public_path
    theirs = write_key_pair(tmp_path / "theirs").public_path
    return ours, theirs


@pytest.fixture
def port() -> Iterator[str]:
    mcu = EmulatedMcu(get_board("esp32s3"), EmulatorModel(b"m"), ImuActivitySource(), FakeRuntime)
    endpoint = PtyEndpoint()
    with EmulatorService(mcu, endpoint):
        yield endpoint.path


def _key_of(public_path: Path) -> object:
    from bundle_format.signing import load_private_key

    return load_private_key(public_path.with_suffix(".key"))


def test_bridge_upload_refuses_a_bundle_with_one_flipped_byte(
    port: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    # Prepare
    bundle = _bundle(tmp_path / "b", _key_of(keys[0]))
    model = bundle / MODEL_FILE
    model.write_bytes(bytes([model.read_bytes()[0] ^ 1]) + model.read_bytes()[1:])

    # Execute
    code, out, err = _run(["bridge", "upload", str(bundle), "--port", port, "--json"])

    # Assert
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "altered" in err


def test_bridge_upload_and_emulate_take_only_a_trusted_signers_bundle(
    port: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    # Prepare
    ours, theirs = keys
    bundle = _bundle(tmp_path / "b", _key_of(ours))
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(MODEL)
    upload = ["bridge", "upload", "--port", port, "--json"]

    # Execute
    foreign = _run([*upload, str(bundle), "--trusted-key", str(theirs)])
    naked = _run([*upload, str(bare), "--trusted-key", str(ours)])
    emulated = _run(["bridge", "emulate", "--bundle", str(bundle), "--trusted-key", str(theirs)])
    trusted = _run([*upload, str(bundle), "--trusted-key", str(ours)])

    # Assert
    assert foreign[0] == 2 and "untrusted key" in foreign[2]
    assert naked[0] == 2 and "no signature" in naked[2]
    assert emulated[0] == 2 and "untrusted key" in emulated[2]
    assert trusted[0] == 0 and '"bytes": 2048' in trusted[1]


def test_the_trust_file_in_the_config_directory_is_used_by_default(
    port: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    ours, theirs = keys
    config = tmp_path / "config"
    config.mkdir()
    (config / TRUST_FILE).write_text(f"# fleet signer\n{theirs}\n")
    bundle = _bundle(tmp_path / "b", _key_of(ours))
    code, _, err = _run(["bridge", "upload", str(bundle), "--port", port], config)
    assert code == 2 and "untrusted key" in err


def test_edge_and_aggregator_refuse_a_foreign_signed_bundle_and_write_nothing(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    # Prepare: a copied bundle re-signed with a fresh key
    ours, _ = keys
    bundle = _bundle(tmp_path / "b", generate_private_key())
    run = tmp_path / "run"
    run.mkdir()
    common = ["--broker", "mqtt://127.0.0.1:9", "--fleet", "f", "--bundle", str(bundle),
              "--trusted-key", str(ours)]  # fmt: skip

    # Execute
    edge = _run(["edge", *common, "--device-id", "d1", "--store", str(run / "d.sqlite")])
    aggregator = _run(["aggregator", *common, "--state", str(run / "agg.sqlite")])

    # Assert
    for code, _, err in (edge, aggregator):
        assert code != 0 and "untrusted key" in err and len(err.strip().splitlines()) == 1
    assert list(run.iterdir()) == []
