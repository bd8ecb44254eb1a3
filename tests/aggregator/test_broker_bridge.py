"""The site broker's bridge config, the site link's routing, and the CLI's refusals."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aggregator.broker_bridge import BridgeTls, bridge_config
from aggregator.site_link import SiteLink, site_subscriptions
from fleet_protocol.mqtt_link import LinkEvent
from iomt.cli import main
from iomt.environment import Environment


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, Environment(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_bridge_brings_only_rounds_and_models_down_from_every_upstream_node() -> None:
    # Execute
    config = bridge_config("site1", "mqtt://c1:1883,mqtt://c2:1884", ("ward",))

    # Assert
    lines = config.splitlines()
    assert "addresses c1:1883 c2:1884" in lines
    assert [line for line in lines if line.startswith("topic ")] == [
        "topic iomt/v1/ward/round in 1",
        "topic iomt/v1/ward/model/# in 1",
    ]
    assert "try_private true" in lines and "bridge_protocol_version mqttv50" in lines


def test_bridge_to_a_tls_broker_presents_its_certificate_and_checks_the_brokers() -> None:
    # Execute
    tls = BridgeTls(Path("/c/ca.crt"), Path("/c/clients/b.crt"), Path("/c/clients/b.key"))
    lines = bridge_config("site1", "mqtts://c1:8883", ("ward",), tls).splitlines()

    # Assert
    assert "bridge_cafile /c/ca.crt" in lines and "bridge_certfile /c/clients/b.crt" in lines
    assert "bridge_keyfile /c/clients/b.key" in lines and "bridge_insecure false" in lines
    with pytest.raises(ValueError, match="mqtts://"):
        bridge_config("s", "mqtt://c:1883", ("ward",), tls)


def test_bridge_refuses_tls_without_a_certificate_and_bad_fleets() -> None:
    with pytest.raises(ValueError, match="client certificate"):
        bridge_config("s", "mqtts://c:8883", ("ward",))
    with pytest.raises(ValueError, match="at least one fleet"):
        bridge_config("s", "mqtt://c:1883", ())
    with pytest.raises(ValueError):
        bridge_config("s", "mqtt://c:1883", ("no/slash",))


@dataclass
class _Recorder:
    published: list[str] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                wait: bool = True) -> None:  # fmt: skip
        self.published.append(topic)

    def next_event(self, timeout_s: float) -> LinkEvent | None:
        return LinkEvent("message", "iomt/v1/ward/update/d1")


def test_site_link_sends_partial_sums_upstream_and_acks_to_the_site() -> None:
    # Prepare
    site, upstream = _Recorder(), _Recorder()
    link = SiteLink(site, upstream)

    # Execute
    link.publish("iomt/v1/ward/partial/site1", b"sum", retain=True)
    link.publish("iomt/v1/ward/ack/d1", b"ack")

    # Assert
    assert upstream.published == ["iomt/v1/ward/partial/site1"]
    assert site.published == ["iomt/v1/ward/ack/d1"]
    assert link.next_event(0.0) == LinkEvent("message", "iomt/v1/ward/update/d1")
    assert site_subscriptions("ward") == (
        "iomt/v1/ward/round", "iomt/v1/ward/model/+", "iomt/v1/ward/update/+",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--role", "site", "--worker-id", "s1"], "--upstream"),
        (["--role", "site", "--upstream", "mqtt://c:1883"], "--worker-id"),
        (["--role", "worker", "--worker-id", "w1", "--upstream", "mqtt://c:1"], "--role site"),
        (["--role", "site", "--worker-id", "s1", "--upstream", "ftp://c"], "--broker"),
        (
            ["--role", "site", "--worker-id", "s1", "--upstream", "mqtt://c:1", "--tls", "certs"],
            "neither --broker nor --upstream is mqtts://",
        ),
    ],
)
def test_site_role_refusals_are_usage_errors(argv: list[str], says: str, tmp_path: Path) -> None:
    # Execute
    code, _, err = _run(["aggregator", "--broker", "mqtt://127.0.0.1:1", "--fleet", "ward",
                         "--state", str(tmp_path / "s.sqlite"), *argv])  # fmt: skip

    # Assert
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.sqlite").exists()


def test_broker_bridge_needs_a_fleet() -> None:
    code, _, err = _run(["broker", "--port", "0", "--bridge", "mqtt://c:1883"])
    assert code == 2 and "--fleet" in err


def test_site_with_an_unreachable_upstream_fails_and_writes_no_state(tmp_path: Path) -> None:
    # Prepare: a site broker that answers, an upstream where nobody listens
    from aggregator.broker import LocalBroker, find_mosquitto, free_port

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    state = tmp_path / "site.sqlite"
    with LocalBroker() as site:
        # Execute
        code, _, err = _run(["aggregator", "--broker", site.url, "--fleet", "ward",
                             "--state", str(state), "--role", "site", "--worker-id", "s1",
                             "--upstream", f"mqtt://127.0.0.1:{free_port()}"])  # fmt: skip

    # Assert
    assert code == 1 and "did not accept the connection" in err
    assert not state.exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--bridge-tls", "certs"], "go together"),
        (["--bridge-identity", "b"], "go together"),
        (["--bridge", "mqtts://c:8883"], "client certificate"),
        (
            ["--bridge", "mqtts://c:8883", "--bridge-tls", "nowhere", "--bridge-identity", "b"],
            "missing nowhere/ca.crt",
        ),
    ],
)
def test_broker_bridge_tls_refusals_are_usage_errors(argv: list[str], says: str) -> None:
    code, _, err = _run(["broker", "--port", "0", "--fleet", "ward", *argv])
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
