"""`python -m bench PART [options]`: run one benchmark part, or `all` of them and the report.

    python -m bench federation --rounds 10      # one part, its own options after the name
    python -m bench all [--skip edge,dp]       # every registered part, then docs/benchmarks.md
    python -m bench report                      # only regenerate docs/benchmarks.md

A part is a module with `main(argv: list[str] | None) -> int` that writes
`bench/results/NAME.json` (`bench.common.write_results`). Register it in `PARTS` below; a
part whose module does not exist yet is listed as missing and skipped by `all`. How a part's
results appear in the docs: see `bench/report.py`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from bench.common import watch_bundle, write_results


@dataclass(frozen=True)
class Part:
    """One benchmark part: its name, what it measures, and the module (or function) running it."""

    name: str
    description: str
    module: str = ""
    runner: Callable[[list[str]], int] | None = None

    def available(self) -> bool:
        return self.runner is not None or importlib.util.find_spec(self.module) is not None

    def run(self, argv: list[str]) -> int:
        if self.runner is not None:
            return self.runner(argv)
        return int(importlib.import_module(self.module).main(argv) or 0)


PARTS: dict[str, Part] = {}


def register(part: Part) -> None:
    """Add a part; `all` runs parts in registration order."""
    PARTS[part.name] = part


def run_edge(argv: list[str]) -> int:
    """`bench.edge` on the cached watch bundle unless `--bundle`/`--data` are given."""
    from bench import edge

    if "--bundle" not in argv:
        prepared = watch_bundle()
        argv = ["--bundle", str(prepared.bundle), "--data", str(prepared.data), *argv]
    return edge.main(argv)


def run_bridge(argv: list[str]) -> int:
    """`bench.bridge` (parses `sys.argv` itself; writes bench/results/bridge.json)."""
    from bench import bridge

    with _argv("python -m bench bridge", argv):
        bridge.main()
    return 0


def run_dp(argv: list[str]) -> int:
    """`bench.dp_watch` on the cached watch bundle; its JSON lines become results/dp.json."""
    from bench import dp_watch

    if "--bundle" not in argv:
        prepared = watch_bundle()
        argv = ["--bundle", str(prepared.bundle), "--data", str(prepared.data), *argv]
    captured = _Tee(sys.stdout)
    with _argv("python -m bench dp", argv), contextlib.redirect_stdout(captured):
        dp_watch.main()
    rows = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    for row in rows:  # no noise: epsilon is infinite, which strict JSON cannot hold
        if not math.isfinite(row.get("epsilon", 0.0)):
            row["epsilon"] = None
    print(f"wrote {write_results('dp', {'settings': rows, 'argv': argv})}")
    return 0


class _Tee(io.StringIO):
    """Keeps what is printed and still shows it."""

    def __init__(self, shown: TextIO) -> None:
        super().__init__()
        self._shown = shown

    def write(self, text: str) -> int:
        self._shown.write(text)
        return super().write(text)


@contextlib.contextmanager
def _argv(program: str, argv: list[str]):
    saved = sys.argv
    sys.argv = [program, *argv]
    try:
        yield
    finally:
        sys.argv = saved


register(Part("edge", "edge runtime beside TensorFlow", runner=run_edge))
register(Part("federation", "bytes, int8 vs float32, Flower aggregate", "bench.federation"))
register(Part("bridge", "model upload over a pty at two baud rates", runner=run_bridge))
register(Part("dp", "accuracy against epsilon, DP-FedAvg", runner=run_dp))
register(Part("flower", "same task against Flower", "bench.flower"))
register(Part("fleet", "100 / 1,000 / 10,000 devices; 1, 2, 4 workers", "bench.fleet_scale"))
register(Part("ppg", "heart rate from real and simulated PPG", "bench.ppg"))
register(Part("firmware", "C model runner on Cortex-M4 (QEMU)", "bench.firmware"))
register(Part("hostile", "3,000 hostile messages against a real aggregator", "bench.hostile"))
register(Part("cluster", "3-node NATS cluster, a node killed mid-round", "bench.cluster"))
register(Part("async", "time to accuracy: sync vs async rounds, 30% slow devices",
              "bench.async_rounds"))  # fmt: skip


def run_all(argv: list[str]) -> int:
    """Every available part in order (`--skip a,b` leaves some out), then the report."""
    skip = set(argv[argv.index("--skip") + 1].split(",")) if "--skip" in argv else set()
    failed = []
    for part in PARTS.values():
        if part.name in skip or not part.available():
            print(f"== {part.name}: skipped", file=sys.stderr)
            continue
        print(f"== {part.name}: {part.description}", file=sys.stderr)
        if part.run([]) != 0:
            failed.append(part.name)
    run_report([])
    if failed:
        print(f"failed parts: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def run_report(argv: list[str]) -> int:
    from bench.report import write_report

    print(f"wrote {write_report(list(PARTS.values()))}")
    return 0


def _usage() -> str:
    lines = ["usage: python -m bench PART [options]", "", "parts:"]
    for part in PARTS.values():
        state = "" if part.available() else "  (not built yet)"
        lines.append(f"  {part.name:<11} {part.description}{state}")
    lines += ["  all         every part above, then docs/benchmarks.md",
              "  report      regenerate docs/benchmarks.md from bench/results/*.json"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "all":
        return run_all(rest)
    if name == "report":
        return run_report(rest)
    part = PARTS.get(name)
    if part is None or not part.available():
        print(f"unknown or unbuilt part {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return part.run(rest)


if __name__ == "__main__":
    sys.exit(main())
