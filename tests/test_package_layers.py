"""No package imports upward: each may import only the packages below it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ALLOWED: dict[str, set[str]] = {
    "hardware": set(),
    "bundle_format": set(),
    "fleet_protocol": set(),
    "firmware_bridge": {"hardware"},
    "edge_runtime": {"bundle_format", "fleet_protocol", "firmware_bridge", "hardware"},
    "aggregator": {"fleet_protocol", "bundle_format"},
    "training": {"hardware", "bundle_format"},
    "convert": {"training", "bundle_format", "edge_runtime", "hardware"},
}
PROJECT = {*ALLOWED, "iomt", "bench"}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & PROJECT


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_packages_below_it(package: str) -> None:
    # Execute
    offending = {
        str(path.relative_to(REPO)): sorted(imported - ALLOWED[package] - {package})
        for path in sorted((REPO / package).rglob("*.py"))
        if (imported := _imported_packages(path)) - ALLOWED[package] - {package}
    }

    # Assert
    assert offending == {}


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from convert.parity import x\n")
    assert _imported_packages(module) == {"convert"}
