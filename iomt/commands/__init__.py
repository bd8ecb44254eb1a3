"""One module per subcommand; `COMMANDS` maps the name to the module path.

Command modules are imported lazily only when their parser is built, and each module imports
its heavy dependencies (TensorFlow, paho, tflite-micro) inside `run`, so `iomt --help` works
on a device without TensorFlow.

Each command module provides:
    HELP: str                                  one-line summary shown in `iomt --help`
    add_arguments(parser: ArgumentParser) -> None
    run(env: Environment, args: Namespace) -> ExitStatus
"""

COMMANDS: dict[str, str] = {
    "data": "iomt.commands.data",
    "train": "iomt.commands.train",
    "evaluate": "iomt.commands.evaluate",
    "convert": "iomt.commands.convert",
    "verify": "iomt.commands.verify",
    "keys": "iomt.commands.keys",
    "broker": "iomt.commands.broker",
    "aggregator": "iomt.commands.aggregator",
    "edge": "iomt.commands.edge",
    "fleet": "iomt.commands.fleet",
    "bridge": "iomt.commands.bridge",
    "simulate": "iomt.commands.simulate",
    "certs": "iomt.commands.certs",
    "report": "iomt.commands.report",
    "mqtt": "iomt.commands.mqtt",
}
