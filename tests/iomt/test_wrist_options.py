"""The wrist options' argument errors: one line and a non-zero exit, before anything starts."""

from __future__ import annotations

import io
from pathlib import Path

from iomt.cli import main
from iomt.environment import Environment


def _run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Environment(stdout=out, stderr=err, interactive=False))
    return code, err.getvalue()


def test_edge_wrist_only_with_a_serial_sensor(tmp_path: Path) -> None:
    code, err = _run("edge", "--broker", "mqtt://127.0.0.1:1", "--fleet", "f", "--device-id",
                     "d", "--bundle", str(tmp_path), "--store", str(tmp_path / "s.sqlite"),
                     "--replay", str(tmp_path / "d.npz"), "--wrist", "right")  # fmt: skip
    assert code != 0
    assert err.strip().splitlines() == [
        "iomt edge: error: --wrist applies to a --serial sensor; datasets are already in one frame"
    ]


def test_train_mirror_probability_must_be_a_probability(tmp_path: Path) -> None:
    code, err = _run("train", "--data", str(tmp_path / "d.npz"), "--arch", "lstm-fcn",
                     "--out", str(tmp_path / "run"), "--mirror", "1.5")  # fmt: skip
    assert code != 0
    assert "--mirror must be in [0, 1], got 1.5" in err and len(err.strip().splitlines()) == 1
