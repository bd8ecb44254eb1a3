"""`--broker`: one MQTT broker URL, or the nodes of a cluster, repeated or comma-separated.

`--broker mqtt://a:1883 --broker mqtt://b:1883` and `--broker mqtt://a:1883,mqtt://b:1883`
mean the same list; the link (`fleet_protocol.mqtt_link`) connects to the first and fails over
to the next when a connection drops. The value stays one comma-separated string, so a TOML
`broker = "..."` and every caller that passes a single URL keep working.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from iomt.errors import UsageError

BROKER_HELP = (
    "mqtt://HOST:PORT; repeat it (or separate with commas) for the nodes of a cluster: "
    "the link fails over to the next when a connection drops"
)


class _JoinBrokers(argparse.Action):
    """Append each occurrence to a comma-separated list."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        before = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{before},{values}" if before else str(values))


def add_broker_argument(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add `--broker` (repeatable) to a command's parser."""
    parser.add_argument("--broker", action=_JoinBrokers, required=required, help=BROKER_HELP)


def check_broker(urls: str | None) -> None:
    """Every URL of the list parses, and they share scheme and MQTT version (else UsageError)."""
    from fleet_protocol.mqtt_link import MqttLinkError, broker_addresses

    if urls is None:
        return
    try:
        broker_addresses(urls)
    except MqttLinkError as exc:
        raise UsageError(f"--broker: {exc}") from exc
