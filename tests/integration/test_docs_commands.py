"""The shell blocks of the operator docs, run as written against real processes.

Every command of every ```bash / ```sh block of docs/operating-aggregator.md,
docs/edge-device.md and docs/hil-rig.md runs through bash in a scratch directory, with small
settings swapped in (`SMALL`: fewer rounds, a quorum of one, the test's tiny bundle and data in
place of `bundles/har` (`bundles/NAME`) and `data.npz`, a free port for 1883). Conventions the
runner reads: `[...]` is an optional part and is left out; `<hex>` is the key the previous
command printed; a command ending in `&`, and the aggregator itself, run in the background, and
must exit 0 before the next block starts (the broker is stopped at the end). `iomt bridge
emulate` runs in the background as a board would: the pty it prints stands for `/dev/ttyACM0`
in later commands, and it is stopped at the end. The hil-rig page's other blocks (```shell:
`arduino-cli`, which needs a real board) are checked to be only those.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.tf]

DOCS = Path(__file__).resolve().parents[2] / "docs"
SMALL = {
    "--rounds 5": "--rounds 2",
    "--min-clients 3": "--min-clients 1",
    "--deadline 60": "--deadline 30",
    "--max-rounds 5": "--max-rounds 2",
    "--speed 10": "--speed 0",
    "rollback 3": "rollback 1",
}
_BLOCK = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shell_commands(markdown: str) -> list[list[str]]:
    """Each shell block's commands: continuations joined, comments and `[...]` dropped."""
    blocks = []
    for block in _BLOCK.findall(markdown):
        joined = block.replace("\\\n", " ")
        lines = [re.sub(r"\s+#.*$|^#.*$", "", line) for line in joined.splitlines()]
        lines = [re.sub(r"\s*\[[^\]]*\]", "", line).strip() for line in lines]
        blocks.append([" ".join(line.split()) for line in lines if line])
    return blocks


def test_shell_commands_reads_the_conventions() -> None:
    text = "```bash\niomt a --x 1 \\\n    --y 2 [--z]   # note\n# a comment\niomt b &\n```\n"
    assert shell_commands(text) == [["iomt a --x 1 --y 2", "iomt b &"]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DocRunner:
    """Runs documented commands in one scratch directory; keeps background ones to wait for."""

    def __init__(self, workdir: Path, replacements: dict[str, str]) -> None:
        self.workdir, self.replacements = workdir, replacements
        self.background: list[tuple[str, subprocess.Popen[str]]] = []
        self.broker: subprocess.Popen[str] | None = None
        self.boards: list[subprocess.Popen[str]] = []  # `iomt bridge emulate`, newest last
        self.port: str | None = None  # the newest emulated board's pty
        self.last_output = ""
        self._logs = 0
        bin_dir = str(Path(sys.executable).parent)  # the `iomt` of this environment
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def _small(self, command: str) -> str:
        for old, new in self.replacements.items():
            command = command.replace(old, new)
        if "<hex>" in command:
            command = command.replace("<hex>", self.last_output.strip().splitlines()[-1])
        if self.port is not None:
            command = command.replace("/dev/ttyACM0", self.port)
        return command

    def run_block(self, commands: list[str]) -> None:
        for written in commands:
            command = self._small(written)
            if command.startswith("iomt broker"):
                self._start_broker(command.rstrip("& "))
            elif command.startswith("iomt bridge emulate"):
                self._start_board(command.rstrip("& "))
            elif command.endswith("&") or command.startswith("iomt aggregator --broker"):
                self.background.append((written, self._popen(command.rstrip("& "))))
            else:
                done = subprocess.run(["bash", "-c", command], cwd=self.workdir, env=self.env,
                                      capture_output=True, text=True, timeout=300)  # fmt: skip
                assert done.returncode == 0, f"{written}\n{done.stderr[-2000:]}"
                self.last_output = done.stdout
        self.wait_background()

    def _popen(self, command: str, stdout: int | None = None) -> subprocess.Popen[str]:
        """A background command; its output goes to files (a full pipe would stall it)."""
        self._logs += 1
        log = (self.workdir / f"background-{self._logs}.log").open("w")
        return subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.workdir, env=self.env,
                                stdout=stdout or log, stderr=log, text=True)  # fmt: skip

    def _start_broker(self, command: str) -> None:
        self.broker = self._popen(command, stdout=subprocess.PIPE)
        assert self.broker.stdout is not None
        line = self.broker.stdout.readline()  # the broker prints its URL once it listens
        assert line.startswith("mqtt://"), f"{command}: {line!r}"

    def _start_board(self, command: str) -> None:
        board = self._popen(command, stdout=subprocess.PIPE)
        assert board.stdout is not None
        self.port = board.stdout.readline().strip()  # the pty, once it serves
        assert self.port.startswith("/dev/"), f"{command}: {self.port!r}"
        self.boards.append(board)

    def wait_background(self) -> None:
        for written, process in self.background:
            assert process.wait(timeout=300) == 0, f"{written}: see {self.workdir}/*.log"
        self.background = []

    def stop(self) -> None:
        for _, process in self.background:
            process.kill()
        for board in self.boards:  # SIGTERM: QEMU powered off, the pty closed
            board.terminate()
            assert board.wait(timeout=60) == 0
        if self.broker is not None:
            self.broker.terminate()
            self.broker.wait(timeout=30)


def _sandbox(tmp_path: Path, task) -> Path:  # type: ignore[no-untyped-def]
    """The paths the docs name, pointing at the test's tiny bundle and data."""
    (tmp_path / "bundles").mkdir()
    (tmp_path / "bundles" / "har").symlink_to(task.bundle_path)
    (tmp_path / "data.npz").symlink_to(task.data_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.npz").symlink_to(task.holdout_path)
    return tmp_path


def test_operating_aggregator_doc_runs_as_written(tiny_task, tmp_path: Path) -> None:
    port = _free_port()
    runner = DocRunner(_sandbox(tmp_path, tiny_task), {**SMALL, ":1883": f":{port}",
                                                      "--port 1883": f"--port {port}"})  # fmt: skip
    try:
        for block in shell_commands((DOCS / "operating-aggregator.md").read_text()):
            runner.run_block(block)
    finally:
        runner.stop()
    assert (tmp_path / "rounds.jsonl").read_text().count("\n") == 2


def test_hil_rig_doc_runs_as_written(mosquitto, tiny_whole_task, tmp_path: Path) -> None:
    import shutil

    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"firmware toolchain missing ({', '.join(missing)}): run `make firmware`")
    text = (DOCS / "hil-rig.md").read_text()
    board_only = re.findall(r"^```(?!bash\n|sh\n)\w+\n(.*?)^```", text, re.M | re.S)
    assert [line.split()[0] for block in board_only for line in block.splitlines()] == [
        "arduino-cli"] * 3  # fmt: skip
    url = mosquitto.url  # the aggregator host the doc's HOST:1883 stands for
    runner = DocRunner(_sandbox(tmp_path, tiny_whole_task),
                       {**SMALL, "NAME": "har", "mqtt://HOST:1883": url,
                        "--seconds 10": "--seconds 2", "--count 50": "--count 5"})  # fmt: skip
    aggregator = runner._popen(
        f"iomt aggregator --broker {url} --fleet lab --bundle bundles/har --state agg.sqlite"
        " --rounds 1 --min-clients 1 --deadline 120"
    )
    try:
        for block in shell_commands(text):
            runner.run_block(block)
        assert aggregator.wait(timeout=300) == 0
    finally:
        aggregator.kill()
        runner.stop()
    assert (tmp_path / "build" / "firmware" / "har" / "iomt_firmware.elf").is_file()
    assert (tmp_path / "build" / "firmware" / "har" / "nano33ble").is_dir()


def test_edge_device_doc_runs_as_written(mosquitto, tiny_task, tmp_path: Path) -> None:
    url = mosquitto.url  # the aggregator host the doc's HOST:1883 stands for
    runner = DocRunner(_sandbox(tmp_path, tiny_task), {**SMALL, "mqtt://HOST:1883": url})
    aggregator = runner._popen(
        f"iomt aggregator --broker {url} --fleet ward7 --bundle bundles/har --state agg.sqlite"
        " --rounds 2 --min-clients 1 --deadline 30"
    )
    try:
        for block in shell_commands((DOCS / "edge-device.md").read_text()):
            runner.run_block(block)
        assert aggregator.wait(timeout=300) == 0
    finally:
        aggregator.kill()
        runner.stop()
