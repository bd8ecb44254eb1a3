"""Head install / rollback: atomic pointer switch, previous kept, survives a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import model_install
from edge_runtime.errors import InstallError
from edge_runtime.model_install import current_head, install_head, previous_version, rollback


def _weights(value: float) -> list[np.ndarray]:
    return [
        np.full((3, 2), value, np.float32),
        np.zeros(2, np.float32),
        np.full((2, 2), value, np.float32),
        np.zeros(2, np.float32),
    ]


def test_nothing_installed_is_none(tmp_path: Path) -> None:
    assert current_head(tmp_path) is None


def test_install_then_current_and_previous(tmp_path: Path) -> None:
    # Execute
    install_head(tmp_path, 1, _weights(1.0))
    installed = install_head(tmp_path, "2", _weights(2.0))
    # Assert
    current = current_head(tmp_path)
    assert current is not None and current.version == "2" == installed.version
    assert current.head.activations == ("relu", "softmax")
    np.testing.assert_array_equal(current.weights[0], _weights(2.0)[0])
    assert previous_version(tmp_path) == "1"


def test_only_current_and_previous_files_are_kept(tmp_path: Path) -> None:
    for version in range(1, 6):
        install_head(tmp_path, version, _weights(version))
    names = sorted(p.name for p in (tmp_path / "heads").iterdir())
    assert names == ["head-4.npz", "head-5.npz"]


def test_rollback_restores_previous_once(tmp_path: Path) -> None:
    install_head(tmp_path, 1, _weights(1.0))
    install_head(tmp_path, 2, _weights(2.0))
    restored = rollback(tmp_path)
    assert restored.version == "1"
    current = current_head(tmp_path)
    assert current is not None and current.version == "1"
    np.testing.assert_array_equal(current.weights[0], _weights(1.0)[0])
    with pytest.raises(InstallError, match="no previous"):
        rollback(tmp_path)


def test_reinstalling_current_version_keeps_previous(tmp_path: Path) -> None:
    install_head(tmp_path, 1, _weights(1.0))
    install_head(tmp_path, 2, _weights(2.0))
    install_head(tmp_path, 2, _weights(2.0))
    assert previous_version(tmp_path) == "1"


def test_bad_versions_and_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="version"):
        install_head(tmp_path, "../evil", _weights(1.0))
    with pytest.raises(InstallError, match="refusing"):
        install_head(tmp_path, 1, _weights(1.0)[:3])


def test_failed_pointer_write_leaves_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the crash happens when the pointer is renamed into place
    install_head(tmp_path, 1, _weights(1.0))
    real_replace = os.replace

    def crash_on_pointer(source: str, target: str) -> None:
        if str(target).endswith(model_install.POINTER_NAME):
            raise OSError(5, "simulated power loss")
        real_replace(source, target)

    monkeypatch.setattr(model_install.os, "replace", crash_on_pointer)
    # Execute
    with pytest.raises(InstallError):
        install_head(tmp_path, 2, _weights(2.0))
    monkeypatch.setattr(model_install.os, "replace", real_replace)
    # Assert: still version 1, and the next install cleans up and works
    current = current_head(tmp_path)
    assert current is not None and current.version == "1"
    install_head(tmp_path, 3, _weights(3.0))
    assert not list(tmp_path.rglob("*.tmp"))
    assert previous_version(tmp_path) == "1"


def test_damaged_pointer_is_an_error_but_a_new_install_recovers(tmp_path: Path) -> None:
    # Prepare
    install_head(tmp_path, 1, _weights(1.0))
    (tmp_path / model_install.POINTER_NAME).write_text("{ not json")
    # Execute / Assert
    with pytest.raises(InstallError, match="unreadable"):
        current_head(tmp_path)
    install_head(tmp_path, 2, _weights(2.0))
    current = current_head(tmp_path)
    assert current is not None and current.version == "2"
    assert previous_version(tmp_path) is None


_INSTALL_LOOP = textwrap.dedent(
    """
    import sys
    import numpy as np
    from edge_runtime.model_install import install_head
    directory = sys.argv[1]
    version = 0
    while True:
        version += 1
        value = float(version)
        weights = [np.full((16, 8), value, np.float32), np.full(8, value, np.float32),
                   np.full((8, 4), value, np.float32), np.full(4, value, np.float32)]
        install_head(directory, version, weights)
        print(version, flush=True)
    """
)


def test_kill_during_install_loop_leaves_a_complete_head(tmp_path: Path) -> None:
    # Prepare: a real process installing versions as fast as it can
    process = subprocess.Popen(
        [sys.executable, "-c", _INSTALL_LOOP, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    # Execute: let it finish 20 installs, then kill -9 mid-flight
    for _ in range(20):
        assert process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # Assert: the pointer names a complete head whose values match its version
    current = current_head(tmp_path)
    assert current is not None and int(current.version) >= 20
    for array in current.weights:
        assert np.all(array == float(current.version))
    install_head(tmp_path, "after-crash", current.weights)
    assert current_head(tmp_path).version == "after-crash"  # type: ignore[union-attr]
