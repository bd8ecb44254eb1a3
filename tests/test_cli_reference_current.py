"""docs/configuration.md is generated from the argument parsers and must match them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_configuration_reference_matches_the_parsers() -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "docs" / "generate_cli_reference.py"), "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
