"""TensorFlow's start-up chatter is filtered, in a real process writing to a real fd 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.tf

START = "import tensorflow as tf; tf.config.list_physical_devices('GPU')"


def _stderr_of(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    return done.stderr


def test_tensorflow_start_is_noisy_without_the_filter() -> None:
    assert _stderr_of(START).strip() != ""  # what `iomt train` used to show first


def test_start_tensorflow_quietly_leaves_stderr_to_the_command() -> None:
    code = ("import sys; from iomt.tensorflow_start import start_tensorflow_quietly;"
            " start_tensorflow_quietly(); import tensorflow as tf; tf.constant(1.0) + 1;"
            " print('the command speaks', file=sys.stderr)")  # fmt: skip
    assert _stderr_of(code) == "the command speaks\n"
