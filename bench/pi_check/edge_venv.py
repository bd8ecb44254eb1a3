"""The project's wheel, and a venv holding only `pip install "<wheel>[edge]"`, as a user has it.

The wheel is built from a copy of the sources (so concurrent builds never share a `build/`
directory) and named by the hash of its contents, not of its zip bytes: rebuilding unchanged
sources gives the same hash, so the venv made for it is reused from the user's cache directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tomllib

from bench.pi_check.rootfs import cache_root

REPO = Path(__file__).resolve().parents[2]
SOURCE_FILES = ("pyproject.toml", "README.md")
EDGE_VENV_MARKER = ".iomt-edge-venv-complete"
KEEP_VENVS = 3  # older cached venvs (for older wheels) are removed


@dataclass(frozen=True)
class Wheel:
    """A built wheel and the hash of what it contains."""

    path: Path
    content_sha256: str


def wheel_content_sha256(path: Path) -> str:
    """sha256 over the member names and bytes, in name order (zip timestamps ignored)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0")
            digest.update(archive.read(name))
    return digest.hexdigest()


def _source_packages(repo: Path) -> list[str]:
    """The top-level packages pyproject.toml ships (`packages.find` include patterns)."""
    with (repo / "pyproject.toml").open("rb") as stream:
        patterns = tomllib.load(stream)["tool"]["setuptools"]["packages"]["find"]["include"]
    names = {pattern.rstrip("*") for pattern in patterns}
    return sorted(name for name in names if (repo / name / "__init__.py").exists())


def _copy_sources(repo: Path, into: Path) -> None:
    for name in SOURCE_FILES:
        shutil.copy2(repo / name, into / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    for package in _source_packages(repo):
        shutil.copytree(repo / package, into / package, ignore=ignore)


def build_wheel(out_dir: Path, repo: Path = REPO) -> Wheel:
    """`pip wheel --no-deps` of a copy of the repository's sources into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iomt-wheel-src-") as source:
        _copy_sources(repo, Path(source))
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                   "--no-build-isolation", "--wheel-dir", str(out_dir), source]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"building the wheel failed: {completed.stderr.strip()[-2000:]}")
    (path,) = sorted(out_dir.glob("iomt_edge_fl-*.whl"))
    return Wheel(path, wheel_content_sha256(path))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock next to `path` (two test runs or a test and pi-check at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def edge_venv(wheel: Wheel, cache: Path | None = None) -> Path:
    """A venv with only the wheel and its `edge` extra, cached per wheel content hash."""
    root = (cache or cache_root()) / "edge-venv"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = root / f"{tag}-{wheel.content_sha256[:16]}"
    with _locked(venv):
        if not (venv / EDGE_VENV_MARKER).exists():
            shutil.rmtree(venv, ignore_errors=True)
            _create_edge_venv(venv, wheel.path)
            (venv / EDGE_VENV_MARKER).write_text(wheel.content_sha256 + "\n")
    _prune(root, keep=venv)
    return venv


def _create_edge_venv(venv: Path, wheel: Path) -> None:
    python = shutil.which("python3") or sys.executable
    base = getattr(sys, "_base_executable", python)  # not the dev venv's interpreter
    subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[edge]"]
    # not from a checkout: `python -m pip` there sees its *.egg-info and skips the project
    completed = subprocess.run(install, capture_output=True, text=True, check=False, cwd=venv)
    if completed.returncode != 0 or not (venv / "bin" / "iomt").exists():
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"pip install {wheel.name}[edge] failed: {completed.stderr[-2000:]}")


def _prune(root: Path, keep: Path) -> None:
    """Remove all but the newest `KEEP_VENVS` complete venvs (never `keep`)."""
    venvs = [p for p in root.iterdir() if (p / EDGE_VENV_MARKER).exists() and p != keep]
    venvs.sort(key=lambda p: (p / EDGE_VENV_MARKER).stat().st_mtime, reverse=True)
    for old in venvs[KEEP_VENVS - 1 :]:
        with _locked(old):
            shutil.rmtree(old, ignore_errors=True)
