"""Invalidating a published date: the next build republishes exactly the cleared tasks and records a revision.

A stack of its own (metastore, HiveServer2, luigid on its own ports) builds ``MartsReady`` for two replayed
days of the real data. ``python -m pipeline invalidate --date 2010-12-02 --from MartDailySales --yes`` must
remove the markers of the daily mart, the data-quality checks and ``MartsReady`` of that date and no other;
rebuilding ``MartsReady(2010-12-02)`` must rewrite exactly those markers, give the date's daily mart the same
rows, and add revision 1 to ``ecommerce_mart.marts_ready`` with the invalidation's reason and the date's
first ``first_ready_at``. A date that was never built is refused.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, separate_stack

pytestmark = pytest.mark.integration

PORTS = {"metastore": 24083, "hiveserver2": 24000, "luigid": 24082}
DAYS = ["2010-12-01", "2010-12-02"]
CLEARED = {"mart/mart_daily_sales/2010-12-02.json", "mart/dq_results/2010-12-02.json",
           "mart/marts_ready/2010-12-02.json"}


def invalidate(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "invalidate", *args], cwd=ROOT, env=stack.env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def markers(stack) -> dict[str, tuple[int, str]]:
    """Every Luigi marker of the warehouse (the invalidation notes aside) with its mtime and content."""
    base = Path(stack.state) / "warehouse" / "_markers"
    return {str(p.relative_to(base)): (p.stat().st_mtime_ns, p.read_text()) for p in base.rglob("*.json")
            if p.relative_to(base).parts[0] != "invalidations"}


def daily_sales(stack, day: str) -> list[tuple]:
    return sorted(stack.query("SELECT country_code, orders, lines, units, CAST(gross_revenue AS STRING), "
                              "CAST(net_revenue AS STRING) FROM ecommerce_mart.mart_daily_sales "
                              f"WHERE invoice_date = DATE '{day}'"))


def ready_rows(stack, day: str) -> list[tuple]:
    return stack.query("SELECT revision, CAST(first_ready_at AS STRING), CAST(ready_at AS STRING), reason "
                       f"FROM ecommerce_mart.marts_ready WHERE invoice_date = DATE '{day}' ORDER BY revision")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Both days built, then 2010-12-02 invalidated from MartDailySales and rebuilt; the states in between."""
    with separate_stack(tmp_path_factory, "invalidate", PORTS) as stack:
        for day in DAYS:
            t0 = time.monotonic()
            stack.luigi("MartsReady", "--date", day, module="pipeline.tasks.ready")
            print(f"\nMartsReady {day}: {time.monotonic() - t0:.1f} s")
        built, sales, ready = markers(stack), daily_sales(stack, DAYS[1]), ready_rows(stack, DAYS[1])
        time.sleep(1.1)  # the note's time is whole seconds: later than the first publication
        proc = invalidate(stack, "--date", DAYS[1], "--from", "MartDailySales", "--yes")
        print(proc.stdout)
        cleared = markers(stack)
        # rebuilt at once: luigid takes the PENDING claim of a task it has just marked DONE
        # ([scheduler] stable_done_cooldown_secs = 0)
        t0 = time.monotonic()
        stack.luigi("MartsReady", "--date", DAYS[1], module="pipeline.tasks.ready")
        print(f"MartsReady {DAYS[1]} rebuilt: {time.monotonic() - t0:.1f} s")
        yield {"stack": stack, "proc": proc, "built": built, "cleared": cleared, "rebuilt": markers(stack),
               "sales": sales, "ready": ready}


def test_the_command_lists_and_removes_exactly_the_tasks_built_from_the_mart(run):
    proc = run["proc"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "rebuild with: python -m pipeline run --start 2010-12-02 --end 2010-12-02\n"  # a hint
    lines = proc.stdout.splitlines()
    assert lines[0] == "2010-12-02: invalidating from MartDailySales; the next run rebuilds 3 tasks:"
    assert [ln.split() for ln in lines[1:4]] == [["MartDailySales", "ecommerce_mart.mart_daily_sales"],
                                                 ["DataQualityChecks", "ecommerce_mart.dq_results"],
                                                 ["MartsReady", "ecommerce_mart.marts_ready"]]
    assert lines[4].startswith("noted ") and ": invalidated from MartDailySales by " in lines[4]
    base = str(Path(run["stack"].state) / "warehouse" / "_markers") + "/"
    removed = {ln.split()[1]: ln.split()[2].removeprefix(base) for ln in lines if ln.startswith("removed ")}
    assert removed == {"MartsReady": "mart/marts_ready/2010-12-02.json",
                       "DataQualityChecks": "mart/dq_results/2010-12-02.json",
                       "MartDailySales": "mart/mart_daily_sales/2010-12-02.json"}
    assert len(lines) == 8
    assert run["cleared"] == {k: v for k, v in run["built"].items() if k not in CLEARED}


def test_the_rebuild_rewrites_exactly_the_cleared_markers(run):
    built, rebuilt = run["built"], run["rebuilt"]
    assert set(rebuilt) == set(built)
    changed = {k for k in built if rebuilt[k] != built[k]}
    assert changed == CLEARED
    assert '"published_at"' in rebuilt["mart/mart_daily_sales/2010-12-02.json"][1]
    assert rebuilt["mart/mart_daily_sales/2010-12-02.json"][1] != built["mart/mart_daily_sales/2010-12-02.json"][1]


def test_the_rebuilt_mart_has_the_same_rows(run):
    assert daily_sales(run["stack"], DAYS[1]) == run["sales"]
    assert len(run["sales"]) > 1


def test_marts_ready_records_the_republication_as_revision_1(run):
    before = run["ready"]
    assert [r[0] for r in before] == [0]
    rows = ready_rows(run["stack"], DAYS[1])
    assert [r[0] for r in rows] == [0, 1]
    assert rows[0] == before[0]
    assert rows[1][1] == rows[0][1]
    assert rows[1][2] > rows[0][2]
    assert "invalidated from MartDailySales" in rows[1][3]
    assert [r[0] for r in ready_rows(run["stack"], DAYS[0])] == [0]


def test_a_date_never_built_is_refused(run):
    proc = invalidate(run["stack"], "--date", "2010-12-03", "--yes")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: 2010-12-03 is not complete") and proc.stderr.count("\n") == 1
