"""Debian bookworm root filesystems for the Pi's two userlands, built once and cached.

`debootstrap --foreign` unpacks the packages on the host; the second stage runs inside the
new tree under qemu-user through binfmt_misc (registered here when missing: root only). A tree
is complete once its marker exists; an interrupted build is started again from scratch, never
reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
ROOTFS_VERSION = 1  # bump when the build steps change what a cached tree holds
COMPLETE_MARKER = ".iomt-rootfs-complete"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF_DIR = Path("/usr/lib/binfmt.d")


class RootfsError(RuntimeError):
    """A root filesystem could not be built or a userland cannot run here."""


@dataclass(frozen=True)
class Arch:
    """One Pi OS userland: Debian's name for it, the kernel's, and qemu's binfmt entry."""

    debian: str  # arm64 | armhf
    machine: str  # what `platform.machine()` says inside: aarch64 | armv7l
    binfmt: str  # qemu-aarch64 | qemu-arm
    packages: tuple[str, ...]  # Debian packages the edge install uses from the system
    apt_for_pip: tuple[str, ...] = ()  # what the docs have the user apt-get for pip's builds


# 32-bit: PyPI has no armv7l wheels of numpy, msgpack, zstandard or cffi; Pi OS users take them from
# Debian (docs/edge-device.md), so the venv sees them with --system-site-packages.
ARCHES: dict[str, Arch] = {
    # systemd as on Pi OS: `systemd-analyze verify --root` checks the documented unit against it
    "arm64": Arch("arm64", "aarch64", "qemu-aarch64", ("python3", "python3-venv", "systemd")),
    "armhf": Arch(
        "armhf",
        "armv7l",
        "qemu-arm",
        # python3-ply: pycparser depends on virtual packages it provides (debootstrap does
        # not resolve virtual packages)
        (
            "python3",
            "python3-venv",
            "python3-numpy",
            "python3-cffi",
            "python3-msgpack",
            "python3-zstandard",
            "python3-ply",
        ),
        # cryptography >= 47 needs cffi >= 2: no armv7l wheel on PyPI, so pip builds it
        ("python3-dev", "libffi-dev", "gcc"),
    ),
}


def cache_root() -> Path:
    """`${XDG_CACHE_HOME:-$HOME/.cache}/iomt-edge-fl`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iomt-edge-fl"


def rootfs_key(arch: Arch) -> str:
    """Hash of everything that decides a tree's contents."""
    decided = {"v": ROOTFS_VERSION, "suite": SUITE, "arch": arch.debian, "pkgs": arch.packages}
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:12]


def rootfs_path(arch: Arch, cache: Path | None = None) -> Path:
    root = (cache or cache_root()) / "rootfs"
    return root / f"{SUITE}-{arch.debian}-{rootfs_key(arch)}"


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).exists()


def binfmt_problem() -> str | None:
    """Why emulated ARM userlands cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, binfmt_misc)"
    if not BINFMT_DIR.exists():
        return f"{BINFMT_DIR} does not exist (no binfmt_misc in this kernel)"
    if not (BINFMT_DIR / "register").exists():
        mounted = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            return f"cannot mount binfmt_misc: {mounted.stderr.strip()}"
    if not os.access(BINFMT_DIR / "register", os.W_OK):
        return f"{BINFMT_DIR}/register is not writable"
    return None


def ensure_binfmt(arch: Arch) -> None:
    """Register qemu-user-static for the arch (fix-binary flag, so it works in a chroot).

    Debian's qemu-user-static ships the registrations in /usr/lib/binfmt.d; its install
    registers them only when binfmt_misc was mounted then, so they are written here if missing.
    """
    problem = binfmt_problem()
    if problem is not None:
        raise RootfsError(problem)
    entry = BINFMT_DIR / arch.binfmt
    if not entry.exists():
        conf = BINFMT_CONF_DIR / f"{arch.binfmt}.conf"
        if not conf.exists():
            raise RootfsError(f"{conf} missing: apt-get install qemu-user-static")
        (BINFMT_DIR / "register").write_text(conf.read_text().strip())
    status = entry.read_text()
    if not status.startswith("enabled"):
        entry.write_text("1")
    if "F" not in _flags(status):
        raise RootfsError(f"binfmt entry {arch.binfmt} lacks the fix-binary (F) flag")


def _flags(status: str) -> str:
    for line in status.splitlines():
        if line.startswith("flags:"):
            return line.split(":", 1)[1].strip()
    return ""


def build_rootfs(arch: Arch, log: Path, cache: Path | None = None) -> Path:
    """The cached tree for the arch, debootstrapped (both stages) if missing."""
    path = rootfs_path(arch, cache)
    if is_complete(path):
        return path
    ensure_binfmt(arch)
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap missing: apt-get install debootstrap")
    building = path.with_name(path.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    include = ",".join(arch.packages)
    first = ["debootstrap", "--foreign", "--variant=minbase", f"--arch={arch.debian}",
             f"--include={include}", SUITE, str(building), MIRROR]  # fmt: skip
    _run_logged(["nice", "-n", "10", *first], log)
    # dpkg fsyncs every file it unpacks; a throwaway test tree does not need that
    unsafe = building / "etc" / "dpkg" / "dpkg.cfg.d" / "iomt-unsafe-io"
    unsafe.parent.mkdir(parents=True, exist_ok=True)
    unsafe.write_text("force-unsafe-io\n")
    second = ["chroot", str(building), "/debootstrap/debootstrap", "--second-stage"]
    _run_logged(["nice", "-n", "10", *second], log)
    (building / "var" / "cache" / "apt" / "archives").mkdir(parents=True, exist_ok=True)
    for deb in (building / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()
    (building / COMPLETE_MARKER).write_text(f"{SUITE} {arch.debian} {rootfs_key(arch)}\n")
    shutil.rmtree(path, ignore_errors=True)
    building.rename(path)
    return path


def _run_logged(command: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as stream:
        stream.write("$ " + " ".join(command) + "\n")
        stream.flush()
        completed = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        raise RootfsError(
            f"`{' '.join(command[3:6])}...` failed (exit {completed.returncode}); see {log}"
        )
