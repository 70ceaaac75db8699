"""The calendar follows the data: a warehouse fed only today's synthetic feeds publishes its marts.

A stack of its own with ``[replay] enabled = false`` (the calendar is the landed feeds only) lands two
synthetic days at the start of the current year and builds ``MartsReady`` for each. ``dim_date`` must hold
those dates (New Year's Day a bank holiday, England's substitute-day rule for Jan 2), so every fact key
reconciles and the dates are declared ready. A later feed of the next year then extends ``dim_date``.
"""

import calendar
import datetime as dt
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import ROOT, separate_stack

pytestmark = pytest.mark.integration

PORTS = {"metastore": 23083, "hiveserver2": 23000, "luigid": 23082}
YEAR = dt.date.today().year
DAYS = [dt.date(YEAR, 1, 1), dt.date(YEAR, 1, 2)]
NEXT_NEW_YEAR = dt.date(YEAR + 1, 1, 1)
CONFIGURED_START = dt.date(2010, 1, 1)  # luigi.cfg sets no [dw]: the task's default minimum


def synth(stack, start: dt.date, end: dt.date) -> None:
    """Land synthetic feeds for ``start .. end`` in the stack's warehouse, as an operator does."""
    proc = subprocess.run([sys.executable, "-m", "pipeline", "synth", "--start", str(start), "--end", str(end),
                           "--lines-per-day", "400"], cwd=ROOT, env=stack.env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """The two current-year days landed and their marts built, one ``MartsReady`` run per day."""
    with separate_stack(tmp_path_factory, "calendar", PORTS, "[replay]\nenabled = false\n") as stack:
        synth(stack, DAYS[0], DAYS[-1])
        for day in DAYS:
            t0 = time.monotonic()
            stack.luigi("MartsReady", "--date", str(day), module="pipeline.tasks.ready")
            print(f"\nMartsReady {day}: {time.monotonic() - t0:.1f} s")
        yield stack


def dim_date_rows(stack, dates: list[dt.date]) -> dict[str, tuple]:
    in_list = ", ".join(f"DATE '{d}'" for d in dates)
    rows = stack.query("SELECT CAST(date AS STRING), date_key, day_of_week, year, is_uk_bank_holiday, "
                       f"bank_holiday_name FROM ecommerce_dw.dim_date WHERE date IN ({in_list})")
    return {r[0]: r[1:] for r in rows}


def test_the_current_year_days_are_declared_ready(warehouse):
    ready = warehouse.query("SELECT DISTINCT CAST(invoice_date AS STRING) FROM ecommerce_mart.marts_ready")
    assert sorted(r[0] for r in ready) == [str(d) for d in DAYS]
    daily = dict(warehouse.query("SELECT CAST(invoice_date AS STRING), sum(gross_revenue) "
                                 "FROM ecommerce_mart.mart_daily_sales GROUP BY invoice_date"))
    assert all(daily.get(str(d), 0) > 0 for d in DAYS), daily


def test_every_fact_date_key_is_in_dim_date(warehouse):
    facts, orphans = warehouse.query(
        "SELECT count(*), sum(CASE WHEN d.date_key IS NULL THEN 1 ELSE 0 END) FROM ecommerce_dw.fact_sales f "
        "LEFT JOIN ecommerce_dw.dim_date d ON f.date_key = d.date_key")[0]
    assert facts > 0 and orphans == 0


def test_dim_date_holds_the_days_with_their_bank_holidays(warehouse):
    rows = dim_date_rows(warehouse, DAYS)
    new_year, second = DAYS
    assert rows[str(new_year)] == (YEAR * 10000 + 101, new_year.isoweekday(), YEAR, True, "New Year's Day")
    if new_year.isoweekday() == 7:  # New Year's Day on a Sunday: the Monday is the substitute bank holiday
        assert rows[str(second)][3:] == (True, "New Year's Day (observed)")
    else:
        assert rows[str(second)][3:] == (False, None)
    assert rows[str(second)][:3] == (YEAR * 10000 + 102, second.isoweekday(), YEAR)


def test_dim_date_covers_whole_years_from_the_configured_start_to_the_current_one(warehouse):
    days_in_year = 366 if calendar.isleap(YEAR) else 365
    assert warehouse.query("SELECT count(*), CAST(min(date) AS STRING), CAST(max(date) AS STRING) "
                           f"FROM ecommerce_dw.dim_date WHERE year = {YEAR}")[0] == (
        days_in_year, f"{YEAR}-01-01", f"{YEAR}-12-31")
    span = (dt.date(YEAR, 12, 31) - CONFIGURED_START).days + 1
    assert warehouse.query("SELECT count(*), count(DISTINCT date), CAST(min(date) AS STRING), "
                           "sum(CASE WHEN date_key = -1 THEN 1 ELSE 0 END) FROM ecommerce_dw.dim_date")[0] == (
        span + 1, span, str(CONFIGURED_START), 1)


def test_a_new_years_first_feed_extends_dim_date_on_the_next_run(warehouse):
    synth(warehouse, NEXT_NEW_YEAR, NEXT_NEW_YEAR)
    warehouse.luigi("DimDate", module="pipeline.tasks.ready")
    assert warehouse.query("SELECT CAST(max(date) AS STRING) FROM ecommerce_dw.dim_date")[0] == (
        f"{YEAR + 1}-12-31",)
    assert dim_date_rows(warehouse, [NEXT_NEW_YEAR])[str(NEXT_NEW_YEAR)][3:] == (True, "New Year's Day")
