"""Star schema and daily sales mart for the two integration days, against sums from the source files."""

import datetime as dt
from decimal import Decimal

import pytest

from pipeline import hs2
from tests.integration.conftest import run_luigi
from tests.integration.realdata import DAYS, INJECTED, fields, source_lines

pytestmark = pytest.mark.integration


def expected_by_day():
    """Per invoice date: lines, sum of quantity * price, gross and returns over the de-duplicated source lines
    (duplicates are exact copies inside one 4-hour window), plus the injected line the retry released."""
    out = {}
    for day in DAYS:
        per_window = {}
        for ln in source_lines(day):
            per_window.setdefault(int(fields(ln)[4][11:13]) // 4, set()).add(ln)
        rows = [fields(ln) for group in per_window.values() for ln in group]
        if day == DAYS[1]:
            rows.append(fields(INJECTED))
        amount = gross = returns = Decimal(0)
        for f in rows:
            value = int(f[3]) * Decimal(f[5])
            amount += value
            if f[0].startswith("C"):
                returns -= value
            elif int(f[3]) > 0:
                gross += value
        out[day] = {"lines": len(rows), "amount": amount, "gross": gross, "returns": returns}
    return out


@pytest.fixture(scope="module")
def marts(ingested):
    run_luigi("RangeDaily", "--of", "MartsReady", "--start", str(DAYS[0]),
              "--stop", str(DAYS[-1] + dt.timedelta(1)), module="pipeline.tasks.dw")
    return ingested


def test_fact_reconciles_with_the_source_lines(marts):
    expected = expected_by_day()
    got = {r[0]: r[1:] for r in hs2.query(  # PyHive returns DATE partition values as text
        "SELECT invoice_date, count(*), sum(line_amount) FROM ecommerce_dw.fact_sales GROUP BY invoice_date")}
    for day in DAYS:
        assert got[str(day)][0] == expected[day]["lines"], day
        assert Decimal(got[str(day)][1]) == expected[day]["amount"], day


def test_every_fact_row_joins_all_its_dimensions(marts):
    (orphans,), = hs2.query(
        "SELECT count(*) FROM ecommerce_dw.fact_sales f "
        "LEFT JOIN ecommerce_dw.dim_product p ON f.product_key = p.product_key "
        "LEFT JOIN ecommerce_dw.dim_country c ON f.country_key = c.country_key "
        "LEFT JOIN ecommerce_dw.dim_date d ON f.date_key = d.date_key "
        "WHERE p.product_key IS NULL OR c.country_key IS NULL OR d.date_key IS NULL")
    assert orphans == 0
    assert hs2.query("SELECT count(*) FROM ecommerce_dw.fact_sales WHERE product_key = -1") == [(0,)]


def test_daily_sales_mart_matches_the_source(marts):
    expected = expected_by_day()
    got = {r[0]: r[1:] for r in hs2.query(
        "SELECT invoice_date, sum(gross_revenue), sum(returns_amount), sum(net_revenue) "
        "FROM ecommerce_mart.mart_daily_sales GROUP BY invoice_date")}
    for day in DAYS:
        gross, returns, net = (Decimal(x) for x in got[str(day)])
        assert gross == expected[day]["gross"], day
        assert returns == expected[day]["returns"], day
        assert net == gross - returns


def test_every_mart_agrees_with_the_daily_mart(marts):
    daily = dict(hs2.query("SELECT invoice_date, sum(gross_revenue) FROM ecommerce_mart.mart_daily_sales "
                           "GROUP BY invoice_date"))
    for table in ("mart_hourly_sales", "mart_product_performance"):
        got = dict(hs2.query(f"SELECT invoice_date, sum(gross_revenue) FROM ecommerce_mart.{table} "
                             "GROUP BY invoice_date"))
        assert got == daily, table


def test_purchase_history_has_every_known_customer_line_and_no_guest_line(marts):
    (fact_known,), = hs2.query("SELECT count(*) FROM ecommerce_dw.fact_sales WHERE customer_key <> -1")
    (history, nulls), = hs2.query("SELECT count(*), sum(CASE WHEN customer_id IS NULL THEN 1 ELSE 0 END) "
                                  "FROM ecommerce_mart.mart_customer_purchase_history")
    assert history == fact_known > 0 and nulls == 0
    customer = expected_customer_lines()
    assert customer[1], "the source has lines of customer 17850 on these days"
    rows = hs2.query("SELECT invoice_no, stock_code, quantity FROM ecommerce_mart.mart_customer_purchase_history "
                     "WHERE customer_id = %(c)s", {"c": customer[0]})
    assert sorted(rows) == customer[1]


def expected_customer_lines():
    """Customer 17850's de-duplicated lines over the two days, straight from the source files."""
    lines = set()
    for day in DAYS:
        for ln in source_lines(day):
            f = fields(ln)
            if f[6] == "17850.0":
                lines.add((int(f[4][11:13]) // 4, ln))
    return 17850, sorted((fields(ln)[0], fields(ln)[1], int(fields(ln)[3])) for _, ln in lines)


def test_marts_ready_records_both_days(marts):
    rows = hs2.query("SELECT invoice_date, marts FROM ecommerce_mart.marts_ready ORDER BY invoice_date")
    assert [str(r[0]) for r in rows] == [str(d) for d in DAYS]
    assert all("MartCustomerPurchaseHistory" in r[1] for r in rows)
