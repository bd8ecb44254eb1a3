"""`iomt edge --train-on-mcu` refuses what it cannot do, before anything is opened or written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from iomt.cli import main
from iomt.environment import Environment


def _edge(tmp_path: Path, *extra: str) -> tuple[int, str]:
    argv = ["edge", "--broker", "mqtt://127.0.0.1:1", "--fleet", "f", "--device-id", "d",
            "--bundle", str(tmp_path), "--store", str(tmp_path / "s.sqlite"), *extra]  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, Environment(stdout=out, stderr=err, interactive=False))
    return code, err.getvalue()


def test_training_on_the_mcu_needs_the_serial_microcontroller(tmp_path: Path) -> None:
    # Execute
    code, err = _edge(tmp_path, "--replay", str(tmp_path / "d.npz"), "--train-on-mcu")
    # Assert
    assert code == 2
    assert err.strip().splitlines() == [
        "iomt edge: error: --train-on-mcu needs --serial PORT (the microcontroller that trains)"
    ]
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize(
    "flags, named",
    [(["--secure-agg"], "--secure-agg"), (["--dp-local-noise", "1.0"], "--dp-local-noise"),
     (["--poison", "--secure-agg"], "--secure-agg, --poison")],
)  # fmt: skip
def test_what_would_change_the_mcus_delta_is_refused(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    # Execute
    code, err = _edge(tmp_path, "--serial", "/dev/null-port", "--train-on-mcu", *flags)
    # Assert
    assert code == 2
    assert err.strip().splitlines() == [
        f"iomt edge: error: --train-on-mcu cannot be combined with {named}: the microcontroller's"
        " delta is relayed as it computed it"
    ]
    assert not (tmp_path / "s.sqlite").exists()


def test_two_sensors_are_refused_unless_the_microcontroller_only_trains(tmp_path: Path) -> None:
    # Execute
    code, err = _edge(tmp_path, "--replay", str(tmp_path / "d.npz"), "--serial", "/dev/x")
    # Assert
    assert code == 2
    assert err.strip().splitlines() == [
        "iomt edge: error: --replay and --serial are two sensors; give one (both only with "
        "--train-on-mcu, where the microcontroller only trains)"
    ]
    assert not (tmp_path / "s.sqlite").exists()
