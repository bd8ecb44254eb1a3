"""WISDM v1.1 raw text loader: the real file's quirks tolerated, real errors located."""

from __future__ import annotations

import numpy as np
import pytest

from training.datasets import wisdm
from training.datasets.errors import DatasetFormatError


def _line(user: int, activity: str, i: int) -> str:
    return f"{user},{activity},{49105962326000 + i * 50_000_000},{0.1 * i:.4f},9.8,-0.5;"


@pytest.fixture
def wisdm_file(tmp_path):
    lines = [_line(33, "Jogging", i) for i in range(100)]
    lines += [""]  # empty lines occur in the real file
    lines += [_line(33, "Walking", i) + "\t" for i in range(90)]
    lines += [_line(7, "Sitting", i) for i in range(85)]
    lines[5] = lines[5][:-1] + ",;"  # a trailing comma
    path = tmp_path / wisdm.FILE_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wisdm_fixture_windows_per_user_and_activity(wisdm_file):
    ds = wisdm.prepare(str(wisdm_file.parent))
    assert ds.X.shape[1:] == (80, 3) and ds.sample_rate_hz == 20.0
    # 100 samples -> 1 window, 90 -> 1, 85 -> 1 (80-sample windows, stride 40)
    assert ds.num_windows == 3
    assert [ds.labels[y] for y in ds.y] == ["jogging", "walking", "sitting"]
    assert ds.subject.tolist() == [33, 33, 7]
    np.testing.assert_allclose(ds.X[0, :, 1], 9.8 / wisdm.STANDARD_GRAVITY, rtol=1e-6)


def test_malformed_line_names_file_and_line(wisdm_file):
    lines = wisdm_file.read_text().splitlines()
    lines[41] = "33,Jogging,49106062326000,0.1;"
    wisdm_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"WISDM_ar_v1\.1_raw\.txt:42: expected") as info:
        wisdm.prepare(str(wisdm_file))
    assert "\n" not in str(info.value)
    assert wisdm.prepare(str(wisdm_file), skip_malformed=True).num_windows == 3


def test_unknown_activity_and_bad_number_are_located(wisdm_file):
    lines = wisdm_file.read_text().splitlines()
    lines[2] = "33,Dancing,1,0,0,0;"
    wisdm_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r":3: unknown activity 'Dancing'"):
        wisdm.prepare(str(wisdm_file))
    lines[2] = "33,Jogging,1,0,zero,0;"
    wisdm_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r":3: could not convert"):
        wisdm.prepare(str(wisdm_file))


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(DatasetFormatError, match="file not found"):
        wisdm.prepare(str(tmp_path))
