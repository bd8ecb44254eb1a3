"""A local MQTT broker for development, tests and `iomt simulate`: Mosquitto, else embedded amqtt.

Mosquitto runs as a child process with a generated config on loopback and a free port; the
embedded fallback (amqtt) runs on its own asyncio loop in a thread. Both expose the same
`LocalBroker` lifetime: `start()` waits until the port accepts connections, `stop()` ends it.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregator.broker_bridge import BridgeTls

LOOPBACK = "127.0.0.1"
MAX_PACKET_BYTES = 1024 * 1024  # same as the TLS config (aggregator.broker_acl)
MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_TIMEOUT_S = 10.0
AMQTT_LOGGER = "amqtt"  # the embedded broker's loggers all live under this name


class BrokerError(RuntimeError):
    """The broker could not be started or did not accept connections in time."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_CANDIDATES if Path(p).is_file()), None)


def mosquitto_config(port: int, host: str = LOOPBACK) -> str:
    """The generated Mosquitto config: one plain listener, anonymous, nothing on disk."""
    return "\n".join(
        [
            f"listener {port} {host}",
            "allow_anonymous true",
            "persistence false",
            "max_inflight_messages 100",
            "max_queued_messages 10000",
            f"max_packet_size {MAX_PACKET_BYTES}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]
    )


def wait_until_listening(
    host: str, port: int, timeout_s: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Poll the port until it accepts a TCP connection; raise BrokerError otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise BrokerError("broker process exited during start-up")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BrokerError(f"broker did not accept connections on {host}:{port} in {timeout_s:.0f} s")


@dataclass
class LocalBroker:
    """A broker on loopback this process started; use as a context manager."""

    port: int = 0
    host: str = LOOPBACK
    prefer: str = "mosquitto"  # or "embedded"
    kind: str = ""
    tls_dir: Path | None = None  # certificate directory (`iomt certs`): TLS + client certs + ACL
    acl_fleet: str | tuple[str, ...] = ()  # fleet(s) the generated ACL covers ("+": any)
    bridge_to: str | None = None  # a central broker: bridge `acl_fleet`'s rounds, models down
    bridge_tls: BridgeTls | None = None  # the bridge's certificate for an mqtts:// central broker
    _process: subprocess.Popen[bytes] | None = None
    _config_dir: tempfile.TemporaryDirectory[str] | None = None
    _embedded: _EmbeddedBroker | None = None

    @property
    def url(self) -> str:
        """`mqtt://HOST:PORT` for clients (`mqtts://` with TLS)."""
        scheme = "mqtts" if self.tls_dir is not None else "mqtt"
        version = "?mqtt=3.1.1" if self.kind == "amqtt" else ""  # amqtt speaks no MQTT 5
        return f"{scheme}://{self.host}:{self.port}{version}"

    def start(self) -> LocalBroker:
        """Start the broker and return once it accepts connections."""
        if self.tls_dir is not None and not self.acl_fleet:
            raise BrokerError("a TLS broker's ACL needs the fleet(s) it serves (--fleet NAME)")
        if self.bridge_to is not None and (self.tls_dir is not None or not self.acl_fleet):
            raise BrokerError("a bridged site broker needs --fleet NAME and no --tls")
        self.port = self.port or free_port(self.host)
        executable = find_mosquitto() if self.prefer == "mosquitto" else None
        if executable:
            self._start_mosquitto(executable)
            wait_until_listening(self.host, self.port, START_TIMEOUT_S, self._alive)
        elif self.tls_dir is not None:
            raise BrokerError("--tls needs Mosquitto (the embedded broker has no client certs/ACL)")
        elif self.bridge_to is not None:
            raise BrokerError("--bridge needs Mosquitto (the embedded broker has no bridges)")
        else:  # listening once start() returns; a probe connection would make amqtt log an error
            self._embedded = _EmbeddedBroker(self.host, self.port)
            self._embedded.start()
            self.kind = "amqtt"
        return self

    def _start_mosquitto(self, executable: str) -> None:
        self._config_dir = tempfile.TemporaryDirectory(prefix="iomt-mosquitto-")
        config = Path(self._config_dir.name) / "mosquitto.conf"
        config.write_text(self._config_text(Path(self._config_dir.name)))
        self._process = subprocess.Popen(
            [executable, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        self.kind = "mosquitto"

    def _config_text(self, directory: Path) -> str:
        # as root, Mosquitto drops to its own user, which could not read our 0600 keys
        run_as = getpass.getuser() if os.geteuid() == 0 else None
        if self.bridge_to is not None:
            from aggregator.broker_bridge import bridge_config

            fleets = (self.acl_fleet,) if isinstance(self.acl_fleet, str) else self.acl_fleet
            name = f"iomt-site-{self.port}"
            user = [f"user {run_as}"] if run_as else []
            return "\n".join([*user, mosquitto_config(self.port, self.host)]) + bridge_config(
                name, self.bridge_to, fleets, self.bridge_tls
            )
        if self.tls_dir is None:
            return mosquitto_config(self.port, self.host)
        from aggregator.broker_acl import mosquitto_acl, mosquitto_tls_config
        from aggregator.certs import CertDirectory

        certs = CertDirectory(self.tls_dir)
        acl = directory / "acl"
        acl.write_text(mosquitto_acl(self.acl_fleet, members=certs.member_ids()))
        return mosquitto_tls_config(self.port, self.host, certs, str(acl), run_as)

    def _alive(self) -> bool:
        return self._process is None or self._process.poll() is None

    def wait(self) -> None:
        """Block until the broker ends (Ctrl-C raises KeyboardInterrupt here)."""
        if self._process is not None:
            self._process.wait()
        elif self._embedded is not None:
            self._embedded.join()

    def stop(self) -> None:
        """Stop the broker; safe to call twice."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
        if self._config_dir is not None:
            self._config_dir.cleanup()
            self._config_dir = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def quiet_amqtt_logging() -> None:
    """Only amqtt's errors reach the user: it logs its configuration defaults ("'sys_interval'
    key is not set") and every client that connects without a word as warnings. Our logger
    only; the root logger and other libraries are left as the application set them."""
    logging.getLogger(AMQTT_LOGGER).setLevel(logging.ERROR)


class _EmbeddedBroker:
    """amqtt on a private asyncio loop in a daemon thread (only when Mosquitto is missing)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._thread: threading.Thread | None = None
        self._loop: Any = None
        self._broker: Any = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        quiet_amqtt_logging()
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S) or self._error is not None:
            raise BrokerError(f"embedded broker failed to start: {self._error}")

    def _run(self) -> None:
        import asyncio

        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self._host}:{self._port}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._broker = Broker(config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        import asyncio

        if self._loop is None or self._broker is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
