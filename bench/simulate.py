"""Simulation benchmark: how long simulated days of unattended operation take on this machine.

    python -m bench.simulate [--start 2010-12-09] [--days 14] [--speed 60] [--late ...] [--missing ...] [--keep]

On a fresh stack (bench ports): ``make run``'s demo window first (``python -m pipeline run``), then
``python -m pipeline simulate`` of the days after it, with the given late and missing feeds (default: the
products of the third day at 11:30, the 12-16h window of the sixth day missing). Prints the simulation's
report and, last, one JSON summary: wall seconds of the demo run and of the simulated days, per simulated
day, and the job counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time

from bench.stack import ROOT, Measured, Stack, bench_stack, run_pipeline


def demo_run(stack: Stack, *args: str) -> Measured:
    """``make run``'s command, ``python -m pipeline run [ARGS]`` (the demo window by default), on ``stack``,
    measured; ``BenchFailure`` when it fails."""
    return run_pipeline(stack, "run", *args)


def main(argv: list[str] | None = None) -> int:
    """Command line: the demo window, then the simulated days, on a fresh bench stack."""
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2010, 12, 9))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--late", action="append")
    parser.add_argument("--missing", action="append")
    parser.add_argument("--keep", action="store_true", help="keep the bench stack's state dir")
    args = parser.parse_args(argv)
    late = args.late if args.late is not None else [f"products@{args.start + dt.timedelta(days=3)}=11:30"]
    missing = args.missing if args.missing is not None else [f"transactions@{args.start + dt.timedelta(days=6)}T12"]
    with bench_stack(keep=args.keep) as stack:
        demo_s = demo_run(stack).wall_s
        cmd = [sys.executable, "-m", "pipeline", "simulate", "--start", str(args.start), "--days", str(args.days),
               "--speed", str(args.speed), *(f"--late={x}" for x in late), *(f"--missing={x}" for x in missing)]
        t0 = time.monotonic()
        sim = subprocess.run(cmd, cwd=ROOT, env=stack.env, capture_output=True, text=True)
        sim_s = time.monotonic() - t0
        print(sim.stdout)
        if sim.returncode != 0:
            raise SystemExit(f"the simulation failed:\n{sim.stderr[-3000:]}")
        report = json.loads(open(sim.stdout.strip().splitlines()[-1].removeprefix("report: ")).read())
        summary = {"demo_run_s": round(demo_s, 1), "simulate_command_s": round(sim_s, 1),
                   "simulated_s": report["simulated_wall_s"], "calendar_days": args.days,
                   "business_days": report["business_days"],
                   "simulated_s_per_business_day": round(report["simulated_wall_s"] / report["business_days"], 1),
                   "speed": args.speed, "late": late, "missing": missing, "jobs": report["jobs"],
                   "states": {r["day"]: r["sla"] for r in report["report"]}, "state_dir": str(stack.state)}
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
