"""A clustered MQTT broker from an existing engine: N `nats-server` nodes, JetStream, MQTT on each.

NATS (Debian's `nats-server`, 2.9) speaks MQTT 3.1.1 with QoS 0 and 1, keeps retained messages
and persistent sessions in JetStream, and replicates them across the cluster
(`mqtt.stream_replicas`), so a device or aggregator that loses its node reconnects to another
(`fleet_protocol.mqtt_link` fails over along its broker list) and finds its session there.
What NATS lacks, and how the toolkit copes, is in docs/scaling.md: no QoS 2 and no MQTT 5
(the toolkit uses QoS 1 and speaks 3.1.1 when the URL says `?mqtt=3.1.1`), no `$share/`
shared subscriptions (workers take updates from a NATS queue group instead:
`aggregator.nats_queue`), and in 2.9 no `.` in a topic level
(fleet and device ids must avoid it).

`nats_node_configs` is pure (text per node); `NatsCluster` writes them into a directory and runs
the nodes as child processes on loopback, like `aggregator.broker.LocalBroker` runs Mosquitto.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.broker import LOOPBACK, BrokerError, free_port, wait_until_listening

NATS_CANDIDATES = ("/usr/sbin/nats-server", "/usr/bin/nats-server")
MAX_PAYLOAD_BYTES = 1024 * 1024  # as Mosquitto's max_packet_size (aggregator.broker)
START_TIMEOUT_S = 20.0
CLUSTER_NAME = "iomt"


def find_nats_server() -> str | None:
    """Path of the nats-server executable, or None when it is not installed."""
    found = shutil.which("nats-server")
    if found:
        return found
    return next((p for p in NATS_CANDIDATES if Path(p).is_file()), None)


def nats_server_version(executable: str) -> str:
    """The version `executable --version` reports (`2.9.10`), or `unknown`."""
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True,
                              timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip().rsplit("v", 1)[-1] or "unknown"


@dataclass(frozen=True)
class NatsNode:
    """One node: its name, the ports it listens on, where JetStream keeps its files."""

    name: str
    client_port: int
    cluster_port: int
    mqtt_port: int
    store_dir: Path
    host: str = LOOPBACK

    @property
    def mqtt_url(self) -> str:
        """The node's MQTT listener, for `--broker` (NATS speaks MQTT 3.1.1 only)."""
        return f"mqtt://{self.host}:{self.mqtt_port}?mqtt=3.1.1"

    @property
    def nats_url(self) -> str:
        """The node's NATS client port, for workers' `--queue-group-url`."""
        return f"nats://{self.host}:{self.client_port}"


def nats_node_configs(nodes: list[NatsNode]) -> dict[str, str]:
    """The config file text of every node, by node name: routes to all, JetStream, MQTT."""
    routes = ", ".join(f"nats-route://{n.host}:{n.cluster_port}" for n in nodes)
    replicas = min(3, len(nodes))
    return {node.name: _node_config(node, routes, replicas) for node in nodes}


def _node_config(node: NatsNode, routes: str, replicas: int) -> str:
    return "\n".join(
        [
            f"server_name: {node.name}",
            f"listen: {node.host}:{node.client_port}",
            f"max_payload: {MAX_PAYLOAD_BYTES}",
            "jetstream {",
            f'  store_dir: "{node.store_dir}"',
            "  max_memory_store: 64MB",
            "  max_file_store: 1GB",
            "}",
            "cluster {",
            f"  name: {CLUSTER_NAME}",
            f"  listen: {node.host}:{node.cluster_port}",
            f"  routes: [{routes}]",
            "}",
            "mqtt {",
            f"  listen: {node.host}:{node.mqtt_port}",
            f"  stream_replicas: {replicas}",  # sessions and retained messages survive a node
            "  ack_wait: 10s",  # a QoS 1 message unacknowledged this long is sent again
            "}",
            "",
        ]
    )


def _wait_mqtt_ready(node: NatsNode) -> None:
    """One MQTT session on the node: NATS accepts them once JetStream has its leaders."""
    from fleet_protocol.mqtt_link import LinkConfig, MqttLink, MqttLinkError

    probe = LinkConfig(node.mqtt_url, f"iomt-probe-{node.name}", persistent_session=False)
    try:
        MqttLink(probe).start(START_TIMEOUT_S).stop()
    except MqttLinkError as exc:
        raise BrokerError(f"NATS node {node.name} took no MQTT session: {exc}") from exc


def plan_nodes(directory: Path, count: int = 3, host: str = LOOPBACK) -> list[NatsNode]:
    """`count` nodes on free ports of `host`, their stores under `directory`."""
    nodes = []
    for i in range(count):
        ports = free_port(host), free_port(host), free_port(host)
        nodes.append(NatsNode(f"n{i}", *ports, directory / f"n{i}-jetstream", host))
    return nodes


@dataclass
class NatsCluster:
    """`count` nats-server nodes on loopback, started from configs written into `directory`."""

    directory: Path
    count: int = 3
    nodes: list[NatsNode] = field(default_factory=list)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Every node's MQTT URL, comma-separated: the `--broker` list for devices."""
        return ",".join(node.mqtt_url for node in self.nodes)

    @property
    def nats_url(self) -> str:
        """Every node's NATS client URL, comma-separated: workers' `--queue-group-url`."""
        return ",".join(node.nats_url for node in self.nodes)

    def write_configs(self) -> list[Path]:
        """Plan the nodes (free ports) and write one config per node; the paths written."""
        executable = find_nats_server()
        if executable is None:
            raise BrokerError("nats-server is not installed (make nats-server, or apt-get)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.nodes = self.nodes or plan_nodes(self.directory, self.count)
        paths = []
        for name, text in nats_node_configs(self.nodes).items():
            path = self.directory / f"{name}.conf"
            path.write_text(text)
            paths.append(path)
        return paths

    def start(self) -> NatsCluster:
        """Start every node and return once each MQTT listener accepts connections."""
        self.write_configs()
        try:
            for node in self.nodes:
                self.start_node(node.name)
            for node in self.nodes:
                _wait_mqtt_ready(node)
        except BaseException:  # `with` never reaches __exit__: stop the nodes started so far
            self.stop()
            raise
        return self

    def start_node(self, name: str) -> None:
        """Start (or restart) one node from its config and wait for its MQTT listener."""
        node = self._node(name)
        executable = find_nats_server() or "nats-server"
        log = (self.directory / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [executable, "-c", str(self.directory / f"{name}.conf")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        self._processes[name] = process
        alive = lambda: process.poll() is None  # noqa: E731
        wait_until_listening(node.host, node.mqtt_port, START_TIMEOUT_S, alive)

    def kill_node(self, name: str) -> None:
        """SIGKILL one node (a crash, not a shutdown) and reap it."""
        process = self._processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def running(self) -> list[str]:
        """Names of the nodes whose process is alive."""
        return [name for name, p in self._processes.items() if p.poll() is None]

    def wait(self) -> None:
        """Block until every node has ended (Ctrl-C raises KeyboardInterrupt here)."""
        for process in list(self._processes.values()):
            process.wait()

    def stop(self) -> None:
        """Stop every node still running; safe twice."""
        for process in self._processes.values():
            process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    def _node(self, name: str) -> NatsNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise BrokerError(f"no NATS node named {name!r}")

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
