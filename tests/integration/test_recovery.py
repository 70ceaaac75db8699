"""Recovery against a real luigid: a SIGKILLed worker's task and resource are taken over at once, not after
luigid's 60 s worker_disconnect_delay; a live worker's task is waited for, then left to the build."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline import config
from pipeline.runtime import recovery

pytestmark = pytest.mark.integration

PORT = 18482
URL = f"http://127.0.0.1:{PORT}"
ROOT = config.PROJECT_ROOT


def _env(cfg: Path) -> dict:
    """Environment of the luigid and worker subprocesses: only the test's Luigi config, the repo importable."""
    return dict(os.environ, LUIGI_CONFIG_PATH=str(cfg), PYTHONPATH=str(ROOT))


def _wait(predicate, timeout_s: float, what: str):
    """Poll ``predicate`` every 0.2 s until it returns something truthy; fail after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def _answers() -> bool:
    """Whether luigid answers an RPC on the test port."""
    try:
        with urllib.request.urlopen(f"{URL}/api/worker_list", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
def luigid(tmp_path):
    """A luigid on 127.0.0.1:18482 with [scheduler] worker_disconnect_delay = 60 and one ecommerce_db_writer."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", PORT)) == 0:
            pytest.fail(f"port {PORT} is already in use")
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text("[scheduler]\nworker_disconnect_delay = 60\nretry_delay = 60\nrecord_task_history = false\n"
                   f"state_path = {tmp_path / 'state.pickle'}\n[resources]\necommerce_db_writer = 1\n")
    with open(tmp_path / "luigid.log", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.engine.scheduler_server", "--port", str(PORT),
                                 "--address", "127.0.0.1"], cwd=tmp_path,
                                env=_env(cfg), stdout=subprocess.DEVNULL, stderr=err)
    try:
        _wait(_answers, 20, "luigid to answer")
        yield {"dir": tmp_path, "cfg": cfg}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _worker(luigid: dict, *args: str) -> subprocess.Popen:
    """A Luigi worker subprocess building HoldWriter tasks against the test luigid."""
    argv = [sys.executable, "-m", "tests.integration.recovery_tasks", "--port", str(PORT),
            "--out", str(luigid["dir"] / "out"), *args]
    with open(luigid["dir"] / "workers.log", "a") as err:
        return subprocess.Popen(argv, cwd=luigid["dir"], env=_env(luigid["cfg"]), stdout=subprocess.PIPE,
                                stderr=err, text=True)


def _finish(proc: subprocess.Popen, timeout_s: float) -> dict:
    """Wait for a worker subprocess and return the JSON line it printed, with its exit code."""
    out, _ = proc.communicate(timeout=timeout_s)
    return dict(json.loads(out.strip().splitlines()[-1]), rc=proc.returncode)


def _running_on(pid: int) -> list[str]:
    """Ids of the tasks luigid shows RUNNING on the worker with this pid."""
    scheduler = recovery.connect(URL, 5)
    try:
        return [task_id for w in scheduler.worker_list() if w.get("pid") == pid for task_id in w["running"]]
    finally:
        scheduler.close()


def test_dead_worker_taken_over_live_worker_waited_for(luigid, caplog):
    (luigid["dir"] / "out").mkdir()
    holder = _worker(luigid, "--sleep", "120", "first")
    try:
        running = _wait(lambda: _running_on(holder.pid), 20, "HoldWriter(first) RUNNING in luigid")
        assert len(running) == 1

        caplog.set_level("WARNING", logger="pipeline.runtime.recovery")
        live = recovery.recover(URL, settings=config.recovery(wait_for_live_holders_s=2, poll_s=0.5))
        assert live.waited_s >= 2   # it waited for the live holder, up to its limit
        assert live.taken_over == []
        assert [(t.task_id, t.pid, verdict) for t, verdict in live.still_held] == [
            (running[0], holder.pid, recovery.ALIVE)]
        assert f"pid {holder.pid} on {socket.gethostname()}, alive" in caplog.text
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        holder.stdout.close()
    assert _running_on(holder.pid) == running

    control = _finish(_worker(luigid, "first", "second"), 30)
    assert control["rc"] == 1 and control["status"] == "NOT_RUN"
    assert any("being run by another worker: HoldWriter(name=first)" in r for r in control["reasons"])
    assert any("not granted run permission" in r and "HoldWriter(name=second)" in r for r in control["reasons"])

    after = _finish(_worker(luigid, "--recover", "first", "second"), 45)
    assert after["rc"] == 0, after
    assert after["status"] == "SUCCESS"   # without the takeover this build ends NOT_RUN, as the control showed
    assert [(t["task"], t["pid"]) for t in after["taken_over"]] == [(running[0], holder.pid)]
    assert {p.name for p in (luigid["dir"] / "out").iterdir()} == {"first.done", "second.done"}
