"""Watching processes from outside: peak memory of process trees and bytes on their TCP sockets.

Both sides of the Flower comparison are measured the same way: every `POLL_S` the watcher finds
the device processes, adds up the RSS of each device's process tree (a Flower SuperNode runs its
ClientApp in a child process) and reads the kernel's `tcp_info` counters (`ss -ti`) of the device
sockets towards the server port: bytes the peer acknowledged (up) and bytes received (down).
These counters include the protocol framing (MQTT or gRPC/HTTP) but not TCP/IP headers.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

POLL_S = 0.2
_SOCKET = re.compile(r"users:\(\(.*?pid=(\d+)")
_COUNTER = re.compile(r"\b(bytes_acked|bytes_received):(\d+)")
_LOCAL = re.compile(r"^\S+\s+\d+\s+\d+\s+(\S+)\s+(\S+)")


@dataclass
class DeviceUsage:
    """What one device used: peak RSS of its process tree, bytes per socket (never shrinks)."""

    peak_rss_bytes: int = 0
    peak_largest_process_bytes: int = 0
    sockets: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def bytes_up(self) -> int:
        return sum(up for up, _ in self.sockets.values())

    @property
    def bytes_down(self) -> int:
        return sum(down for _, down in self.sockets.values())


class ProcessWatch:
    """Polls in a thread; `find_devices()` returns {device name: root pid} each time."""

    def __init__(self, find_devices: Callable[[], dict[str, int]], server_port: Callable[[], int]):
        self._find_devices, self._server_port = find_devices, server_port
        self.usage: dict[str, DeviceUsage] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def poll_once(self) -> None:
        devices = self._find_devices()
        port = self._server_port()
        counters = socket_counters(port) if port else {}
        for name, pid in devices.items():
            usage = self.usage.setdefault(name, DeviceUsage())
            tree = _tree(pid)
            usage.peak_rss_bytes = max(usage.peak_rss_bytes, _rss(tree))
            largest = max((_rss([p]) for p in tree), default=0)
            usage.peak_largest_process_bytes = max(usage.peak_largest_process_bytes, largest)
            pids = {p.pid for p in tree}
            for key, (pid_of_socket, up, down) in counters.items():
                if pid_of_socket in pids:
                    old_up, old_down = usage.sockets.get(key, (0, 0))
                    usage.sockets[key] = (max(old_up, up), max(old_down, down))

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll_once()
            except (psutil.Error, OSError, ValueError):
                continue


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def socket_counters(remote_port: int) -> dict[str, tuple[int, int, int]]:
    """{local->remote address: (pid, bytes acked, bytes received)} of sockets to `remote_port`."""
    text = subprocess.run(
        ["ss", "-tinpH", "state", "established", "dport", "=", f":{remote_port}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    lines = text.splitlines()
    counters = {}
    for head, info in zip(lines[::2], lines[1::2], strict=False):
        owner, values = _SOCKET.search(head), dict(_COUNTER.findall(info))
        if owner is None:
            continue
        key = " ".join(head.split()[2:4])
        counters[key] = (
            int(owner.group(1)),
            int(values.get("bytes_acked", 0)),
            int(values.get("bytes_received", 0)),
        )
    return counters


def commandline_children(root_pid: int, marker: str) -> dict[str, int]:
    """{name: pid} of descendants whose command line has `marker` then a `--device-id NAME`."""
    found = {}
    for process in _tree(root_pid)[1:]:
        try:
            args = process.cmdline()
        except psutil.Error:
            continue
        if marker in args and "--device-id" in args:
            found[args[args.index("--device-id") + 1]] = process.pid
    return found
