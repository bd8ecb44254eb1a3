"""pi-check from start to end: x86 baseline, then per arch install, probe, rounds, bad input.

Everything the check measures goes into `bench/results/pi.json`; what it decides (pass or
fail per arch, and why) is printed and stored with it.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import results_path, write_results
from bench.pi_check import device_checks
from bench.pi_check.edge_venv import build_wheel, edge_venv
from bench.pi_check.guest import GUEST_VENV, Guest, install_edge
from bench.pi_check.rootfs import ARCHES, binfmt_problem, build_rootfs, cache_root, is_complete
from bench.pi_check.rootfs import rootfs_path as cached_rootfs_path
from bench.pi_check.workload import Workload, prepare_workload

MIN_ARGMAX_AGREEMENT = 0.999
X86_PROBE_RUNS = 3
PROBE = Path(__file__).resolve().with_name("probe.py")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "edge-device.md"
TOOLS = ("debootstrap", "unshare", "chroot")


@dataclass(frozen=True)
class CheckOptions:
    """Which arches, how many windows, where the results go."""

    arches: tuple[str, ...]
    windows: int
    device_windows: int
    out: str | None = None


def can_run() -> str | None:
    """Why this machine cannot run pi-check, or None."""
    from aggregator.broker import find_mosquitto

    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (make pi-deps)"
    if find_mosquitto() is None:
        return "mosquitto is not installed"
    return binfmt_problem()


def _say(message: str) -> None:
    print(f"pi-check: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Baseline:
    """The same probe in the x86 edge-only venv: medians over a few runs, outputs of one."""

    run: device_checks.ProbeRun
    startup_s: float
    rss_mb: float


def x86_baseline(venv: Path, workload: Workload, work: Path) -> Baseline:
    runs = [
        device_checks.probe_on_host(
            venv, PROBE, workload.bundle, workload.windows, work / f"{i}.npz"
        )
        for i in range(X86_PROBE_RUNS)
    ]
    startup = statistics.median(r.startup_s for r in runs)
    rss = statistics.median(float(r.report["peak_rss_mb"]) for r in runs)
    return Baseline(runs[0], round(startup, 3), round(rss, 1))


def set_up_arch(name: str, wheel: Path, work: Path) -> tuple[Guest | None, dict[str, Any]]:
    """Root filesystem (cached or debootstrapped) and the documented edge install in it."""
    arch = ARCHES[name]
    result: dict[str, Any] = {"installed": False}
    started = time.monotonic()
    try:
        cached = is_complete(cached_rootfs_path(arch))
        _say(f"{name}: root filesystem ({'cached' if cached else 'debootstrap, cold'})")
        root = build_rootfs(arch, work / f"rootfs-{name}.log")
        result["rootfs"] = {"cached": cached, "seconds": round(time.monotonic() - started, 1)}
        guest = Guest(arch, root)
        guest.prepare_system()
        guest.copy_in({wheel.name: wheel})
        _say(f"{name}: pip install '{wheel.name}[edge]'")
        install = install_edge(guest, wheel)
        result["installed"] = True
        result["install"] = asdict(install)
        _describe_install(guest, result)
    except Exception as exc:  # recorded and reported: one arch failing must not hide the other
        result["error"] = f"{type(exc).__name__}: {exc}"
        return None, result
    return guest, result


@dataclass(frozen=True)
class DeviceWork:
    """What the device checks of every arch share."""

    workload: Workload
    baseline: Baseline
    broker_url: str
    work: Path


def check_arch(name: str, set_up: Future[tuple[Guest | None, dict[str, Any]]], shared: DeviceWork,
               started: float) -> dict[str, Any]:  # fmt: skip
    """The device checks in one userland once its install is done; failures recorded."""
    guest, result = set_up.result()
    baseline, workload = shared.baseline, shared.workload
    result.update(x86_rss_mb=baseline.rss_mb, x86_startup_s=baseline.startup_s)
    try:
        if guest is not None:
            guest.copy_in({"probe.py": PROBE, "bundle": workload.bundle,
                           "windows.npz": workload.windows, "device.npz": workload.device_data,
                           "corrupt-bundle": workload.corrupt_bundle})  # fmt: skip
            _say(f"{name}: backbone on {len(np.load(workload.windows)['y'])} test windows")
            _probe(guest, baseline, result)
            _say(f"{name}: two federated rounds")
            _rounds(guest, shared.broker_url, workload, shared.work, result)
            _say(f"{name}: bad input, the documented systemd unit")
            _bad_input(guest, shared.broker_url, result)
            unit = device_checks.verify_unit(guest, DOCS)
            result["systemd_unit"] = {"verified": unit.verified, "output": unit.output}
    except Exception as exc:  # recorded and reported: one arch failing must not hide the other
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["seconds"] = round(time.monotonic() - started, 1)
    result["failures"] = failures(result)
    _report_arch(name, result, shared.work)
    return result


def _describe_install(guest: Guest, result: dict[str, Any]) -> None:
    version = guest.run([f"{GUEST_VENV}/bin/iomt", "edge", "--version"], 600)
    result["backend"] = version.strip().rsplit(" ", 1)[-1]
    script = "import numpy, platform, sys; print(numpy.__version__, platform.machine(), " \
             "sys.version.split()[0])"  # fmt: skip
    numpy_version, machine, python = guest.run([f"{GUEST_VENV}/bin/python", "-c", script],
                                               600).split()  # fmt: skip
    result.update(numpy=numpy_version, machine=machine, python=python)


def _probe(guest: Guest, baseline: Baseline, result: dict[str, Any]) -> None:
    run = device_checks.probe_in_guest(guest, timeout_s=3600)
    agreement = device_checks.compare(run, baseline.run)
    rss = float(run.report["peak_rss_mb"])
    result.update(
        argmax_agreement=agreement.argmax_agreement,
        bit_identical_share=agreement.bit_identical_share,
        windows=agreement.windows,
        rss_mb=rss,
        startup_s=run.startup_s,
        rss_ratio=round(rss / baseline.rss_mb, 2),
        startup_ratio=round(run.startup_s / baseline.startup_s, 2),
        probe_backend=run.report["backend"],
        inference_s=run.report["total_s"],
    )


def _rounds(guest: Guest, url: str, workload: Workload, work: Path, result: dict[str, Any]) -> None:
    rounds = device_checks.federated_rounds(guest, url, workload.bundle, work)
    private = [e for e in rounds.device_events if e.get("event") == "dp_local"]
    stop = [e for e in rounds.device_events if e.get("event") == "stop"]
    result.update(
        rounds_completed=rounds.rounds_completed,
        device_exit=rounds.device_exit,
        aggregator_exit=rounds.aggregator_exit,
        rounds_acked=stop[-1]["rounds_acked"] if stop else 0,
        dp_local_epsilon=[e["epsilon"] for e in private],
    )


def _bad_input(guest: Guest, url: str, result: dict[str, Any]) -> None:
    checks = device_checks.bad_inputs(guest, url)
    result["bad_input"] = {
        c.case: {"exit": c.exit_code, "one_line_error": c.one_line_error, "stderr": c.stderr_lines}
        for c in checks
    }


def failures(result: dict[str, Any]) -> list[str]:
    """Why an arch fails the check (empty: it passes)."""
    found = [result["error"]] if "error" in result else []
    if not result.get("installed"):
        found.append("the edge install failed")
    if result.get("argmax_agreement", 0.0) < MIN_ARGMAX_AGREEMENT:
        found.append(f"argmax agreement {result.get('argmax_agreement')} < {MIN_ARGMAX_AGREEMENT}")
    if result.get("rounds_completed", 0) < device_checks.ROUNDS or result.get("device_exit"):
        found.append(f"rounds completed {result.get('rounds_completed', 0)}, device exit "
                     f"{result.get('device_exit')}")  # fmt: skip
    if result.get("systemd_unit", {}).get("verified") is False:
        found.append(f"systemd-analyze verify: {result['systemd_unit']['output']}")
    for case, outcome in result.get("bad_input", {"(not run)": {"one_line_error": False}}).items():
        if not outcome["one_line_error"]:
            found.append(f"bad input, {case}: not a one-line error ({outcome.get('stderr')})")
    return found


def run_checks(options: CheckOptions) -> int:
    """Both arches side by side: their emulated work is single-threaded, the machine has 2 cores."""
    from aggregator.broker import LocalBroker

    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="iomt-pi-check-") as temporary,
        ThreadPoolExecutor(max_workers=len(options.arches)) as pool,
    ):
        work = Path(temporary)
        wheel = build_wheel(work / "wheel")
        set_ups = {
            name: pool.submit(set_up_arch, name, wheel.path, work) for name in options.arches
        }
        _say("x86 edge-only venv, bundle, x86 baseline")
        venv = edge_venv(wheel)
        workload = prepare_workload(cache_root(), work / "workload", options.windows,
                                    options.device_windows)  # fmt: skip
        baseline = x86_baseline(venv, workload, work)
        with LocalBroker() as broker:
            shared = DeviceWork(workload, baseline, broker.url, work)
            checks = {name: pool.submit(check_arch, name, set_ups[name], shared, started)
                      for name in options.arches}  # fmt: skip
            results = {name: check.result() for name, check in checks.items()}
    x86 = {key: baseline.run.report[key] for key in ("backend", "numpy", "windows")}
    summary = {"arches": results, "seconds": round(time.monotonic() - started, 1), "x86": x86,
               "min_argmax_agreement": MIN_ARGMAX_AGREEMENT}  # fmt: skip
    path = write_results("pi", summary, Path(options.out) if options.out else results_path("pi"))
    failed = [name for name, result in results.items() if result["failures"]]
    _say(f"wrote {path} in {summary['seconds']} s; " + (f"FAILED: {', '.join(failed)}" if failed
                                                        else "all checks passed"))  # fmt: skip
    return 1 if failed else 0


def _report_arch(name: str, result: dict[str, Any], work: Path) -> None:
    shown = ("backend", "numpy", "rounds_completed", "argmax_agreement", "bit_identical_share",
             "startup_ratio", "rss_ratio")  # fmt: skip
    figures = {k: result.get(k) for k in shown}
    _say(f"{name}: {figures} in {result['seconds']} s")
    for failure in result["failures"]:
        _say(f"{name}: FAIL {failure}")
    if result["failures"]:
        for log in sorted(work.glob(f"pi-{name}-*.log")):
            _say(f"--- {log.name}\n{log.read_text()[-3000:]}")
