"""Native writes to fd 2 inside `quiet_native_stderr`: known noise dropped, the rest kept."""

from __future__ import annotations

import os

import pytest

from edge_runtime.native_output import quiet_native_stderr


def test_known_noise_is_dropped_and_everything_else_reaches_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with quiet_native_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"ERROR: real trouble in the kernel\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "ERROR: real trouble in the kernel\nafter\n"


def test_output_is_replayed_when_the_block_raises(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError), quiet_native_stderr():
        os.write(2, b"why it failed\n")
        raise ValueError("model")
    assert capfd.readouterr().err == "why it failed\n"
