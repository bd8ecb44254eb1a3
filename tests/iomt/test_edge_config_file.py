"""`iomt edge --config device.toml`: options from a file, flags win, bad files are one line.

The replay's subject check runs before the bundle is read or a broker is reached, so which
subject the command ended up with shows in its error without any network or model.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from iomt.cli import main
from iomt.environment import Environment


@pytest.fixture
def device_toml(tmp_path: Path) -> Path:
    data = tmp_path / "data.npz"
    np.savez(data, X=np.zeros((4, 8, 3), np.float32), y=np.zeros(4, np.int64),
             subject=np.array([1, 1, 2, 2]))  # fmt: skip
    config = tmp_path / "device.toml"
    config.write_text(
        f'broker = "mqtt://127.0.0.1:9"\nfleet = "ward7"\ndevice-id = "dev7"\n'
        f'bundle = "{tmp_path / "bundle"}"\nstore = "{tmp_path / "dev7.sqlite"}"\n'
        f'replay = "{data}"\nsubject = 0\nspeed = 0\njson = true\n'
    )
    return config


def _edge(*argv: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    code = main(["edge", *argv], Environment(stdout=io.StringIO(), stderr=err))
    return code, err.getvalue().strip().splitlines()


def test_options_come_from_the_file(device_toml: Path) -> None:
    code, lines = _edge("--config", str(device_toml))
    assert code == 2 and len(lines) == 1 and "--subject 0: no windows" in lines[0]
    assert "(subjects 1-2)" in lines[0]


def test_a_flag_wins_over_the_file(device_toml: Path) -> None:
    code, lines = _edge("--config", str(device_toml), "--subject", "5")
    assert code == 2 and "--subject 5: no windows" in lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [('colour = "red"\n', "unknown option(s) colour"), ('seed = "x"\n', "invalid int value")],
)
def test_a_bad_file_is_one_line(device_toml: Path, extra: str, message: str) -> None:
    device_toml.write_text(device_toml.read_text().replace("subject = 0\n", extra))
    code, lines = _edge("--config", str(device_toml))
    assert code == 2 and len(lines) == 1 and message in lines[0]
    assert not (device_toml.parent / "dev7.sqlite").exists()


def test_a_file_that_is_not_toml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("broker = \n")
    code, lines = _edge("--config", str(tmp_path / "bad.toml"))
    assert code == 2 and len(lines) == 1 and "not TOML" in lines[0]
