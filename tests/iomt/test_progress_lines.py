"""Off a terminal, progress is one plain line per step, never a step line plus a status line."""

from __future__ import annotations

import io

from iomt.environment import Environment
from iomt.progress import PhaseProgress


def test_one_line_per_step_without_a_tty() -> None:
    err = io.StringIO()
    with PhaseProgress(Environment(stderr=err, interactive=False)) as progress:
        progress.show("convert", 1, 2, "int8 model")
        progress.update("train", 2, 2, {"loss": 0.25})
    assert err.getvalue().splitlines() == ["convert 1/2  int8 model", "train 2/2  loss 0.250"]
