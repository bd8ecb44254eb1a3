"""Pure parts of convert: C array, manifest, parity scoring, stride, bundle writing and keys."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from bundle_format.errors import BundleError, BundleWriteError
from bundle_format.manifest import build_manifest, file_entries, gzip_size, model_version
from bundle_format.reader import MANIFEST_FILE, load_bundle
from bundle_format.signing import generate_private_key
from bundle_format.writer import write_bundle
from convert.c_array_export import export_c_array, parse_c_array
from convert.model_facts import infer_stride
from convert.parity import parity_report, sample_indices
from convert.signing_keys import keep_signing_key, resolve_signing_key
from iomt.cli import main
from iomt.environment import Environment


def test_export_c_array_round_trips_and_is_aligned() -> None:
    # Prepare
    data = bytes(range(256)) * 3 + b"\x01"
    # Execute
    header, source = export_c_array(data, "g_model")
    # Assert
    assert parse_c_array(source, "g_model") == data
    assert "alignas(16) const unsigned char g_model[]" in source
    assert f"g_model_len = {len(data)};" in source
    assert "extern const unsigned int g_model_len;" in header


def test_export_c_array_rejects_bad_identifier() -> None:
    with pytest.raises(ValueError, match="identifier"):
        export_c_array(b"x", "1model")


def test_parity_report_scores_and_failures() -> None:
    # Prepare: float predicts [0, 1, 2, 2]; tflm flips one window
    labels = np.array([0, 1, 2, 1])
    float_scores = np.eye(3)[[0, 1, 2, 2]]
    outputs = {
        "int8_litert": np.eye(3)[[0, 1, 2, 2]],
        "tflm": np.eye(3)[[0, 1, 2, 0]],
        "backbone_head": np.eye(3)[[0, 1, 2, 2]],
    }
    # Execute
    report = parity_report(labels, float_scores, outputs, step=1 / 256, total_windows=10)
    # Assert
    assert report.scores["float"].accuracy == 0.75
    assert report.scores["tflm"].agreement == 0.75
    assert report.tflm_max_step_difference == 256
    assert report.failures(0.98) == ["tflm agreement 0.7500 < 0.98"]
    document = report.to_dict()
    assert {"float", "int8_litert", "tflm", "backbone_head"} <= set(document)
    assert document["total_windows"] == 10 and document["windows"] == 4


def test_sample_indices_is_deterministic_and_capped() -> None:
    first, second = sample_indices(1000, 50, seed=3), sample_indices(1000, 50, seed=3)
    assert np.array_equal(first, second) and len(first) == 50
    assert np.all(np.diff(first) > 0)
    assert np.array_equal(sample_indices(10, 0), np.arange(10))


def test_infer_stride_from_start_times() -> None:
    start_s = np.array([0.0, 0.5, 1.0, 0.0, 0.5])
    recording = np.array([1, 1, 1, 2, 2])
    assert infer_stride(start_s, recording, 50.0, 50) == 25
    assert infer_stride(None, None, 50.0, 50) == 25


def test_model_version_changes_with_model() -> None:
    assert model_version("watch", b"a") != model_version("watch", b"b")
    assert model_version("watch", b"a").startswith("watch-")


def _tiny_manifest(files: dict[str, bytes]) -> dict:
    manifest = {
        "schema_version": 1,
        "labels": ["a"],
        "channels": ["x"],
        "sample_rate_hz": 1.0,
        "window_length": 2,
        "normalisation": {"mean": [0.0], "std": [1.0]},
        "models": {},
        "model_version": "m-1",
        "files": file_entries(files),
        "sizes": {name: len(data) for name, data in files.items()},
    }
    return manifest


def test_write_bundle_then_load_bundle_verifies(tmp_path: Path) -> None:
    # Prepare
    key = generate_private_key()
    files = {"model.int8.tflite": b"\x00" * 64, "head.npz": b"head"}
    # Execute
    out = write_bundle(tmp_path / "b", files, _tiny_manifest(files), key)
    # Assert
    bundle = load_bundle(out)
    assert bundle.model_version == "m-1"
    assert (out / "model.int8.tflite").read_bytes() == files["model.int8.tflite"]


def test_write_bundle_replaces_a_bundle_but_not_other_directories(tmp_path: Path) -> None:
    key = generate_private_key()
    files = {"model.int8.tflite": b"one"}
    write_bundle(tmp_path / "b", files, _tiny_manifest(files), key)
    files = {"model.int8.tflite": b"two"}
    write_bundle(tmp_path / "b", files, _tiny_manifest(files), key)
    assert (tmp_path / "b" / "model.int8.tflite").read_bytes() == b"two"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(BundleWriteError, match="not a bundle"):
        write_bundle(tmp_path / "other", files, _tiny_manifest(files), key)


def test_build_manifest_records_sizes_hashes_and_gzip() -> None:
    from bundle_format.manifest import ManifestFields

    files = {"model.int8.tflite": b"\x01" * 100}
    fields = ManifestFields(
        task="t", model_version="v", created_at="2026-01-01T00:00:00+00:00", labels=["a"],
        channels=["x"], sample_rate_hz=50, window_length=4, stride=2, mean=[0.0], std=[1.0],
        architecture={}, models={}, head={}, embedding_size=8, sparsity={"target": 0.5},
        float32_tflite_bytes=400, float32_tflite_gzip_bytes=50,
    )  # fmt: skip
    manifest = build_manifest(fields, files)
    assert manifest["sizes"] == {"model.int8.tflite": 100}
    assert manifest["gzip_sizes"]["model.int8.tflite"] == gzip_size(files["model.int8.tflite"])
    assert manifest["files"]["model.int8.tflite"]["bytes"] == 100
    assert manifest["float32_tflite_bytes"] == 400
    json.dumps(manifest)  # JSON-ready


def test_resolve_signing_key_creates_default_once(tmp_path: Path) -> None:
    first = resolve_signing_key(None, tmp_path / "config")
    assert first.created and not (tmp_path / "config").exists()  # made in memory only
    keep_signing_key(first)
    second = resolve_signing_key(None, tmp_path / "config")
    assert not second.created and first.private_path == second.private_path
    assert second.key.public_key().public_bytes_raw() == first.key.public_key().public_bytes_raw()


def _run(argv: list[str], config_dir: Path) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(stdout=stdout, stderr=stderr, config_dir=config_dir, interactive=False)
    return main(argv, env), stdout.getvalue(), stderr.getvalue()


def test_keys_command_writes_pair_and_refuses_overwrite(tmp_path: Path) -> None:
    status, out, _ = _run(["keys", "--out", str(tmp_path / "k")], tmp_path)
    assert status == 0 and "bundle_signing.pub" in out
    status, _, err = _run(["keys", "--out", str(tmp_path / "k")], tmp_path)
    assert status == 2 and "already holds bundle_signing.key" in err


def test_verify_command_reports_tampering_in_one_line(tmp_path: Path) -> None:
    key = generate_private_key()
    files = {"model.int8.tflite": b"\x00" * 64}
    out = write_bundle(tmp_path / "b", files, _tiny_manifest(files), key)
    status, text, _ = _run(["verify", str(out)], tmp_path)
    assert status == 0 and "sound" in text
    (out / "model.int8.tflite").write_bytes(b"\x00" * 63 + b"\x01")
    status, text, _ = _run(["verify", str(out)], tmp_path)
    assert status == 1 and "sha256" in text and text.count("\n") == 1


def test_verify_command_refuses_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    status, text, _ = _run(["verify", str(tmp_path / "empty")], tmp_path)
    assert status == 1 and MANIFEST_FILE in text


def test_load_bundle_refuses_bundle_written_then_schema_bumped(tmp_path: Path) -> None:
    key = generate_private_key()
    files = {"model.int8.tflite": b"\x00"}
    manifest = _tiny_manifest(files) | {"schema_version": 2}
    out = write_bundle(tmp_path / "b", files, manifest, key)
    with pytest.raises(BundleError, match="unknown bundle schema_version 2"):
        load_bundle(out)


def test_converted_bundle_problems_name_board_shortfall() -> None:
    from convert.parity import ParityReport, VariantScore
    from convert.pipeline import ConvertedBundle
    from convert.tflm_checks import ArenaMeasurement
    from hardware.board_profiles import check_fit, get_board

    # Prepare: a 2 MB model cannot fit the nano's 1 MB flash
    fit = check_fit(get_board("nano33ble"), 2 * 1024 * 1024, 300 * 1024)
    scores = {name: VariantScore(0.9, 1.0) for name in ("float", "int8_litert", "tflm")}
    scores["backbone_head"] = VariantScore(0.9, 0.5)
    parity = ParityReport(scores, 10, 10, 0.5, 0, 1.0)
    converted = ConvertedBundle({}, {}, parity, ArenaMeasurement(1, 1, 1024), fit)
    # Execute
    problems = converted.problems(0.98)
    # Assert
    assert problems[0] == "backbone_head agreement 0.5000 < 0.98"
    assert "does not fit nano33ble" in problems[1] and "flash short by" in problems[1]


def test_verify_command_refuses_untrusted_signer(tmp_path: Path) -> None:
    from bundle_format.signing import write_key_pair

    files = {"model.int8.tflite": b"\x00"}
    out = write_bundle(tmp_path / "b", files, _tiny_manifest(files), generate_private_key())
    other = write_key_pair(tmp_path / "other")
    status, text, _ = _run(["verify", str(out), "--trusted-key", str(other.public_path)], tmp_path)
    assert status == 1 and "untrusted key" in text
