"""A site broker's Mosquitto bridge to the central broker: rounds and models come down.

At a site (a hospital, a ward) devices talk to the site's own Mosquitto; a site aggregator
(`iomt aggregator --role site`) collects their updates there and sends its signed partial sum
to the central broker itself (`--upstream`). The bridge only carries what the devices and the
site aggregator must see from the coordinator: the retained `round` announcement and the
retained `model/{version}` heads, one way, at QoS 1. Updates, acks and statuses never leave the
site. `try_private` tells a Mosquitto at the other end that this is a bridge, so it keeps the
retain flag on what it forwards (the site broker then keeps the round and models retained for
devices that connect later).
"""

from __future__ import annotations

from fleet_protocol.errors import TopicError
from fleet_protocol.mqtt_link import MqttLinkError, broker_addresses
from fleet_protocol.topics import model_topic, round_topic, validate_fleet

BRIDGE_QOS = 1
RESTART_S = (1, 10)  # Mosquitto's restart_timeout: first retry after 1 s, backing off to 10 s


def bridge_config(name: str, upstream_url: str, fleets: tuple[str, ...]) -> str:
    """The `connection` section that bridges `fleets`' rounds and models down from upstream."""
    if not fleets:
        raise ValueError("a bridge carries at least one fleet")
    try:
        upstream = broker_addresses(upstream_url)
    except MqttLinkError as exc:
        raise ValueError(str(exc)) from exc
    if any(address.tls for address in upstream):
        raise ValueError("the generated bridge speaks plain MQTT; put TLS options in by hand")
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
    for fleet in fleets:
        try:
            validate_fleet(fleet)
        except TopicError as exc:
            raise ValueError(str(exc)) from exc
        model_filter = model_topic(fleet, 0).rsplit("/", 1)[0] + "/#"
        lines.append(f"topic {round_topic(fleet)} in {BRIDGE_QOS}")
        lines.append(f"topic {model_filter} in {BRIDGE_QOS}")
    return "\n".join(lines) + "\n"
