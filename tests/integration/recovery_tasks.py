"""A Luigi worker for tests/integration/test_recovery.py: tasks that hold ``ecommerce_db_writer`` while they sleep.

``python -m tests.integration.recovery_tasks --port P --out DIR [--sleep S] [--recover] NAME...`` builds one
:class:`HoldWriter` per NAME against luigid on 127.0.0.1:P and prints one JSON line: the build's status, the
reasons :func:`pipeline.runtime.recovery.explain` gives, and (with ``--recover``) the pids of the workers taken
over before the build.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import luigi

from pipeline import config


class HoldWriter(luigi.Task):
    """Writes ``<out>/<name>.done`` after sleeping ``sleep_s``, holding one ``ecommerce_db_writer``."""

    name = luigi.Parameter()
    out = luigi.Parameter(significant=False)
    sleep_s = luigi.FloatParameter(default=0.0, significant=False)
    resources = {"ecommerce_db_writer": 1}

    def output(self):
        """The marker file of this name."""
        return luigi.LocalTarget(str(Path(self.out) / f"{self.name}.done"))

    def run(self):
        """Sleep, then write the marker."""
        time.sleep(self.sleep_s)
        with self.output().open("w") as fh:
            fh.write("done\n")


def main(argv: list[str] | None = None) -> int:
    """Build the named tasks (after the recovery with ``--recover``); print the outcome as JSON."""
    from pipeline.runtime import recovery

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--recover", action="store_true")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    taken = []
    if args.recover:
        report = recovery.recover(f"http://127.0.0.1:{args.port}", settings=config.recovery(
            wait_for_live_holders_s=10, poll_s=1))
        taken = [{"task": t.task_id, "worker": t.worker, "pid": t.pid} for t in report.taken_over]
    result = luigi.build([HoldWriter(name=n, out=args.out, sleep_s=args.sleep) for n in args.names],
                         scheduler_host="127.0.0.1", scheduler_port=args.port, workers=1, detailed_summary=True)
    ok = result.status in (luigi.execution_summary.LuigiStatusCode.SUCCESS,
                           luigi.execution_summary.LuigiStatusCode.SUCCESS_WITH_RETRY)
    print(json.dumps({"status": result.status.name, "reasons": [] if ok else recovery.explain(result),
                      "taken_over": taken}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
