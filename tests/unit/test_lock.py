"""The warehouse lock between real processes: a second writer waits, names the holder, or takes over."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import config
from pipeline.io import lock

HOLDER = Path(__file__).with_name("lock_holder.py")


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(f"[warehouse]\nroot = {tmp_path / 'warehouse'}\nlock_timeout_s = 2\n")
    monkeypatch.setenv(config.OVERLAY_ENV, str(overlay))
    config.load_profile()
    yield tmp_path / "warehouse"
    import luigi.configuration

    luigi.configuration.get_config().remove_section("warehouse")
    luigi.configuration.get_config()._config_paths.remove(str(overlay))


def holder(seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(HOLDER), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_times_out_naming_the_holder(warehouse):
    proc = holder(30)
    try:
        t0 = time.monotonic()
        with pytest.raises(lock.WarehouseLockTimeout) as err, lock.warehouse_lock("python -m pipeline anomaly"):
            pass
        assert time.monotonic() - t0 >= 2
        message = str(err.value)
        assert f"pid {proc.pid}" in message and "TransactionBatch(date=2010-12-01, window=8)" in message
        assert "since " in message
    finally:
        proc.kill()
        proc.wait()


def test_a_waiting_writer_gets_the_lock_when_the_holder_finishes(warehouse):
    proc = holder(1)
    with lock.warehouse_lock("second", timeout_s=30):
        record = json.loads((warehouse / "_lock" / "warehouse.lock").read_text())
        assert record["pid"] == os.getpid() and record["task"] == "second"
    proc.wait()


def test_a_killed_holder_does_not_block_the_next_writer(warehouse):
    proc = holder(60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with lock.warehouse_lock("next", timeout_s=0):
        record = json.loads((warehouse / "_lock" / "warehouse.lock").read_text())
        assert record["task"] == "next"


def test_the_lock_is_reentrant_within_a_process(warehouse):
    with lock.warehouse_lock("outer"), lock.warehouse_lock("inner", timeout_s=0):
        record = json.loads((warehouse / "_lock" / "warehouse.lock").read_text())
        assert record["task"] == "outer"
    proc = holder(0)
    proc.wait()
    assert proc.returncode == 0
