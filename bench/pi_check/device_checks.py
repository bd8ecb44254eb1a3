"""What pi-check does inside one userland: the backbone probe, two rounds, bad input.

Each check returns values; `run` decides pass or fail. Processes inside the guest are the
guest's `iomt` and `python` from the venv the documented install made.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.pi_check.guest import GUEST_VENV, GUEST_WORK, Guest

ROUNDS = 2
FIRST_LINE = "first_inference"


@dataclass(frozen=True)
class ProbeRun:
    """One probe process: start-up to first inference, its last JSON line, its outputs."""

    startup_s: float
    report: dict[str, Any]
    embeddings: np.ndarray
    predictions: np.ndarray


def run_probe(command: list[str], out: Path, timeout_s: float) -> ProbeRun:
    """Start the probe, time launch -> `first_inference`, read its report and outputs."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    startup_s, last = None, ""
    for line in process.stdout:
        if line.strip() == FIRST_LINE and startup_s is None:
            startup_s = time.monotonic() - started
        elif line.strip():
            last = line.strip()
    stderr = process.communicate(timeout=timeout_s)[1]
    if process.returncode != 0 or startup_s is None:
        raise RuntimeError(f"probe exited {process.returncode}: {stderr.strip()[-2000:]}")
    with np.load(out, allow_pickle=False) as outputs:
        embeddings, predictions = outputs["embeddings"], outputs["predictions"]
    return ProbeRun(round(startup_s, 3), json.loads(last), embeddings, predictions)


def probe_in_guest(guest: Guest, timeout_s: float) -> ProbeRun:
    out = f"{GUEST_WORK}/probe-out.npz"
    argv = [f"{GUEST_VENV}/bin/python", f"{GUEST_WORK}/probe.py", f"{GUEST_WORK}/bundle",
            f"{GUEST_WORK}/windows.npz", out]  # fmt: skip
    return run_probe(guest.command(argv), guest.host_path(out), timeout_s)


def probe_on_host(venv: Path, probe: Path, bundle: Path, windows: Path, out: Path) -> ProbeRun:
    argv = [str(venv / "bin" / "python"), str(probe), str(bundle), str(windows), str(out)]
    return run_probe(argv, out, timeout_s=600)


@dataclass(frozen=True)
class Agreement:
    """ARM outputs against x86 outputs on the same windows."""

    bit_identical_share: float  # windows whose whole embedding is bitwise equal
    argmax_agreement: float  # windows whose predicted class (head on the embedding) agrees
    windows: int


def compare(arm: ProbeRun, x86: ProbeRun) -> Agreement:
    if arm.embeddings.shape != x86.embeddings.shape:
        raise RuntimeError(
            f"embedding shapes differ: {arm.embeddings.shape} {x86.embeddings.shape}"
        )
    same = [a.tobytes() == b.tobytes() for a, b in zip(arm.embeddings, x86.embeddings, strict=True)]
    agree = arm.predictions == x86.predictions
    return Agreement(round(float(np.mean(same)), 6), round(float(np.mean(agree)), 6), len(same))


def _host_iomt(args: list[str], log: Path) -> subprocess.Popen[str]:
    stream = log.open("w")
    return subprocess.Popen([sys.executable, "-m", "iomt.cli", *args], stdout=stream,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


@dataclass(frozen=True)
class RoundsRun:
    """Two rounds: what the aggregator recorded and what the device said."""

    rounds_completed: int
    device_exit: int
    aggregator_exit: int
    device_events: list[dict[str, Any]]


def federated_rounds(guest: Guest, broker_url: str, bundle: Path, work: Path) -> RoundsRun:
    """Aggregator on the host (workstation venv), `iomt edge` in the guest, two rounds."""
    fleet = f"pi-{guest.arch.debian}"
    metrics = work / f"{fleet}-metrics.jsonl"
    aggregator = _host_iomt([
        "aggregator", "--broker", broker_url, "--fleet", fleet, "--bundle", str(bundle),
        "--state", str(work / f"{fleet}-agg.sqlite"), "--rounds", str(ROUNDS),
        "--min-clients", "1", "--deadline", "600", "--metrics-out", str(metrics), "--json",
    ], work / f"{fleet}-aggregator.log")  # fmt: skip
    device = [
        f"{GUEST_VENV}/bin/iomt", "edge", "--broker", broker_url, "--fleet", fleet,
        "--device-id", "pi0", "--bundle", f"{GUEST_WORK}/bundle",
        "--store", f"{GUEST_WORK}/pi0.sqlite", "--replay", f"{GUEST_WORK}/device.npz",
        "--speed", "0", "--max-rounds", str(ROUNDS), "--dp-local-noise", "0.3",
        "--dp-local-clip", "5.0", "--json",
    ]  # fmt: skip
    try:
        completed = subprocess.run(guest.command(device), capture_output=True, text=True,
                                   timeout=1500, check=False)  # fmt: skip
        aggregator_exit = aggregator.wait(timeout=120)
    finally:
        if aggregator.poll() is None:
            aggregator.kill()
            aggregator.wait()
    (work / f"{fleet}-device.log").write_text(completed.stdout + completed.stderr)
    events = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    done = (
        [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    )
    aggregated = [r for r in done if r.get("status") == "aggregated" and r.get("participants")]
    return RoundsRun(len(aggregated), completed.returncode, aggregator_exit, events)


@dataclass(frozen=True)
class BadInput:
    """One wrong invocation: its exit code and what it printed on stderr."""

    case: str
    exit_code: int
    stderr_lines: list[str]

    @property
    def one_line_error(self) -> bool:
        lines = self.stderr_lines
        return self.exit_code != 0 and len(lines) == 1 and "error" in lines[0]


def bad_inputs(guest: Guest, broker_url: str) -> list[BadInput]:
    """Missing bundle, wrong model (backbone bytes changed), unreachable broker: all at once."""
    base = [f"{GUEST_VENV}/bin/iomt", "edge", "--fleet", "f", "--device-id", "bad",
            "--replay", f"{GUEST_WORK}/device.npz", "--speed", "0", "--json"]  # fmt: skip
    # --json: the device's own event log goes to stdout, so stderr holds only the error
    cases = {
        "missing bundle": ["--broker", broker_url, "--bundle", f"{GUEST_WORK}/no-such-bundle",
                           "--store", "/tmp/bad1.sqlite"],
        "wrong model": ["--broker", broker_url, "--bundle", f"{GUEST_WORK}/corrupt-bundle",
                        "--store", "/tmp/bad2.sqlite"],
        "unreachable broker": ["--broker", "mqtt://127.0.0.1:9", "--bundle",
                               f"{GUEST_WORK}/bundle", "--store", "/tmp/bad3.sqlite"],
    }  # fmt: skip
    started = {
        case: subprocess.Popen(guest.command([*base, *extra]), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        for case, extra in cases.items()
    }  # fmt: skip
    results = []
    for case, process in started.items():
        _, stderr = process.communicate(timeout=600)
        lines = [line for line in stderr.splitlines() if line.strip() and not _noise(line)]
        results.append(BadInput(case, process.returncode, lines))
    return results


EMULATION_NOISE = (
    "INFO: Created TensorFlow Lite",  # the interpreter's banner, on a real Pi too
    "INFO: Initialized TensorFlow Lite",
    "Error in cpuinfo:",  # LiteRT finds no /sys CPU list in the emulated tree (see guest.py)
)


def _noise(line: str) -> bool:
    """Lines the interpreter prints by itself, not the command's error output."""
    return line.startswith(EMULATION_NOISE)


@dataclass(frozen=True)
class UnitCheck:
    """`systemd-analyze verify` on the service unit docs/edge-device.md shows."""

    verified: bool | None  # None: systemd-analyze is not installed here
    output: str


def unit_from_docs(docs: Path) -> str:
    """The ```ini block of docs/edge-device.md (the iomt-edge.service unit)."""
    text = docs.read_text()
    start = text.index("```ini\n") + len("```ini\n")
    block = text[start : text.index("```", start)]
    return "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines())


def verify_unit(guest: Guest, docs: Path) -> UnitCheck:
    """Verify the documented unit against the guest tree (its venv, its user `pi`, systemd)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return UnitCheck(None, "systemd-analyze is not installed on this machine")
    if not guest.host_path("/usr/lib/systemd/system/multi-user.target").exists():
        return UnitCheck(None, f"no systemd in the {guest.arch.debian} tree")
    unit = guest.host_path("/etc/systemd/system/iomt-edge.service")
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(unit_from_docs(docs) + "\n")
    completed = subprocess.run(
        [analyze, "verify", f"--root={guest.root}", "/etc/systemd/system/iomt-edge.service"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = (completed.stdout + completed.stderr).strip()
    return UnitCheck(completed.returncode == 0 and not output, output)
