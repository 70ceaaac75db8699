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
    run_luigi("RangeDaily", "--of", "MartDailySales", "--start", str(DAYS[0]),
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
