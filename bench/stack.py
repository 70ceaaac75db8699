"""What the benchmarks share: a throwaway embedded stack on spare ports, and measured subprocess runs."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
PORTS = {"metastore": 39083, "hiveserver2": 40000, "luigid": 38082}


@dataclass
class Stack:
    """A running bench stack: its state dir, the environment its commands run with, how long services took."""

    state: Path
    env: dict
    services_start_s: float


class BenchFailure(RuntimeError):
    """A command a benchmark depends on failed; the message ends with the tail of its output."""


@dataclass
class Measured:
    """One measured command: wall seconds, peak RSS of its process tree (KiB) and its completed process."""

    wall_s: float
    peak_kib: int
    proc: subprocess.CompletedProcess

    @property
    def peak_mib(self) -> int:
        """Peak RSS in MiB."""
        return round(self.peak_kib / 1024)


@contextlib.contextmanager
def bench_stack(keep: bool = False, reuse: Path | None = None, replay: bool = True):
    """Metastore, HiveServer2 and luigid on the bench ports with a fresh state dir (removed afterwards), or on
    the state dir a ``keep`` run left (``reuse``: kept afterwards, services restarted with the current code).
    ``replay=False``: the calendar is the landed feeds only (synthetic data)."""
    if reuse is not None:
        keep, state = True, reuse.resolve()
        if not (state / "bench.cfg").exists():
            raise SystemExit(f"{state} is not a kept bench stack (no bench.cfg)")
    else:
        state = Path(tempfile.mkdtemp(prefix="ecom-bench-", dir=ROOT / "var" if (ROOT / "var").exists() else None))
    from pipeline import config
    from pipeline.engine import services

    overlay = state / "bench.cfg"
    overlay.write_text(config.stack_overlay(state, PORTS, f"[replay]\nenabled = {str(replay).lower()}\n"))
    env = dict(os.environ, **{config.OVERLAY_ENV: str(overlay)})
    os.environ.update(env)

    config.load_profile()
    try:
        t0 = time.monotonic()
        if reuse is not None:
            services.stop_all()
        services.start_all()
        yield Stack(state, env, time.monotonic() - t0)
    finally:
        if not keep:
            services.stop_all()
            shutil.rmtree(state, ignore_errors=True)


def luigi_cmd(module: str, *task: str) -> list[str]:
    """The command line of one Luigi task through luigid, one worker."""
    return [sys.executable, "-m", "luigi", "--module", module, *task, "--workers", "1"]


def succeeded(proc: subprocess.CompletedProcess) -> bool:
    """Luigi's own verdict: exit 0 and its "looks :)" summary."""
    return proc.returncode == 0 and "This progress looks :)" in proc.stdout + proc.stderr


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_measured(cmd: list[str], env: dict) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``cmd`` from the project root; wall seconds, peak RSS of its process tree (KiB, sampled every 0.5 s)
    and the completed process with its output."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        """Track the peak RSS of the process tree until the command exits."""
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    return time.monotonic() - t0, peak[0], subprocess.CompletedProcess(cmd, proc.returncode, out, err)




def _tail(proc: subprocess.CompletedProcess, chars: int = 3000) -> str:
    """The end of a command's output, for an error message."""
    return (proc.stdout[-chars:] + "\n" + proc.stderr[-chars:]).strip()


ERROR_LINE = re.compile(r"([\w.]*(?:Error|Exception)\b:.*)")


def reason(proc: subprocess.CompletedProcess) -> str:
    """The last error a failed command printed (``java.lang.OutOfMemoryError: Java heap space``), or its exit
    code when it printed none."""
    for line in reversed((proc.stdout + "\n" + proc.stderr).splitlines()):
        found = ERROR_LINE.search(line)
        if found:
            return found.group(1).strip()[:200]
    return f"exit code {proc.returncode}"


def run_task(stack: Stack, module: str, *task: str) -> Measured:
    """Run one Luigi task through luigid, measured; ``BenchFailure`` unless Luigi says it succeeded."""
    log.info("luigi %s", " ".join(task))
    wall, peak, proc = run_measured(luigi_cmd(module, *task), stack.env)
    if not succeeded(proc):
        raise BenchFailure(f"{task[0]}: {reason(proc)}\n{_tail(proc)}")
    return Measured(wall, peak, proc)


def run_pipeline(stack: Stack, *args: str) -> Measured:
    """Run ``python -m pipeline ARGS``, measured; ``BenchFailure`` when it exits non-zero."""
    log.info("python -m pipeline %s", " ".join(args))
    wall, peak, proc = run_measured([sys.executable, "-m", "pipeline", *args], stack.env)
    if proc.returncode != 0:
        raise BenchFailure(f"python -m pipeline {args[0]}: {reason(proc)}\n{_tail(proc)}")
    return Measured(wall, peak, proc)


def restart_service(name: str) -> float:
    """Stop and start one service of the current stack (``hiveserver2``...); seconds until it is healthy."""
    from pipeline.engine import services

    svc = next(s for s in services.all_services() if s.name == name)
    svc.stop()
    t0 = time.monotonic()
    svc.start()
    return time.monotonic() - t0
