"""Flower's deployment runtime on loopback: one SuperLink, one SuperNode per device, `flwr run`.

Every SuperNode reaches the SuperLink through its own `ByteProxy` port, so the bytes each device
sends and receives are counted exactly. Processes start in their own sessions and are stopped as
groups (SIGTERM, then SIGKILL), so nothing outlives the bench.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.byte_proxy import ByteProxy

START_TIMEOUT_S = 120.0
GRACE_S = 5.0


@dataclass(frozen=True)
class FlowerRun:
    """What `flwr run` is asked to do."""

    app: Path
    rounds: int
    local_epochs: int
    run_dir: Path
    data_dir: Path
    devices: int
    learning_rate: float = 1e-4


class FlowerDeployment:
    """SuperLink + SuperNodes as child processes, a byte-counting relay between them."""

    def __init__(self, workdir: Path, devices: int) -> None:
        self.workdir, self.devices = workdir, devices
        self.names = [f"supernode-{i}" for i in range(devices)]
        self.superlink_port = 0
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        self.env = {**os.environ, "FLWR_HOME": str(workdir / "flwr-home"), "PATH": path}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.proxy: ByteProxy | None = None

    def __enter__(self) -> FlowerDeployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_superlink()
            self.proxy = ByteProxy(self.superlink_port, self.names).__enter__()
            for index, name in enumerate(self.names):
                self._start_supernode(index, name, self.proxy.ports[name])
            self._wait_for_nodes()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._processes.values():
            _signal_group(process, signal.SIGTERM)
        for process in self._processes.values():
            try:
                process.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        if self.proxy is not None:
            self.proxy.__exit__()

    def supernode_pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self._processes.items() if n.startswith("supernode")}

    def run(self, run: FlowerRun) -> dict[str, Any]:
        """`flwr run` to the end; the ServerApp's result plus wall time and relayed bytes."""
        self._write_connection()
        result_path = self.workdir / "result.json"
        config = (f'num-server-rounds={run.rounds} local-epochs={run.local_epochs} '
                  f'learning-rate={run.learning_rate} '
                  f'min-nodes={run.devices} run-dir="{run.run_dir}" '
                  f'data-dir="{run.data_dir}" result-path="{result_path}"')  # fmt: skip
        command = ["flwr", "run", str(run.app), "bench", "--run-config", config, "--stream"]
        started = time.monotonic()
        with (self.workdir / "flwr-run.log").open("wb") as log:
            code = subprocess.run(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wall_s = time.monotonic() - started
        if code.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"flwr run failed; see {self.workdir / 'flwr-run.log'}")
        result = json.loads(result_path.read_text())
        assert self.proxy is not None
        traffic = self.proxy.traffic
        return {
            **result,
            "wall_s": round(wall_s, 1),
            "relayed_bytes_up_per_device_round": _per(traffic, "up", run),
            "relayed_bytes_down_per_device_round": _per(traffic, "down", run),
        }

    def _start_superlink(self) -> None:
        self.superlink_port = _free_port()
        self._start("superlink", ["flower-superlink", "--insecure", "--host", "127.0.0.1",
                                  "--port", str(self.superlink_port),
                                  "--database", ":flwr-in-memory:"])  # fmt: skip
        _wait_listening(self.superlink_port, self._processes["superlink"])

    def _start_supernode(self, index: int, name: str, relay_port: int) -> None:
        self._start(name, ["flower-supernode", "--insecure", "--superlink",
                           f"127.0.0.1:{relay_port}", "--port", str(_free_port()),
                           "--node-config", f"partition-id={index} num-partitions={self.devices}",
                           ])  # fmt: skip

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self._processes[name] = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait_for_nodes(self) -> None:
        log = self.workdir / "superlink.log"
        deadline = time.monotonic() + START_TIMEOUT_S
        while log.read_text(errors="replace").count("Activated node_id") < self.devices:
            if time.monotonic() > deadline:
                raise TimeoutError(f"SuperNodes did not register; see {log}")
            time.sleep(0.2)

    def _write_connection(self) -> None:
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "bench"\n\n[superlink.bench]\n'
            f'address = "127.0.0.1:{self.superlink_port}"\ninsecure = true\n'
        )


def _per(traffic: dict[str, Any], direction: str, run: FlowerRun) -> float:
    total = sum(getattr(t, direction) for t in traffic.values())
    return round(total / (run.devices * run.rounds), 1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("flower-superlink exited at start-up")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError("flower-superlink did not start listening")


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
