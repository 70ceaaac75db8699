"""Late lines: a batch of the next day brings a line for the first day, whose marts were already published.

Runs after ``test_marts`` (which checks the published days as they were) and changes the first day.
"""

import datetime as dt
import json
from decimal import Decimal

import pytest

from pipeline.io import hs2
from tests.integration.conftest import append_lines, marker_path, run_luigi
from tests.integration.realdata import DAYS

pytestmark = pytest.mark.integration

NEXT_DAY = dt.date(2010, 12, 3)
LATE_LINE = "536996,85123A,WHITE HANGING HEART T-LIGHT HOLDER,4,2010-12-01 09:30:00,2.55,17850.0,United Kingdom"
LATE_AMOUNT = Decimal("10.20")

DATE_TABLES = ("ecommerce_dw.fact_sales", "ecommerce_mart.mart_daily_sales", "ecommerce_mart.mart_hourly_sales",
               "ecommerce_mart.mart_product_performance", "ecommerce_mart.mart_customer_purchase_history")


def per_date(table):
    return {r[0]: (r[1], Decimal(r[2])) for r in hs2.query(
        f"SELECT invoice_date, count(*), sum(line_amount) FROM {table} GROUP BY invoice_date")}


def snapshot(day):
    return {t: sorted(map(tuple, hs2.query(f"SELECT * FROM {t} WHERE invoice_date = %(d)s", {"d": str(day)})))
            for t in DATE_TABLES}


def daily(column):
    return {r[0]: Decimal(r[1]) for r in hs2.query(
        f"SELECT invoice_date, sum({column}) FROM ecommerce_mart.mart_daily_sales GROUP BY invoice_date")}


def ready_records() -> dict[str, list[tuple]]:
    """Per invoice date, its marts_ready publications: (revision, first_ready_at, ready_at, republished_at,
    reason), first publication first."""
    out: dict[str, list[tuple]] = {}
    for row in hs2.query("SELECT invoice_date, revision, first_ready_at, ready_at, republished_at, reason "
                         "FROM ecommerce_mart.marts_ready ORDER BY invoice_date, revision"):
        out.setdefault(str(row[0]), []).append(tuple(row[1:]))
    return out


@pytest.fixture(scope="module")
def late(marts):
    before = {"fact": per_date("ecommerce_dw.fact_sales"), "gross": daily("gross_revenue"),
              "ready": ready_records(),
              "second_day": snapshot(DAYS[1])}
    run_luigi("ReplayDay", "--date", str(NEXT_DAY))
    append_lines(marts["warehouse"], NEXT_DAY, 8, [LATE_LINE])
    run_luigi("MartsReady", "--date", str(NEXT_DAY), module="pipeline.tasks.ready")
    return {**marts, "before": before}


def test_the_late_line_lands_in_the_first_days_fact_and_marts(late):
    before = late["before"]
    first = str(DAYS[0])
    lines, amount = before["fact"][first]
    assert per_date("ecommerce_dw.fact_sales")[first] == (lines + 1, amount + LATE_AMOUNT)
    assert daily("gross_revenue")[first] == before["gross"][first] + LATE_AMOUNT
    rows = hs2.query("SELECT invoice_date, quantity FROM ecommerce_mart.mart_customer_purchase_history "
                     "WHERE customer_id = 17850 AND invoice_no = '536996'")
    assert [(str(r[0]), r[1]) for r in rows] == [(first, 4)]


def test_exactly_the_affected_date_is_rebuilt_and_declared_ready_again(late):
    refresh = json.loads(marker_path(late, "dw", "late_refresh", f"{NEXT_DAY}.json").read_text())
    assert list(refresh["rebuilt"]) == [str(DAYS[0])]
    ready, before = ready_records(), late["before"]["ready"]
    first, second = str(DAYS[0]), str(DAYS[1])
    assert ready[second] == before[second]
    assert ready[first][:len(before[first])] == before[first]  # the first publication is kept as it was
    (revision, first_ready_at, ready_at, republished_at, reason), = ready[first][len(before[first]):]
    assert revision == before[first][-1][0] + 1 and first_ready_at == before[first][0][1]
    assert ready_at == republished_at > before[first][-1][2] and reason.startswith("late or released lines")
    assert [r[0] for r in ready[str(NEXT_DAY)]] == [0]
    assert snapshot(DAYS[1]) == late["before"]["second_day"]


def test_customer_marts_of_the_run_date_include_the_late_line(late):
    (frequency,), = hs2.query("SELECT frequency FROM ecommerce_mart.mart_customer_rfm "
                              "WHERE as_of_date = %(d)s AND customer_id = 17850", {"d": str(NEXT_DAY)})
    invoices = {r[0] for r in hs2.query("SELECT DISTINCT invoice_no FROM ecommerce_mart.mart_customer_purchase_history"
                                        " WHERE customer_id = 17850 AND NOT is_cancellation")}
    assert "536996" in invoices and frequency == len(invoices)


def test_rerunning_a_published_date_gives_identical_marts(late):
    before = snapshot(DAYS[1])
    for parts in (("dw", "fact_sales"), *(("mart", t.split(".")[1]) for t in DATE_TABLES[1:]),
                  ("mart", "marts_ready")):
        marker_path(late, *parts, f"{DAYS[1]}.json").unlink()
    run_luigi("MartsReady", "--date", str(DAYS[1]), module="pipeline.tasks.ready")
    assert snapshot(DAYS[1]) == before
