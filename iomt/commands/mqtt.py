"""`iomt mqtt sub`: watch a fleet's topics with every message decoded into one readable line."""

from __future__ import annotations

import argparse
import os

from iomt.broker_option import add_broker_argument
from iomt.commands.certs import add_tls_arguments, tls_from_arguments
from iomt.environment import Environment, ExitStatus
from iomt.errors import UsageError

HELP = "watch MQTT topics with the fleet's messages decoded (like mosquitto_sub -v, readable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="mqtt_action", metavar="ACTION", required=True)
    sub = actions.add_parser("sub", help="print every message as `topic type field=value ...`")
    add_broker_argument(sub, required=True)
    sub.add_argument("--fleet", default="+", help="fleet to watch (default: every fleet)")
    sub.add_argument(
        "--topic", help="MQTT topic filter (default: iomt/v1/FLEET/#, every fleet topic)"
    )
    sub.add_argument("--count", type=int, help="exit after this many messages (default: never)")
    sub.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the broker (default: 10)"
    )
    add_tls_arguments(sub)


def run(env: Environment, args: argparse.Namespace) -> ExitStatus:
    from fleet_protocol.message_text import message_to_text
    from fleet_protocol.mqtt_link import LinkConfig, MqttLink
    from iomt.broker_option import check_broker
    from iomt.input_checks import check_number

    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    check_broker(args.broker)
    check_number("--timeout", args.timeout)
    topic = args.topic or f"iomt/v1/{args.fleet}/#"
    config = LinkConfig(args.broker, f"iomt-mqtt-sub-{os.getpid()}", (topic,),
                        persistent_session=False,
                        tls=tls_from_arguments(args, "watcher"))  # fmt: skip
    link = MqttLink(config).start(args.timeout)  # unreachable: a failure (exit 1), said in one line
    seen = 0
    try:
        while args.count is None or seen < args.count:
            event = link.next_event(1.0)
            if event is not None and event.kind == "message":
                env.print(message_to_text(event.topic, event.payload))
                seen += 1
    finally:
        link.stop()
    return ExitStatus.SUCCESS
