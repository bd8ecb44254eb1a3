"""Patient report: summary from a real sample store, encrypted to a clinician, opened by them."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from bundle_format.signing import generate_private_key, public_key_bytes
from edge_runtime.model_privacy import META_KEY as MODEL_PRIVACY_KEY
from edge_runtime.model_privacy import ModelPrivacy, privacy_sentence
from edge_runtime.patient_report import (
    ReportWindow,
    find_stress_episodes,
    read_report_windows,
    render_html,
    summarize,
)
from edge_runtime.sample_store import Prediction, SampleStore
from edge_runtime.sealed_report import (
    ReportCryptoError,
    load_private_key,
    load_public_key,
    open_sealed,
    seal,
    sign_document,
    verify_document,
    write_clinician_keys,
)
from iomt.cli import main
from iomt.environment import Environment

DAY0 = 1_790_000_000.0  # a fixed UTC instant
LABELS = ["baseline", "stress", "amusement"]


def _fill_store(path: Path) -> None:
    """Two days of 60 s windows (hop 30 s): stress 10:00-10:20 each day, predicted or labelled."""
    with SampleStore(path) as store:
        store.set_meta("labels", json.dumps(LABELS))
        for day in range(2):
            for i in range(120):  # one hour from 09:30
                start = DAY0 + day * 86400 + i * 30.0
                stressed = 60 <= i < 100
                guess = Prediction(1 if stressed else 0, 0.9)
                store.add_window(start, start + 60.0, embedding=np.zeros(4, np.float32),
                                 prediction=guess)  # fmt: skip
        store.label_range(DAY0, DAY0 + 600.0, 2)  # the patient said: amusement


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Environment(stdout=out, stderr=err, interactive=False))
    return code, out.getvalue(), err.getvalue()


def test_summary_counts_minutes_per_class_and_stress_episodes(tmp_path: Path) -> None:
    _fill_store(tmp_path / "samples.sqlite")
    windows, names = read_report_windows(tmp_path / "samples.sqlite")
    summary = summarize(windows, names)
    assert names == tuple(LABELS) and summary.bucket == "day"
    assert summary.minutes_per_class["stress"] == pytest.approx(2 * 20.0, abs=0.6)
    assert sum(summary.minutes_per_class.values()) == pytest.approx(2 * 60.5, abs=0.6)
    assert summary.minutes_per_class["amusement"] > 0
    assert len(summary.stress_episodes) == 2
    assert summary.stress_episodes[0].minutes == pytest.approx(20.5, abs=0.6)
    assert summary.confirmed_windows > 0 and len(summary.minutes_per_bucket) == 2


def test_stress_windows_close_together_form_one_episode() -> None:
    windows = [ReportWindow(t, t + 60, 1, False) for t in (0, 30, 60, 1000, 1030)]
    episodes = find_stress_episodes(windows, stress_label=1, gap_s=120)
    assert [(e.start_ts, e.end_ts) for e in episodes] == [(0, 120), (1000, 1090)]


def test_html_is_self_contained_with_charts(tmp_path: Path) -> None:
    _fill_store(tmp_path / "samples.sqlite")
    summary = summarize(*read_report_windows(tmp_path / "samples.sqlite"))
    page = render_html(summary, "Report <for> patient", DAY0)
    assert page.count("<svg") == 2 and "Report &lt;for&gt; patient" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "2 episodes" in page


def test_device_signature_inside_the_sealed_report(tmp_path: Path) -> None:
    device = generate_private_key()
    signed = sign_document(b"<html>x</html>", device)
    opened = verify_document(signed, public_key_bytes(device))
    assert opened.document == b"<html>x</html>"
    forged = signed[:-1] + b"y"
    with pytest.raises(ReportCryptoError, match="does not verify"):
        verify_document(forged)


def test_sealed_report_opens_only_with_the_right_key(tmp_path: Path) -> None:
    right = write_clinician_keys(tmp_path / "right")
    wrong = write_clinician_keys(tmp_path / "wrong")
    blob = seal(b"<html>private</html>", load_public_key(right.public_path))
    assert b"private" not in blob
    assert open_sealed(blob, load_private_key(right.private_path)) == b"<html>private</html>"
    with pytest.raises(ReportCryptoError, match="not for this key"):
        open_sealed(blob, load_private_key(wrong.private_path))
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(ReportCryptoError, match="altered"):
        open_sealed(tampered, load_private_key(right.private_path))


def test_report_commands_end_to_end(tmp_path: Path) -> None:
    # Prepare
    store = tmp_path / "samples.sqlite"
    _fill_store(store)
    assert _run("report", "keygen", "--out", str(tmp_path / "doctor"))[0] == 0
    assert _run("report", "keygen", "--out", str(tmp_path / "stranger"))[0] == 0
    public = tmp_path / "doctor" / "clinician.pub"

    # Execute
    made = _run("report", "--device-store", str(store), "--recipient", str(public),
                "--out", str(tmp_path / "report.enc"))  # fmt: skip
    opened = _run("report", "open", str(tmp_path / "report.enc"),
                  "--key", str(tmp_path / "doctor" / "clinician.key"),
                  "--out", str(tmp_path / "report.html"))  # fmt: skip
    refused = _run("report", "open", str(tmp_path / "report.enc"),
                   "--key", str(tmp_path / "stranger" / "clinician.key"),
                   "--out", str(tmp_path / "nope.html"))  # fmt: skip

    # Assert
    assert made[0] == 0 and opened[0] == 0
    assert b"stress" not in (tmp_path / "report.enc").read_bytes()
    assert "Stress episodes" in (tmp_path / "report.html").read_text()
    code, _, err = refused
    assert code != 0 and len(err.strip().splitlines()) == 1 and "not for this key" in err
    assert not (tmp_path / "nope.html").exists()
    device = _run("edge", "keygen", "--store", str(store))[1].strip()
    assert f"signed by device key {device}" in opened[2]
    other = "00" * 32
    wrong_device = _run("report", "open", str(tmp_path / "report.enc"), "--key",
                        str(tmp_path / "doctor" / "clinician.key"), "--device-key", other,
                        "--out", str(tmp_path / "x.html"))  # fmt: skip
    assert wrong_device[0] != 0 and "not yours" in wrong_device[2]


def test_report_names_the_patient_and_its_charts_have_axes(tmp_path: Path) -> None:
    _fill_store(tmp_path / "samples.sqlite")
    summary = summarize(*read_report_windows(tmp_path / "samples.sqlite"), bucket="hour")
    page = render_html(summary, "Summary", DAY0, patient="dev7")
    assert "Patient / device: dev7" in page
    bars, timeline = page.split("<svg")[1:]
    assert bars.count('text-anchor="end"') == 5 and "hour (UTC)" in bars  # minute ticks
    assert "time (UTC)" in timeline and timeline.count("<text") == 6  # 5 times + axis label
    assert time.strftime("%m-%d %H:%M", time.gmtime(summary.start_ts)) in timeline


def test_a_signing_key_is_refused_as_a_report_recipient(tmp_path: Path) -> None:
    from bundle_format.signing import write_key_pair

    signing = write_key_pair(tmp_path / "signing")  # Ed25519, PEM
    (tmp_path / "raw.pub").write_bytes(b"\x01" * 32)  # raw bytes could be any kind of key
    _fill_store(tmp_path / "samples.sqlite")
    store = str(tmp_path / "samples.sqlite")
    for recipient, why in ((signing.public_path, "is not an X25519 public key"),
                           (tmp_path / "raw.pub", "is not a PEM public key")):  # fmt: skip
        argv = ["--recipient", str(recipient), "--out", str(tmp_path / "r.enc")]
        code, _, err = _run("report", "--device-store", store, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and why in err
        assert not (tmp_path / "r.enc").exists()


def test_report_prints_the_epsilon_the_installed_model_was_trained_with(tmp_path: Path) -> None:
    # Prepare: the stamp the device keeps when it installs a published head (FedClient._install)
    store = tmp_path / "samples.sqlite"
    _fill_store(store)
    with SampleStore(store) as samples:
        samples.set_meta(MODEL_PRIVACY_KEY, ModelPrivacy(7, 3.1234, 1e-5).to_json())
    assert _run("report", "keygen", "--out", str(tmp_path / "doctor"))[0] == 0

    # Execute
    made = _run(
        "report",
        "--device-store",
        str(store),
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
    without = render_html(summarize(*read_report_windows(store)), "t", DAY0,
                          privacy=privacy_sentence(None))  # fmt: skip

    # Assert
    assert made[0] == 0 and opened[0] == 0
    page = (tmp_path / "r.html").read_text()
    assert "federated version 7) was trained with (ε, δ) = (3.12, 1e-05)" in page
    assert "No federated model version is recorded" in without
