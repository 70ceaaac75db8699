"""Invalidating one date of the daily graph: which tasks the planner picks from a given task on, what it refuses,
and what the command does to a warehouse of plain marker files (no services: the walk only calls ``requires()``
and the command only reads and removes markers and writes the note)."""

import datetime as dt
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import luigi
import luigi.configuration
import pytest

from pipeline import clock, config
from pipeline.runtime import invalidate
from pipeline.tasks import ingest
from pipeline.tasks.base import TableForDate
from pipeline.tasks.marts import MartDailySales
from pipeline.tasks.ready import DataQualityChecks, MartsReady
from pipeline.tasks.star import CustomerSalesDaily

DAY = dt.date(2010, 12, 2)
NEXT = dt.date(2010, 12, 3)
PUBLISHED_AT = "2010-12-03 00:15:00"


def families(tasks) -> list[str]:
    return [t.task_family for t in tasks]


@pytest.fixture
def warehouse(tmp_path):
    """An empty file:// warehouse and state dir under tmp_path, for this process and for subprocesses."""
    config.load_profile()
    cfg = luigi.configuration.get_config()
    saved = {(s, k): cfg.get(s, k, None) for s, k in (("warehouse", "root"), ("warehouse", "lock_timeout_s"),
                                                      ("state", "dir"))}
    root, state = tmp_path / "warehouse", tmp_path / "state"
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(f"[state]\ndir = {state}\n[warehouse]\nroot = {root}\nlock_timeout_s = 2\n")
    cfg.set("warehouse", "root", str(root))
    cfg.set("warehouse", "lock_timeout_s", "2")
    cfg.set("state", "dir", str(state))
    ingest.source_days.cache_clear()
    yield root, dict(os.environ, **{config.OVERLAY_ENV: str(overlay)})
    for (section, key), value in saved.items():
        if value is None:
            cfg.remove_option(section, key)
        else:
            cfg.set(section, key, value)
    ingest.source_days.cache_clear()


def publish_all(root: Path, day: dt.date) -> dict[str, str]:
    """Marker files for every table task of ``day``'s graph and of the next date, as a finished run leaves them.
    Returns each marker's path under ``_markers`` with its content."""
    written = {}
    for d in (day, NEXT):
        for task in invalidate.daily_graph(d):
            if isinstance(task, TableForDate):
                path = Path(task.output().path)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"date": str(d), "revision": "", "published_at": PUBLISHED_AT}))
                written[str(path.relative_to(root / "_markers"))] = path.read_text()
    return written


def markers(root: Path) -> dict[str, str]:
    base = root / "_markers"
    return {str(p.relative_to(base)): p.read_text() for p in base.rglob("*.json")
            if not str(p.relative_to(base)).startswith("invalidations")}


def test_the_default_plan_is_the_fact_and_everything_built_from_it():
    tasks = invalidate.plan(DAY)
    assert sorted(families(tasks)) == sorted([
        "FactSales", "MartDailySales", "MartHourlySales", "MartProductPerformance", "MartCustomerPurchaseHistory",
        "DetectAnomalies", "DataQualityChecks", "MartsReady"])
    assert all(t.date == DAY and t.revision == "" for t in tasks)


@pytest.mark.parametrize("start, expected", [
    ("MartDailySales", ["MartDailySales", "DataQualityChecks", "MartsReady"]),
    ("MartsReady", ["MartsReady"]),
    ("DetectAnomalies", ["DetectAnomalies", "DataQualityChecks", "MartsReady"]),
    ("DimCountry", ["DimCountry", "MartDailySales", "MartCustomerPurchaseHistory", "DataQualityChecks",
                    "MartsReady"]),
    ("DimCustomer", ["DimCustomer", "MartCustomerPurchaseHistory", "MartCustomerRfm", "MartCohortRetention",
                     "DataQualityChecks", "MartsReady"]),
    ("CustomerSalesDaily", ["CustomerSalesDaily", "DimCustomer", "MartCustomerPurchaseHistory", "MartCustomerRfm",
                            "MartCohortRetention", "DataQualityChecks", "MartsReady"]),
    ("DimProduct", ["DimProduct", "FactSales", "MartDailySales", "MartHourlySales", "MartProductPerformance",
                    "MartCustomerPurchaseHistory", "DetectAnomalies", "DataQualityChecks", "MartsReady"]),
])
def test_a_plan_holds_the_task_and_the_tasks_of_the_date_that_require_it(start, expected):
    tasks = invalidate.plan(DAY, start)
    assert sorted(families(tasks)) == sorted(expected)
    assert families(tasks)[0] == start


def test_a_plan_lists_dependencies_before_the_tasks_built_from_them():
    tasks = invalidate.plan(DAY, "DimProduct")
    graph = invalidate.daily_graph(DAY)
    for i, task in enumerate(tasks):
        assert not set(graph[task]) & set(tasks[i + 1:]), task.task_id


def test_the_graph_keeps_only_the_dates_table_and_ingestion_tasks():
    graph = invalidate.daily_graph(DAY)
    assert all(t.date == DAY for t in graph)
    assert "DimDate" not in families(graph)
    assert CustomerSalesDaily(dt.date(2010, 12, 1)) not in graph
    assert "RefreshLateDates" not in families(invalidate.plan(DAY, "CustomerSalesDaily"))


@pytest.mark.parametrize("family", ["ReplayDay", "ProductsSnapshot", "CountriesSnapshot", "TransactionBatch",
                                    "RetryQuarantine", "IngestDay"])
def test_ingestion_is_refused_with_the_reason(family):
    with pytest.raises(invalidate.Refused) as err:
        invalidate.plan(DAY, family)
    assert "re-ingesting a loaded batch is not supported" in str(err.value)
    assert "picked up automatically" in str(err.value)


def test_an_unknown_task_is_refused_naming_the_valid_ones():
    with pytest.raises(invalidate.Refused) as err:
        invalidate.plan(DAY, "MartDaily")
    message = str(err.value)
    assert "unknown task 'MartDaily'" in message
    for name in ("FactSales", "DimProduct", "DimCountry", "CustomerSalesDaily", "DimCustomer", "MartDailySales",
                 "MartHourlySales", "MartProductPerformance", "MartCustomerPurchaseHistory", "MartCustomerRfm",
                 "MartCohortRetention", "DetectAnomalies", "DataQualityChecks", "MartsReady"):
        assert name in message


def test_apply_notes_the_invalidation_then_removes_exactly_the_planned_markers(warehouse):
    root, _ = warehouse
    before = publish_all(root, DAY)
    inv = invalidate.prepare(DAY, "MartDailySales")
    note, removed = invalidate.apply(inv, "new returns rule", by="alice")

    gone = {"mart/mart_daily_sales/2010-12-02.json", "mart/dq_results/2010-12-02.json",
            "mart/marts_ready/2010-12-02.json"}
    assert markers(root) == {k: v for k, v in before.items() if k not in gone}
    assert families(removed) == ["MartsReady", "DataQualityChecks", "MartDailySales"]
    saved = json.loads((root / "_markers" / "invalidations" / "2010-12-02.json").read_text())
    assert saved == note
    assert saved["date"] == "2010-12-02" and saved["from_task"] == "MartDailySales" and saved["by"] == "alice"
    assert saved["reason"] == "invalidated from MartDailySales by alice: new returns rule"
    assert sorted(saved["markers"]) == sorted(saved["tasks"])
    assert all(len(digest) == 12 for digest in saved["markers"].values())
    assert saved["tasks"] == [t.task_id for t in (MartDailySales(DAY), DataQualityChecks(DAY), MartsReady(DAY))]
    assert abs(dt.datetime.fromisoformat(saved["invalidated_at"]) - clock.wall()) < dt.timedelta(minutes=1)


def test_an_incomplete_date_is_refused(warehouse):
    root, _ = warehouse
    publish_all(root, DAY)
    with pytest.raises(invalidate.Refused) as err:
        invalidate.prepare(dt.date(2010, 12, 6))
    assert "2010-12-06 is not complete" in str(err.value)


def test_running_the_command_again_after_a_crash_finishes_the_job(warehouse, monkeypatch):
    root, _ = warehouse
    before = publish_all(root, DAY)
    calls = []
    real_remove = luigi.LocalTarget.remove

    def dies_at_the_third(self):
        calls.append(self.path)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        real_remove(self)

    monkeypatch.setattr(luigi.LocalTarget, "remove", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        invalidate.apply(invalidate.prepare(DAY), by="alice")
    monkeypatch.setattr(luigi.LocalTarget, "remove", real_remove)
    note = json.loads((root / "_markers" / "invalidations" / "2010-12-02.json").read_text())
    assert not MartsReady(DAY).complete()

    again = invalidate.prepare(DAY)
    assert again.resumed and again.note == note
    assert sorted(families(again.tasks)) == sorted([
        "FactSales", "MartDailySales", "MartHourlySales", "MartProductPerformance", "MartCustomerPurchaseHistory",
        "DetectAnomalies"])
    kept_note, removed = invalidate.apply(again, by="bob")
    assert kept_note == note and len(removed) == 6
    gone = {"dw/fact_sales/2010-12-02.json", "mart/mart_daily_sales/2010-12-02.json",
            "mart/mart_hourly_sales/2010-12-02.json", "mart/mart_product_performance/2010-12-02.json",
            "mart/mart_customer_purchase_history/2010-12-02.json", "mart/anomalies/2010-12-02.json",
            "mart/dq_results/2010-12-02.json", "mart/marts_ready/2010-12-02.json"}
    assert markers(root) == {k: v for k, v in before.items() if k not in gone}
    assert json.loads((root / "_markers" / "invalidations" / "2010-12-02.json").read_text()) == note

    with pytest.raises(invalidate.Refused) as err:
        invalidate.prepare(DAY)
    assert "is done; the next run" in str(err.value)


def test_markers_rebuilt_after_the_note_are_not_removed_again(warehouse):
    """A run on the replay clock stamps 2010 times, older than the note: the marker's content tells them apart."""
    root, _ = warehouse
    publish_all(root, DAY)
    invalidate.apply(invalidate.prepare(DAY, "MartDailySales"), by="alice")
    mart, checks = Path(MartDailySales(DAY).output().path), Path(DataQualityChecks(DAY).output().path)
    mart.write_text(json.dumps({"date": "2010-12-02", "revision": "", "published_at": "2010-12-03 00:15:07"}))
    checks.write_text(json.dumps({"date": "2010-12-02", "revision": "", "run_id": "2010-12-02@20101203T001512"}))
    with pytest.raises(invalidate.Refused) as err:
        invalidate.prepare(DAY, "MartDailySales")
    assert "2010-12-02 is not complete: its invalidation from MartDailySales at " in str(err.value)
    assert mart.exists() and checks.exists()


def run_cli(env, *args, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "pipeline", "invalidate", *args], cwd=config.PROJECT_ROOT,
                          env=env, stdin=stdin, capture_output=True, text=True, timeout=120)


def test_the_command_asks_for_yes_when_stdin_is_not_a_terminal(warehouse):
    root, env = warehouse
    before = publish_all(root, DAY)
    proc = run_cli(env, "--date", "2010-12-02", "--from", "MartDailySales")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "2010-12-02: invalidating from MartDailySales; the next run rebuilds 3 tasks:",
        "  MartDailySales               ecommerce_mart.mart_daily_sales",
        "  DataQualityChecks            ecommerce_mart.dq_results",
        "  MartsReady                   ecommerce_mart.marts_ready",
    ]
    assert proc.stderr == "error: nothing invalidated: stdin is not a terminal; re-run with --yes to confirm\n"
    assert markers(root) == before


def test_the_command_on_a_terminal_does_nothing_unless_confirmed(warehouse):
    root, env = warehouse
    before = publish_all(root, DAY)
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"n\n")
        proc = run_cli(env, "--date", "2010-12-02", "--from", "MartsReady", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 1
    assert proc.stderr == "proceed? [y/N] nothing invalidated\n"
    assert proc.stdout.splitlines()[0] == "2010-12-02: invalidating from MartsReady; the next run rebuilds 1 tasks:"
    assert markers(root) == before


def test_the_command_with_yes_prints_the_plan_the_note_and_the_removed_markers(warehouse):
    root, env = warehouse
    publish_all(root, DAY)
    proc = run_cli(env, "--date", "2010-12-02", "--from", "MartDailySales", "--yes", "--reason", "rule fixed")
    assert proc.returncode == 0, proc.stderr
    base = root / "_markers"
    assert proc.stdout.splitlines()[5:] == [
        f"removed MartsReady                   {base}/mart/marts_ready/2010-12-02.json",
        f"removed DataQualityChecks            {base}/mart/dq_results/2010-12-02.json",
        f"removed MartDailySales               {base}/mart/mart_daily_sales/2010-12-02.json",
    ]
    noted = proc.stdout.splitlines()[4]
    assert noted.startswith(f"noted {base}/invalidations/2010-12-02.json: invalidated from MartDailySales by ")
    assert noted.endswith(": rule fixed")
    assert proc.stderr == "rebuild with: python -m pipeline run --start 2010-12-02 --end 2010-12-02\n"  # a hint


@pytest.mark.parametrize("args, message", [
    (["--date", "2010-12-06"], "error: 2010-12-06 is not complete (MartsReady(2010-12-06) has no marker)"),
    (["--date", "2010-12-02", "--from", "IngestDay"], "error: IngestDay is ingestion: re-ingesting a loaded batch "
                                                       "is not supported"),
    (["--date", "2010-12-02", "--from", "Facts"], "error: unknown task 'Facts'; invalidate from one of: FactSales, "),
])
def test_refusals_are_one_line_with_exit_2(warehouse, args, message):
    root, env = warehouse
    before = publish_all(root, DAY)
    proc = run_cli(env, *args, "--yes")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1
    assert markers(root) == before
