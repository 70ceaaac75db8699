"""Late lines: a batch of the next day brings a line for the first day, whose marts were already published.

It changes the first day, so it runs on a stack of its own: the integration days, their marts, then the next day.
"""

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.conftest import append_lines, separate_stack
from tests.integration.realdata import DAYS

pytestmark = pytest.mark.integration

PORTS = {"metastore": 27083, "hiveserver2": 27000, "luigid": 27082}
NEXT_DAY = dt.date(2010, 12, 3)
LATE_LINE = "536996,85123A,WHITE HANGING HEART T-LIGHT HOLDER,4,2010-12-01 09:30:00,2.55,17850.0,United Kingdom"
LATE_AMOUNT = Decimal("10.20")

DATE_TABLES = ("ecommerce_dw.fact_sales", "ecommerce_mart.mart_daily_sales", "ecommerce_mart.mart_hourly_sales",
               "ecommerce_mart.mart_product_performance", "ecommerce_mart.mart_customer_purchase_history")


def per_date(stack, table):
    return {str(r[0]): (r[1], Decimal(r[2])) for r in stack.query(
        f"SELECT invoice_date, count(*), sum(line_amount) FROM {table} GROUP BY invoice_date")}


def snapshot(stack, day):
    return {t: sorted(map(tuple, stack.query(f"SELECT * FROM {t} WHERE invoice_date = DATE '{day}'")))
            for t in DATE_TABLES}


def daily(stack, column):
    return {str(r[0]): Decimal(r[1]) for r in stack.query(
        f"SELECT invoice_date, sum({column}) FROM ecommerce_mart.mart_daily_sales GROUP BY invoice_date")}


def ready_records(stack) -> dict[str, list[tuple]]:
    """Per invoice date, its marts_ready publications: (revision, first_ready_at, ready_at, republished_at,
    reason), first publication first."""
    out: dict[str, list[tuple]] = {}
    for row in stack.query("SELECT invoice_date, revision, first_ready_at, ready_at, republished_at, reason "
                           "FROM ecommerce_mart.marts_ready ORDER BY invoice_date, revision"):
        out.setdefault(str(row[0]), []).append(tuple(row[1:]))
    return out


def marker(stack, *parts: str) -> Path:
    return stack.state / "warehouse" / "_markers" / Path(*parts)


@pytest.fixture(scope="module")
def late(tmp_path_factory):
    """The integration days with their marts on a stack of their own, then the next day, whose 08-12 batch
    brings a line for the first day."""
    with separate_stack(tmp_path_factory, "late", PORTS) as stack:
        stack.luigi("RangeDaily", "--of", "MartsReady", "--start", str(DAYS[0]),
                    "--stop", str(DAYS[-1] + dt.timedelta(1)), module="pipeline.tasks.ready")
        stack.before = {"fact": per_date(stack, "ecommerce_dw.fact_sales"), "gross": daily(stack, "gross_revenue"),
                        "ready": ready_records(stack), "second_day": snapshot(stack, DAYS[1])}
        stack.luigi("ReplayDay", "--date", str(NEXT_DAY))
        append_lines((stack.state / "warehouse").as_uri(), NEXT_DAY, 8, [LATE_LINE])
        stack.luigi("MartsReady", "--date", str(NEXT_DAY), module="pipeline.tasks.ready")
        yield stack


def test_the_late_line_lands_in_the_first_days_fact_and_marts(late):
    before = late.before
    first = str(DAYS[0])
    lines, amount = before["fact"][first]
    assert per_date(late, "ecommerce_dw.fact_sales")[first] == (lines + 1, amount + LATE_AMOUNT)
    assert daily(late, "gross_revenue")[first] == before["gross"][first] + LATE_AMOUNT
    rows = late.query("SELECT invoice_date, quantity FROM ecommerce_mart.mart_customer_purchase_history "
                      "WHERE customer_id = 17850 AND invoice_no = '536996'")
    assert [(str(r[0]), r[1]) for r in rows] == [(first, 4)]


def test_exactly_the_affected_date_is_rebuilt_and_declared_ready_again(late):
    refresh = json.loads(marker(late, "dw", "late_refresh", f"{NEXT_DAY}.json").read_text())
    assert list(refresh["rebuilt"]) == [str(DAYS[0])]
    ready, before = ready_records(late), late.before["ready"]
    first, second = str(DAYS[0]), str(DAYS[1])
    assert ready[second] == before[second]
    assert ready[first][:len(before[first])] == before[first]  # the first publication is kept as it was
    (revision, first_ready_at, ready_at, republished_at, reason), = ready[first][len(before[first]):]
    assert revision == before[first][-1][0] + 1 and first_ready_at == before[first][0][1]
    assert ready_at == republished_at > before[first][-1][2] and reason.startswith("late or released lines")
    assert [r[0] for r in ready[str(NEXT_DAY)]] == [0]
    assert snapshot(late, DAYS[1]) == late.before["second_day"]


def test_customer_marts_of_the_run_date_include_the_late_line(late):
    (frequency,), = late.query("SELECT frequency FROM ecommerce_mart.mart_customer_rfm "
                               f"WHERE as_of_date = DATE '{NEXT_DAY}' AND customer_id = 17850")
    invoices = {r[0] for r in late.query("SELECT DISTINCT invoice_no FROM ecommerce_mart.mart_customer_purchase_history"
                                         " WHERE customer_id = 17850 AND NOT is_cancellation")}
    assert "536996" in invoices and frequency == len(invoices)


def test_rerunning_a_published_date_gives_identical_marts(late):
    before = snapshot(late, DAYS[1])
    for parts in (("dw", "fact_sales"), *(("mart", t.split(".")[1]) for t in DATE_TABLES[1:]),
                  ("mart", "marts_ready")):
        marker(late, *parts, f"{DAYS[1]}.json").unlink()
    late.luigi("MartsReady", "--date", str(DAYS[1]), module="pipeline.tasks.ready")
    assert snapshot(late, DAYS[1]) == before
