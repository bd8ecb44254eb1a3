"""`python -m bench.pi_check [--arch arm64,armhf]`: the edge install on emulated Pi userlands.

Exit 0 when every check passed on every arch, 1 when one failed, 2 when this machine cannot
run ARM userlands (not root, or no binfmt_misc). Writes `bench/results/pi.json`.
"""

from __future__ import annotations

import argparse
import sys

from bench.pi_check.rootfs import ARCHES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pi_check", description=__doc__)
    parser.add_argument("--arch", default=",".join(ARCHES), help="arm64,armhf (default both)")
    parser.add_argument("--windows", type=int, default=1200, help="test windows to compare")
    parser.add_argument("--device-windows", type=int, default=48, help="windows the device replays")
    parser.add_argument("--out", help="results file (default bench/results/pi.json)")
    parser.add_argument("--can-run", action="store_true", help="only say whether it can run here")
    args = parser.parse_args(argv)
    from bench.pi_check.run import CheckOptions, can_run, run_checks

    problem = can_run()
    if args.can_run or problem is not None:
        print(f"pi-check cannot run here: {problem}" if problem else "pi-check can run here")
        return 2 if problem else 0
    arches = [a.strip() for a in args.arch.split(",") if a.strip()]
    unknown = [a for a in arches if a not in ARCHES]
    if unknown:
        parser.error(f"unknown arch {', '.join(unknown)} (known: {', '.join(ARCHES)})")
    options = CheckOptions(tuple(arches), args.windows, args.device_windows, args.out)
    return run_checks(options)


if __name__ == "__main__":
    sys.exit(main())
