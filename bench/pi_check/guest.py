"""Commands inside an emulated userland: chroot under qemu-user, the host's network and loopback.

Each command runs in a private mount namespace (`unshare --mount`) that mounts `/proc` and
binds `/dev` into the tree, so nothing stays mounted on the host when it exits. `/sys` stays
out: with the host's x86 CPU list there, LiteRT's CPU detection under qemu-aarch64 crashes the
interpreter (segfault); without it, it says so on stderr and carries on. The guest shares the
host's network namespace: a broker on the host's 127.0.0.1 is the guest's too.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.pi_check.rootfs import Arch

GUEST_VENV = "/home/pi/iomt"  # where docs/edge-device.md puts the venv (~/iomt, user pi)
GUEST_WORK = "/iomt-check"  # bundle, data, wheel and probe copied in for each run
DEPS_MARKER = ".iomt-deps-key"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENTER = 'root="$1"; shift; mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" \
&& exec chroot "$root" "$@"'


@dataclass(frozen=True)
class Guest:
    """One emulated userland: its arch and root directory."""

    arch: Arch
    root: Path

    def command(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        """The host command that runs `argv` inside the tree with a clean environment."""
        pairs = [f"{k}={v}" for k, v in {**self.base_env(), **(env or {})}.items()]
        enter = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER, "enter"]
        return [*enter, str(self.root), "/usr/bin/env", "-i", *pairs, *argv]

    @staticmethod
    def base_env() -> dict[str, str]:
        return {
            "PATH": GUEST_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_DEFAULT_TIMEOUT": "180",
        }

    def run(self, argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> str:
        """Run to completion; raises with the output's tail when it fails."""
        completed = subprocess.run(
            self.command(argv, env), capture_output=True, text=True, timeout=timeout_s,
            check=False,
        )  # fmt: skip
        if completed.returncode != 0:
            tail = (completed.stdout + completed.stderr).strip()[-3000:]
            raise GuestError(f"{self.arch.debian}: `{' '.join(argv)}` exited "
                             f"{completed.returncode}:\n{tail}")  # fmt: skip
        return completed.stdout

    def host_path(self, guest_path: str) -> Path:
        return self.root / guest_path.lstrip("/")

    def prepare_system(self) -> None:
        """Host DNS and CA bundle into the tree (pip's HTTPS), user `pi`, an empty GUEST_WORK."""
        for name in ("etc/resolv.conf", "etc/ssl/certs/ca-certificates.crt", "etc/hosts"):
            source = Path("/") / name
            if source.exists():
                target = self.root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                shutil.copyfile(source, target)
        if "\npi:" not in "\n" + (self.root / "etc" / "passwd").read_text():
            self.run(["useradd", "--create-home", "pi"], 600)  # the user the docs install as
        work = self.host_path(GUEST_WORK)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)

    def copy_in(self, files: dict[str, Path]) -> None:
        """Files and directories into GUEST_WORK under the given names."""
        work = self.host_path(GUEST_WORK)
        for name, source in files.items():
            if source.is_dir():
                shutil.copytree(source, work / name)
            else:
                shutil.copyfile(source, work / name)


class GuestError(RuntimeError):
    """A command inside an emulated userland failed."""


def edge_requirements(wheel: Path) -> list[str]:
    """The wheel's `Requires-Dist` lines: what its `edge` extra pulls in."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    return sorted(line for line in lines if line.startswith("Requires-Dist:"))


@dataclass(frozen=True)
class Install:
    """How the edge install went in one guest."""

    fresh: bool  # a new venv (the user's first install) or the cached one, project reinstalled
    seconds: float


def install_edge(guest: Guest, wheel: Path) -> Install:
    """`pip install "<wheel>[edge]"` into GUEST_VENV as docs/edge-device.md says.

    The venv is kept between runs while the wheel's requirements stay the same; then only the
    project itself is reinstalled, and the documented command runs again to check that every
    requirement is satisfied.
    """
    started = time.monotonic()
    key = hashlib.sha256("\n".join(edge_requirements(wheel)).encode()).hexdigest()[:16]
    venv, marker = guest.host_path(GUEST_VENV), guest.host_path(GUEST_VENV) / DEPS_MARKER
    fresh = not (marker.exists() and marker.read_text().strip() == key)
    pip = [f"{GUEST_VENV}/bin/python", "-m", "pip", "install", "--quiet"]
    target = f"{GUEST_WORK}/{wheel.name}"
    _apt_install(guest, guest.arch.apt_for_pip)
    if fresh:
        shutil.rmtree(venv, ignore_errors=True)
        guest.run(["python3", "-m", "venv", *venv_options(guest.arch), GUEST_VENV], 600)
    else:
        guest.run([*pip, "--force-reinstall", "--no-deps", target], 900)
    guest.run([*pip, f"{target}[edge]"], 1800)
    marker.write_text(key + "\n")
    return Install(fresh, round(time.monotonic() - started, 1))


def _apt_install(guest: Guest, packages: tuple[str, ...]) -> None:
    """`sudo apt install PACKAGES` as the docs say, when not installed in the tree yet."""
    status = guest.host_path("/var/lib/dpkg/status").read_text()
    missing = [p for p in packages if f"Package: {p}\nStatus: install ok installed" not in status]
    if missing:
        guest.run(["apt-get", "update", "-qq"], 1800)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        guest.run(install, 3600, env={"DEBIAN_FRONTEND": "noninteractive"})


def venv_options(arch: Arch) -> list[str]:
    """32-bit Pi OS takes numpy, cffi and msgpack from Debian (no armv7l wheels on PyPI)."""
    return ["--system-site-packages"] if arch.debian == "armhf" else []
