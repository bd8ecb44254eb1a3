"""`iomt simulate --mcu-devices` refuses fleets it cannot run, before anything starts."""

from __future__ import annotations

import io

import pytest

from iomt.cli import main
from iomt.environment import Environment


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--devices", "2", "--mcu-devices", "3"], "--mcu-devices must be between 0 and --devices"),
        (["--devices", "4", "--mcu-devices", "2", "--secure-agg"],
         "--mcu-devices cannot run with --secure-agg (the MCU's delta is sent)"),
        (["--devices", "4", "--mcu-devices", "2", "--poison", "3"],
         "--poison and --mcu-devices devices must not overlap"),
    ],
)  # fmt: skip
def test_impossible_mixed_fleets_are_usage_errors(extra: list[str], message: str) -> None:
    # Execute
    out, err = io.StringIO(), io.StringIO()
    code = main(["simulate", "--task", "har", *extra], Environment(stdout=out, stderr=err,
                                                                   interactive=False))  # fmt: skip
    # Assert
    assert code == 2
    assert err.getvalue().strip().splitlines() == [f"iomt simulate: error: {message}"]
