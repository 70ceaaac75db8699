"""Crash-idempotency: a run killed anywhere, then rerun, gives exactly the tables of a run that never died.

Three stacks of real services (metastore, HiveServer2, luigid), each with its own state dir, run the same
two trading days with the same injected lines (a line for a product announced the next day, so a quarantine
retry releases it, and an exact duplicate):

- the reference runs ``python -m pipeline run`` once, uncrashed;
- the crash stack runs it again and again, each time dying at the next named crash point
  (``ECOM_CRASH_AT``, ``os._exit(137)``), then once to the end;
- the black-box stack is killed with SIGKILL at seeded random moments, then left to finish.

Every table of the three databases is then compared row for row over HiveServer2. Wall-clock columns
(when a row was written) differ between any two runs and are compared as "set or not".
"""

import contextlib
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from pipeline.io import crash
from pipeline.sources import replay
from tests.integration.conftest import ROOT, append_lines, separate_stack
from tests.integration.realdata import DAYS, INJECTED, fields, source_lines

pytestmark = pytest.mark.integration

REFERENCE = {"metastore": 19683, "hiveserver2": 20600, "luigid": 18682}
CRASHED = {"metastore": 19783, "hiveserver2": 20700, "luigid": 18782}
KILLED = {"metastore": 19883, "hiveserver2": 20800, "luigid": 18882}
DATABASES = ("ecommerce_db", "ecommerce_dw", "ecommerce_mart")
WALL_CLOCK = {
    "transactions_raw": {"ingested_at"},
    "transactions_quarantine": {"first_seen_at", "last_attempt_at", "resolved_at"},
    "batch_audit": {"started_at", "finished_at"},
    "dq_results": {"run_id", "checked_at"},
    "anomalies": {"detected_at", "status_changed_at"},
    "anomaly_status_log": {"changed_at"},
    "marts_ready": {"ready_at", "first_ready_at"},
    "sla_status": {"ready_at", "expected_finish_at", "evidence"},
    "sla_history": {"evidence"},
}
# (point@TaskFamily, n): die the n-th time the process reaches the point inside a task of that family; each run
# resumes where the last one died, first redoing the task that died (which may skip what it had published).
# In order: day 1's masters, its first window, the batch of its other windows (between two of the batch's
# markers), its marts; day 2's quarantine retry, fact, marts and checks.
CHAIN = [
    ("publish.written@ProductsSnapshot", 1), ("snapshot.published@ProductsSnapshot", 1),
    ("publish.swapped@ProductsSnapshot", 1), ("task.before_marker@DimProduct", 1),
    ("ingest.raw_published@TransactionBatch", 1), ("publish.partitions_added@TransactionBatch", 1),
    ("ingest.quarantine_published@TransactionBatch", 1), ("task.before_marker@TransactionBatch", 3),
    ("task.before_marker@MartHourlySales", 1), ("retry.raw_published@RetryQuarantine", 1),
    ("retry.quarantine_published@RetryQuarantine", 1), ("publish.swapped@FactSales", 1),
    ("task.before_marker@MartProductPerformance", 1), ("dq.results_published@DataQualityChecks", 1),
    ("task.before_marker@DataQualityChecks", 1),
]
KILL_SEED, KILLS = 20261127, 4
RUN = [sys.executable, "-m", "pipeline", "run", "--start", str(DAYS[0]), "--end", str(DAYS[-1])]


def land_days(stack) -> None:
    """The two days' feeds, with the injected lines in the second day's first window."""
    stack.luigi("ReplayDay", "--date", str(DAYS[1]))
    append_lines(f"file://{stack.state}/warehouse", DAYS[1], 0, [INJECTED, INJECTED])


def run_pipeline(stack, crash_at: str = "", timeout: float = 1200) -> subprocess.CompletedProcess:
    env = dict(stack.env)
    env.pop(crash.ENV, None)
    if crash_at:
        env[crash.ENV] = crash_at
    return subprocess.run(RUN, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def finish(stack) -> None:
    proc = run_pipeline(stack)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the driver's JVM keeps compiling through a run ([spark] driver_java_options reserves room for its code)
    assert "CodeCache is full" not in proc.stdout + proc.stderr


def published_tables(stack) -> dict[str, Counter]:
    """Every table of the three databases: a multiset of its rows, wall-clock columns as 'set or not', the
    stack's own state dir (in landed file paths) as ``<state>``."""
    out = {}
    for db in DATABASES:
        for row in stack.query(f"SHOW TABLES IN {db}"):
            table = row[1] if len(row) > 1 else row[0]
            columns = [r[0] for r in stack.query(f"DESCRIBE {db}.{table}") if r[0] and not r[0].startswith("#")]
            columns = list(dict.fromkeys(columns))
            volatile = WALL_CLOCK.get(table, set())
            select = ", ".join(f"{c} IS NOT NULL" if c in volatile else c for c in columns)
            rows = stack.query(f"SELECT {select} FROM {db}.{table}")
            out[f"{db}.{table}"] = Counter(tuple(v.replace(str(stack.state), "<state>") if isinstance(v, str) else v
                                                 for v in row) for row in rows)
    return out


def assert_same_tables(got: dict[str, Counter], expected: dict[str, Counter]) -> None:
    assert sorted(got) == sorted(expected)
    for table, rows in expected.items():
        missing, extra = rows - got[table], got[table] - rows
        assert not missing and not extra, (
            f"{table}: {sum(missing.values())} rows missing, {sum(extra.values())} extra; "
            f"e.g. missing {list(missing)[:2]}, extra {list(extra)[:2]}")


@contextlib.contextmanager
def landed_stack(tmp_path_factory, name: str, ports: dict):
    """A stack of its own with the two days' feeds landed."""
    with separate_stack(tmp_path_factory, name, ports) as stack:
        land_days(stack)
        yield stack


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    with landed_stack(tmp_path_factory, "reference", REFERENCE) as stack:
        finish(stack)
        yield published_tables(stack)


def test_reference_run_released_the_retried_line_once(reference):
    quarantine = [r for r in reference["ecommerce_db.transactions_quarantine"] if r[8] == INJECTED]
    assert len(quarantine) == 1 and quarantine[0][13] == 2  # one line, released on its second attempt
    raw_batches = Counter()
    for row, n in reference["ecommerce_db.transactions_raw"].items():
        raw_batches[row[-1]] += n
    audit = {r[0]: r for r in reference["ecommerce_db.batch_audit"]}
    for batch, rows in raw_batches.items():
        assert audit[batch][6] == rows, batch


@pytest.fixture(scope="module")
def crashed_stack(tmp_path_factory):
    with landed_stack(tmp_path_factory, "crashed", CRASHED) as stack:
        yield stack


def test_a_run_killed_at_every_crash_point_converges_to_the_reference(reference, crashed_stack):
    survived = []
    for point, nth in CHAIN:
        proc = run_pipeline(crashed_stack, f"{point}:{nth}")
        assert proc.returncode == crash.EXIT_CODE, (
            f"{point}:{nth} was not reached (exit {proc.returncode}); crashes survived so far: {survived}\n"
            + proc.stdout[-3000:] + proc.stderr[-3000:])
        survived.append(f"{point}:{nth}")
    finish(crashed_stack)
    assert_same_tables(published_tables(crashed_stack), reference)
    garbage_collection_keeps_live_versions_and_young_ones(reference, crashed_stack)


def garbage_collection_keeps_live_versions_and_young_ones(reference, crashed_stack):
    """Versions the metastore does not point at go once older than the retention, whatever their names:
    those the crashes left and stray ones; live ones stay even when a stray version's name sorts after them (a
    writer with a clock ahead). Part of the crash chain's test, which leaves the versions to collect."""
    root = crashed_stack.state / "warehouse" / "ecommerce_db.db"
    products = root / "products"
    live = (products / "_current").read_text().strip()
    ahead = products / "v99991231T235959999999_ffffff"
    old = products / "v20000101T000000000000_000000"
    staging = root / "transactions_raw" / "_staging" / "v20000101T000000000000_000001"
    for path in (ahead, old, staging):
        path.mkdir(parents=True)
        (path / "part-0.parquet").write_bytes(b"")
    two_hours_ago = time.time() - 7200
    for path in (old, staging):
        os.utime(path, (two_hours_ago, two_hours_ago))

    def gc(retention_s: int) -> dict:
        proc = subprocess.run([sys.executable, "-m", "pipeline", "gc", "--retention-s", str(retention_s)], cwd=ROOT,
                              env=crashed_stack.env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    gc(3600)
    assert ahead.exists() and (products / live).exists()
    assert not old.exists() and not staging.exists()
    gc(0)
    assert not ahead.exists() and (products / live).exists()
    for table_dir in root.iterdir():
        versions = [p for p in table_dir.iterdir() if p.name.startswith("v")]
        assert len(versions) <= 1, table_dir
    assert_same_tables(published_tables(crashed_stack), reference)


@pytest.fixture(scope="module")
def killed_stack(tmp_path_factory):
    with landed_stack(tmp_path_factory, "killed", KILLED) as stack:
        yield stack


def test_a_run_sigkilled_at_random_moments_converges_to_the_reference(reference, killed_stack):
    rng = random.Random(KILL_SEED)
    env = {k: v for k, v in killed_stack.env.items() if k != crash.ENV}
    kills = []
    for _ in range(KILLS):
        proc = subprocess.Popen(RUN, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        after = rng.uniform(8, 45)
        deadline = time.monotonic() + after
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills.append(round(after, 1))
        proc.wait()
    assert kills, "every run finished before its kill: nothing was tested"
    finish(killed_stack)
    assert_same_tables(published_tables(killed_stack), reference)


def test_two_local_scheduler_runs_of_one_day_both_land(killed_stack):
    """Two writers outside luigid, started together: the lock serializes them, both batches land."""
    day, windows = dt.date(2010, 12, 3), ("8", "12")
    killed_stack.luigi("ReplayDay", "--date", str(day))
    procs = [subprocess.Popen([sys.executable, "-m", "luigi", "--module", "pipeline.tasks.ingest", "TransactionBatch",
                               "--date", str(day), "--window", w, "--local-scheduler"], cwd=ROOT, env=killed_stack.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for w in windows]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for w, proc, out in zip(windows, procs, outputs, strict=True):
        assert proc.returncode == 0 and "This progress looks :)" in out, f"window {w}:\n{out[-3000:]}"
    by_window: dict[int, list[str]] = {int(w): [] for w in windows}
    for line in source_lines(day):
        hour = int(fields(line)[4][11:13]) // 4 * 4
        if hour in by_window:
            by_window[hour].append(line)
    audit = {r[0]: r[1:] for r in killed_stack.query(
        "SELECT batch_id, rows_received, rows_loaded, rows_quarantined, rows_duplicate FROM ecommerce_db.batch_audit")}
    raw = dict(killed_stack.query("SELECT batch_id, count(*) FROM ecommerce_db.transactions_raw GROUP BY batch_id"))
    products_versions = killed_stack.query(
        "SELECT count(*) FROM ecommerce_db.batch_audit WHERE batch_id = 'products_20101203'")
    assert products_versions == [(1,)]
    for hour, lines in by_window.items():
        batch = replay.batch_id(day, hour)
        received, loaded, quarantined, duplicate = audit[batch]
        assert (received, duplicate) == (len(lines), len(lines) - len(set(lines))), batch
        assert received == loaded + quarantined + duplicate and raw[batch] == loaded, batch


def test_every_crash_point_is_documented():
    doc = (ROOT / "docs" / "crash-safety.md").read_text()
    assert [p for p in crash.POINTS if f"`{p}`" not in doc] == []


def test_an_unknown_crash_point_is_refused():
    env = dict(os.environ, **{crash.ENV: "publish.nowhere"})
    proc = subprocess.run([sys.executable, "-c", "import pipeline.io.crash"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "unknown crash point 'publish.nowhere'" in proc.stderr
