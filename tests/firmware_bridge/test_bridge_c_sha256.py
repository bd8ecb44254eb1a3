"""The firmware's SHA-256 (core/iomt_sha256.c, built with the host gcc) agrees with hashlib."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.firmware_build import firmware_dir

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


@pytest.fixture(scope="module")
def sha_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    firmware = firmware_dir()
    out = tmp_path_factory.mktemp("sha") / "sha256_tool"
    command = [
        "gcc",
        "-std=c99",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-I",
        str(firmware / "core"),
    ]
    command += [str(firmware / "tools" / "sha256_tool.c"), str(firmware / "core" / "iomt_sha256.c")]
    subprocess.run([*command, "-o", str(out)], check=True, capture_output=True, text=True)
    return out


def test_digests_match_hashlib_across_block_boundaries(sha_tool: Path) -> None:
    # Prepare: every length up to 300 B (all padding cases), then large messages
    rng = np.random.default_rng(0)
    lengths = [*range(301), 4096, 65_537, 1_000_003]
    messages = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    # Execute
    lines = "\n".join(m.hex() or "-" for m in messages) + "\n"
    result = subprocess.run(
        [str(sha_tool)], input=lines, capture_output=True, text=True, check=True
    )
    # Assert
    assert result.stdout.split() == [hashlib.sha256(m).hexdigest() for m in messages]
