"""Star schema and daily sales mart for the two integration days, against sums from the source files."""

import json
from decimal import Decimal

import pytest

from pipeline.io import hs2
from tests.integration.conftest import marker_path
from tests.integration.realdata import DAYS, IN_DAYS, fields, loaded_rows, source_lines

pytestmark = pytest.mark.integration


def expected_by_day():
    """Per invoice date: lines, sum of quantity * price, gross and returns over the loaded source lines."""
    out = {}
    for day in DAYS:
        rows = loaded_rows(day)
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
                           f"WHERE invoice_date IN {IN_DAYS} GROUP BY invoice_date"))
    assert sorted(daily) == [str(d) for d in DAYS]
    for table in ("mart_hourly_sales", "mart_product_performance"):
        got = dict(hs2.query(f"SELECT invoice_date, sum(gross_revenue) FROM ecommerce_mart.{table} "
                             f"WHERE invoice_date IN {IN_DAYS} GROUP BY invoice_date"))
        assert got == daily, table


def test_purchase_history_has_every_known_customer_line_and_no_guest_line(marts):
    (fact_known,), = hs2.query("SELECT count(*) FROM ecommerce_dw.fact_sales WHERE customer_key <> -1 "
                               f"AND invoice_date IN {IN_DAYS}")
    (history, nulls), = hs2.query("SELECT count(*), sum(CASE WHEN customer_id IS NULL THEN 1 ELSE 0 END) "
                                  f"FROM ecommerce_mart.mart_customer_purchase_history WHERE invoice_date IN {IN_DAYS}")
    assert history == fact_known > 0 and nulls == 0
    customer = expected_customer_lines()
    assert customer[1], "the source has lines of customer 17850 on these days"
    rows = hs2.query("SELECT invoice_no, stock_code, quantity FROM ecommerce_mart.mart_customer_purchase_history "
                     f"WHERE customer_bucket = pmod(%(c)s, 32) AND customer_id = %(c)s AND invoice_date IN {IN_DAYS}",
                     {"c": customer[0]})
    assert sorted(rows) == customer[1]
    (buckets,), = hs2.query("SELECT count(DISTINCT customer_bucket) FROM "
                            "ecommerce_mart.mart_customer_purchase_history WHERE customer_id = %(c)s",
                            {"c": customer[0]})
    assert buckets == 1


def expected_customer_lines():
    """Customer 17850's de-duplicated lines over the two days, straight from the source files."""
    lines = set()
    for day in DAYS:
        for ln in source_lines(day):
            f = fields(ln)
            if f[6] == "17850.0":
                lines.add((int(f[4][11:13]) // 4, ln))
    return 17850, sorted((fields(ln)[0], fields(ln)[1], int(fields(ln)[3])) for _, ln in lines)


def customers_from_source(as_of):
    """Per known customer: non-cancelled invoices, net amount and last order date over the loaded lines."""
    out = {}
    for day in DAYS:
        if day > as_of:
            continue
        for f in loaded_rows(day):
            if not f[6]:
                continue
            c = out.setdefault(int(float(f[6])), {"orders": set(), "net": Decimal(0), "last": None})
            value = int(f[3]) * Decimal(f[5])
            if f[0].startswith("C"):
                c["net"] += value
            else:
                c["orders"].add(f[0])
                c["last"] = max(c["last"] or day, day)
                if int(f[3]) > 0:
                    c["net"] += value
    return {k: v for k, v in out.items() if v["orders"]}


def test_rfm_as_of_each_run_date_matches_the_source(marts):
    for as_of in DAYS:
        expected = customers_from_source(as_of)
        rows = hs2.query("SELECT customer_id, frequency, monetary_gbp, recency_days, r_score, segment "
                         "FROM ecommerce_mart.mart_customer_rfm WHERE as_of_date = %(d)s", {"d": str(as_of)})
        got = {r[0]: r[1:] for r in rows}
        assert set(got) == set(expected), as_of
        for customer, c in expected.items():
            frequency, monetary, recency, r_score, segment = got[customer]
            assert (frequency, Decimal(monetary)) == (len(c["orders"]), c["net"]), (as_of, customer)
            assert recency == (as_of - c["last"]).days
            assert 1 <= r_score <= 5 and segment


def test_cohort_retention_has_one_cohort_fully_active_per_run_date(marts):
    rows = hs2.query("SELECT as_of_date, cohort_month, months_since, cohort_customers, customers_active, "
                     f"retention_rate FROM ecommerce_mart.mart_cohort_retention WHERE as_of_date IN {IN_DAYS} "
                     "ORDER BY as_of_date")
    expected = [(str(d), "2010-12-01", 0, n, n, Decimal(1)) for d in DAYS
                for n in [len(customers_from_source(d))]]
    assert [(str(r[0]), str(r[1]), r[2], r[3], r[4], Decimal(r[5])) for r in rows] == expected


def test_marts_ready_records_both_days_after_reconciling_them(marts):
    source = expected_by_day()
    rows = hs2.query("SELECT invoice_date, marts FROM ecommerce_mart.marts_ready "
                     f"WHERE invoice_date IN {IN_DAYS} AND revision = 0 ORDER BY invoice_date")
    assert [str(r[0]) for r in rows] == [str(d) for d in DAYS]
    assert all("MartCustomerPurchaseHistory" in r[1] and "MartCustomerRfm" in r[1] for r in rows)
    for day in DAYS:
        checks = json.loads(marker_path(marts, "mart", "marts_ready", f"{day}.json").read_text())["reconciliation"]
        assert len(checks) == 8 and all(checks.values()), checks
        # reconciled once, by the date's data-quality run, whose marker keeps every check's figures
        checked = json.loads(marker_path(marts, "mart", "dq_results", f"{day}.json").read_text())["reconciliation"]
        assert {name: c["passed"] for name, c in checked.items()} == checks
        assert checked["fact_orphans_customer_key"] == {"expected": "0", "actual": "0", "passed": True}
        lines = str(source[day]["lines"])
        assert checked["fact_lines"] == {"expected": lines, "actual": lines, "passed": True}
