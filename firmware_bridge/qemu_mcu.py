"""The firmware image running in qemu-system-arm (mps2-an386, Cortex-M4F) as a process.

QEMU exposes the two UARTs as Unix sockets it listens on and waits for (`server=on,wait=on`),
so no byte is lost before the host is connected: UART0 is the serial protocol, UART1 the
sensor feed. The model partition is a host file written through by semihosting; `kill()` is a
power cut (SIGKILL: writes already made are in the file, nothing else), `boot()` powers the
board on again with the same flash. `-icount shift=0` makes one instruction one nanosecond of
guest time, so instruction counts (and the latency the firmware reports) repeat run to run.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.errors import BridgeError

QEMU = "qemu-system-arm"
MACHINE = "mps2-an386"
CONNECT_TIMEOUT_S = 10.0
NO_QEMU = f"{QEMU} not found: install it with `make firmware` (apt package qemu-system-arm)"


@dataclass(frozen=True)
class QemuOptions:
    """What to boot, with which flash file, and where QEMU keeps its sockets and log."""

    image: Path
    flash: Path
    workdir: Path
    qemu: str = QEMU


def qemu_command(options: QemuOptions, link: Path, sensors: Path) -> list[str]:
    """The qemu-system-arm command line (pure)."""
    serial = [
        "-chardev",
        f"socket,id=link,path={link},server=on,wait=on",
        "-serial",
        "chardev:link",
    ]
    serial += ["-chardev", f"socket,id=sensors,path={sensors},server=on,wait=on"]
    serial += ["-serial", "chardev:sensors"]
    semihosting = f"enable=on,target=native,arg={options.flash}"
    return [
        options.qemu, "-M", MACHINE, "-nographic", "-monitor", "none", "-icount", "shift=0",
        "-kernel", str(options.image), "-semihosting-config", semihosting, *serial,
    ]  # fmt: skip


class QemuMcu:
    """One QEMU process at a time; `link` and `sensors` are its connected UART sockets."""

    def __init__(self, options: QemuOptions) -> None:
        _check(options)
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self.link: socket.socket | None = None
        self.sensors: socket.socket | None = None
        self.boots = 0

    def boot(self) -> QemuMcu:
        """Start QEMU and connect both UARTs (the firmware runs once both are connected)."""
        workdir = self.options.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        link_path, sensor_path = workdir / "uart0.sock", workdir / "uart1.sock"
        for path in (link_path, sensor_path):
            path.unlink(missing_ok=True)
        log = (workdir / "qemu.log").open("ab")
        command = qemu_command(self.options, link_path, sensor_path)
        self.process = subprocess.Popen(
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        log.close()
        self.link = self._connect(link_path)
        self.sensors = self._connect(sensor_path)
        self.boots += 1
        return self

    def _connect(self, path: Path) -> socket.socket:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise BridgeError(f"{QEMU} exited at start: {self.log_tail()}")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(path))
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise BridgeError(
                        f"{QEMU} did not open {path.name}: {self.log_tail()}"
                    ) from None
                time.sleep(0.01)

    def kill(self) -> None:
        """Power cut: SIGKILL, no chance to finish a flash write."""
        self._close_sockets()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        """Terminate QEMU and close the sockets."""
        self.kill()

    def log_tail(self) -> str:
        """Last line QEMU (or the firmware, through semihosting) wrote."""
        path = self.options.workdir / "qemu.log"
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return lines[-1] if lines else "no output"

    def _close_sockets(self) -> None:
        for sock in (self.link, self.sensors):
            if sock is not None:
                sock.close()
        self.link = self.sensors = None

    def __enter__(self) -> QemuMcu:
        return self.boot()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: Linux kills QEMU when the process that started it dies."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _check(options: QemuOptions) -> None:
    if shutil.which(options.qemu) is None:
        raise BridgeError(NO_QEMU)
    if not options.image.is_file():
        raise BridgeError(f"no firmware image at {options.image}: build it with `make firmware`")
    if "," in str(options.flash):
        raise BridgeError(f"flash file path must not contain a comma: {options.flash}")
    if not options.flash.exists():
        options.flash.parent.mkdir(parents=True, exist_ok=True)
        options.flash.write_bytes(b"")  # erased flash: the firmware reads missing bytes as 0xFF
