"""Fetching the pinned reference kernels: one clear line when the archive cannot be reached."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware_bridge.firmware_build import firmware_dir

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("tar") is None, reason="curl or tar missing"
)
CLOSED_ARCHIVE = "http://127.0.0.1:9/debian"  # nothing listens on the discard port


def _fetch(dest: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    script = firmware_dir() / "model" / "fetch_reference_kernels.sh"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "IOMT_DEBIAN_ARCHIVE": CLOSED_ARCHIVE}
    return subprocess.run(["sh", str(script), str(dest)], capture_output=True, text=True, env=env)


def test_unreachable_archive_fails_with_one_line_naming_the_download(tmp_path: Path) -> None:
    # Execute: an empty cache and an archive on a closed loopback port
    result = _fetch(tmp_path / "kernels", tmp_path / "cache")

    # Assert
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fetch_reference_kernels: cannot download")
    assert "tensorflow_2.14.1%2Bdfsg.orig.tar.xz" in lines[0]
    assert not (tmp_path / "kernels").exists()


def test_a_cached_tarball_that_fails_its_sha256_is_not_used(tmp_path: Path) -> None:
    # Prepare: a tampered tarball where the cache keeps the real one
    cache = tmp_path / "cache" / "iomt-edge-fl" / "tflite-reference"
    cache.mkdir(parents=True)
    (cache / "tensorflow_2.14.1+dfsg.orig.tar.xz").write_bytes(b"not the pinned tarball")

    # Execute
    result = _fetch(tmp_path / "kernels", tmp_path / "cache")

    # Assert: it tries to download again instead of extracting the tampered file
    assert result.returncode == 1
    assert "cannot download" in result.stderr
