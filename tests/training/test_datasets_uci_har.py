"""UCI HAR loader on a tiny fixture written in the dataset's exact folder layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.datasets import uci_har
from training.datasets.errors import DatasetFormatError

ALL_SIGNALS = [
    f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"
]


def _write_split(root: Path, split: str, labels: list[int], subjects: list[int], rng) -> None:
    signals = root / split / "Inertial Signals"
    signals.mkdir(parents=True)
    for name in ALL_SIGNALS:
        rows = rng.normal(size=(len(labels), 128))
        # the real files right-align numbers in scientific notation with double spaces
        text = "\n".join("  " + "  ".join(f"{v:.7e}" for v in row) for row in rows) + "\n"
        (signals / f"{name}_{split}.txt").write_text(text)
    (root / split / f"y_{split}.txt").write_text("".join(f"{y}\n" for y in labels))
    (root / split / f"subject_{split}.txt").write_text("".join(f"{s}\n" for s in subjects))
    (root / split / f"X_{split}.txt").write_text("")  # the 561 features: unused by us


@pytest.fixture
def uci_root(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "UCI HAR Dataset"
    root.mkdir()
    names = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
    (root / "activity_labels.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names, 1)))
    _write_split(root, "train", [1, 2, 5, 6], [1, 1, 3, 3], rng)
    _write_split(root, "test", [3, 4], [2, 2], rng)
    return root


def test_uci_har_fixture_loads_both_splits(uci_root):
    ds = uci_har.prepare(str(uci_root.parent))  # the folder it was unzipped into works too
    assert ds.X.shape == (6, 128, 6)
    assert ds.y.tolist() == [0, 1, 4, 5, 2, 3]
    assert ds.subject.tolist() == [1, 1, 3, 3, 2, 2]
    assert ds.labels[0] == "walking" and ds.labels[5] == "laying"
    assert ds.channels == ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
    raw = np.loadtxt(uci_root / "train" / "Inertial Signals" / "body_gyro_y_train.txt")
    np.testing.assert_allclose(ds.X[:4, :, 4], raw, rtol=1e-6)


def test_truncated_signal_row_names_file_and_line(uci_root):
    path = uci_root / "test" / "Inertial Signals" / "total_acc_y_test.txt"
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + "  ".join(lines[1].split()[:57]) + "\n")  # cut short
    with pytest.raises(DatasetFormatError, match=r"total_acc_y_test\.txt:2: expected 128 values"):
        uci_har.prepare(str(uci_root))


def test_missing_rows_name_the_short_file(uci_root):
    (uci_root / "train" / "y_train.txt").write_text("1\n2\n5\n")
    with pytest.raises(DatasetFormatError, match=r"y_train\.txt: 3 rows, but .* has 4"):
        uci_har.prepare(str(uci_root))


def test_not_a_number_names_the_line(uci_root):
    (uci_root / "test" / "subject_test.txt").write_text("2\nabc\n")
    with pytest.raises(DatasetFormatError, match=r"subject_test\.txt:2: not a number"):
        uci_har.prepare(str(uci_root))


def test_wrong_folder_is_clear(tmp_path):
    with pytest.raises(DatasetFormatError, match="not a UCI HAR Dataset folder"):
        uci_har.prepare(str(tmp_path))
