"""Fetching the pinned reference kernels: one clear line when the archive cannot be reached."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from firmware_bridge.errors import BridgeError
from firmware_bridge.reference_kernels import fetch_reference_kernels

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("tar") is None, reason="curl or tar missing"
)


def test_unreachable_archive_fails_with_one_line_naming_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: an empty cache and an archive on a closed loopback port
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("IOMT_DEBIAN_ARCHIVE", "http://127.0.0.1:9/debian")

    # Execute
    with pytest.raises(BridgeError) as caught:
        fetch_reference_kernels(tmp_path / "kernels")

    # Assert
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("fetch_reference_kernels: cannot download")
    assert "tensorflow_2.14.1%2Bdfsg.orig.tar.xz" in message
    assert not (tmp_path / "kernels").exists()


def test_a_cached_tarball_that_fails_its_sha256_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a tampered tarball where the cache keeps the real one
    cache = tmp_path / "cache" / "iomt-edge-fl" / "tflite-reference"
    cache.mkdir(parents=True)
    (cache / "tensorflow_2.14.1+dfsg.orig.tar.xz").write_bytes(b"not the pinned tarball")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("IOMT_DEBIAN_ARCHIVE", "http://127.0.0.1:9/debian")

    # Execute / Assert: it tries to download again instead of extracting the tampered file
    with pytest.raises(BridgeError, match="cannot download"):
        fetch_reference_kernels(tmp_path / "kernels")
