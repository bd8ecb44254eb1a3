"""A site broker's Mosquitto bridge to the central broker: rounds and models come down.

At a site (a hospital, a ward) devices talk to the site's own Mosquitto; a site aggregator
(`iomt aggregator --role site`) collects their updates there and sends its signed partial sum
to the central broker itself (`--upstream`). The bridge only carries what the devices and the
site aggregator must see from the coordinator: the retained `round` announcement and the
retained `model/{version}` heads, one way, at QoS 1. Updates, acks and statuses never leave the
site. `try_private` tells a Mosquitto at the other end that this is a bridge, so it keeps the
retain flag on what it forwards (the site broker then keeps the round and models retained for
devices that connect later).

To a TLS central broker (`iomt broker --tls`) the bridge presents a client certificate of the
fleet's CA (`BridgeTls`; a device certificate is enough: the central ACL lets any certificate
read the round and the models, and the bridge reads nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleet_protocol.errors import TopicError
from fleet_protocol.mqtt_link import MqttLinkError, broker_addresses
from fleet_protocol.topics import model_topic, round_topic, validate_fleet

BRIDGE_QOS = 1
RESTART_S = (1, 10)  # Mosquitto's restart_timeout: first retry after 1 s, backing off to 10 s


@dataclass(frozen=True)
class BridgeTls:
    """What the bridge shows a TLS central broker: the fleet CA and its client certificate."""

    ca_cert: Path
    client_cert: Path
    client_key: Path


def bridge_config(
    name: str, upstream_url: str, fleets: tuple[str, ...], tls: BridgeTls | None = None
) -> str:
    """The `connection` section that bridges `fleets`' rounds and models down from upstream."""
    if not fleets:
        raise ValueError("a bridge carries at least one fleet")
    try:
        upstream = broker_addresses(upstream_url)
    except MqttLinkError as exc:
        raise ValueError(str(exc)) from exc
    if upstream[0].tls and tls is None:
        raise ValueError("an mqtts:// central broker needs the bridge's client certificate")
    if tls is not None and not upstream[0].tls:
        raise ValueError("a bridge certificate needs an mqtts:// central broker")
    lines = [
        f"connection {name}",
        f"addresses {' '.join(f'{a.host}:{a.port}' for a in upstream)}",
        "round_robin false",  # the first address is the primary; the others are failover
        f"bridge_protocol_version {'mqttv50' if upstream[0].mqtt_v5 else 'mqttv311'}",
        "try_private true",
        "cleansession false",
        f"remote_clientid {name}",
        f"restart_timeout {RESTART_S[0]} {RESTART_S[1]}",
        "notifications false",
    ]
    if tls is not None:
        lines += [f"bridge_cafile {tls.ca_cert.resolve()}",
                  f"bridge_certfile {tls.client_cert.resolve()}",
                  f"bridge_keyfile {tls.client_key.resolve()}",
                  "bridge_insecure false"]  # fmt: skip
    for fleet in fleets:
        try:
            validate_fleet(fleet)
        except TopicError as exc:
            raise ValueError(str(exc)) from exc
        model_filter = model_topic(fleet, 0).rsplit("/", 1)[0] + "/#"
        lines.append(f"topic {round_topic(fleet)} in {BRIDGE_QOS}")
        lines.append(f"topic {model_filter} in {BRIDGE_QOS}")
    return "\n".join(lines) + "\n"
