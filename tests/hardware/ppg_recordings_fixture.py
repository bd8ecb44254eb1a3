"""The HeartPy wheel's real PPG recordings for the tests (a dev-extra dependency)."""

from __future__ import annotations

import pytest

from bench.ppg_recordings import RECORDINGS, PpgRecording, heartpy_file, load_recording


def real_recordings() -> list[PpgRecording]:
    """All three recordings; the tests skip with the install command if heartpy is missing."""
    try:
        heartpy_file(RECORDINGS[0].name)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return [load_recording(spec) for spec in RECORDINGS]
