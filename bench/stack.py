"""What the benchmarks share: a throwaway embedded stack on spare ports, and measured subprocess runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTS = {"metastore": 29083, "hiveserver2": 30000, "luigid": 28082}


@dataclass
class Stack:
    state: Path
    env: dict
    services_start_s: float


@contextlib.contextmanager
def bench_stack(keep: bool = False, reuse: Path | None = None):
    """Metastore, HiveServer2 and luigid on the bench ports with a fresh state dir (removed afterwards), or on
    the state dir a ``keep`` run left (``reuse``: kept afterwards, services restarted with the current code)."""
    if reuse is not None:
        keep, state = True, reuse.resolve()
        if not (state / "bench.cfg").exists():
            raise SystemExit(f"{state} is not a kept bench stack (no bench.cfg)")
    else:
        state = Path(tempfile.mkdtemp(prefix="ecom-bench-", dir=ROOT / "var" if (ROOT / "var").exists() else None))
    overlay = state / "bench.cfg"
    overlay.write_text(
        f"[state]\ndir = {state}\n[metastore]\nuri = thrift://127.0.0.1:{PORTS['metastore']}\n"
        f"[hiveserver2]\nport = {PORTS['hiveserver2']}\n[scheduler_ui]\nport = {PORTS['luigid']}\n"
        f"[core]\nscheduler_port = {PORTS['luigid']}\n"
    )
    env = dict(os.environ, ECOM_CONFIG_OVERLAY=str(overlay))
    os.environ.update(env)
    from pipeline import config, services

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
    return [sys.executable, "-m", "luigi", "--module", module, *task, "--workers", "1"]


def succeeded(proc: subprocess.CompletedProcess) -> bool:
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
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    return time.monotonic() - t0, peak[0], subprocess.CompletedProcess(cmd, proc.returncode, out, err)


