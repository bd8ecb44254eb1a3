"""Every test runs with its own config and cache directories (keys, cached bundles).

Set in the environment, so the `iomt` processes a test starts inherit them too: no test reads
or writes the user's `~/.config/iomt` or `~/.cache/iomt`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_user_directories(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("IOMT_CONFIG_DIR", str(Path(home) / "config"))
    monkeypatch.setenv("IOMT_CACHE_DIR", str(Path(home) / "cache"))
