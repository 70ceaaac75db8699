"""``MartsBackfill`` (one Spark pass per table) publishes the same marts as the daily tasks."""

import datetime as dt

import pytest

from pipeline.io import hs2
from tests.integration.conftest import marker_path, run_luigi
from tests.integration.realdata import DAYS

pytestmark = pytest.mark.integration

TABLES = {
    "ecommerce_dw.fact_sales": "invoice_date", "ecommerce_dw.customer_sales_daily": "invoice_date",
    "ecommerce_mart.mart_daily_sales": "invoice_date", "ecommerce_mart.mart_hourly_sales": "invoice_date",
    "ecommerce_mart.mart_product_performance": "invoice_date",
    "ecommerce_mart.mart_customer_purchase_history": "invoice_date",
    "ecommerce_mart.mart_customer_rfm": "as_of_date", "ecommerce_mart.mart_cohort_retention": "as_of_date",
}


def contents():
    days = {"a": str(DAYS[0]), "b": str(DAYS[1])}
    return {t: sorted(map(tuple, hs2.query(f"SELECT * FROM {t} WHERE {c} IN (%(a)s, %(b)s)", days)))
            for t, c in TABLES.items()}


def test_backfill_publishes_what_the_daily_tasks_did(marts):
    before = contents()
    markers = marker_path(marts)
    for path in [*markers.glob("dw/*/*.json"), *markers.glob("mart/*/*.json")]:
        if path.stem in {str(d) for d in DAYS} and path.parent.name != "anomalies":
            path.unlink()
    run_luigi("MartsBackfill", "--start", str(DAYS[0]), "--end", str(DAYS[1]), module="pipeline.tasks.ready")
    assert contents() == before
    assert all(v for v in before.values())


def test_a_filter_on_hundreds_of_partition_dates_works_over_hiveserver2(marts):
    dates = [str(DAYS[0] + dt.timedelta(days=i)) for i in range(300)]
    placeholders = ", ".join(f"%(d{i})s" for i in range(len(dates)))
    (rows,), = hs2.query(f"SELECT count(*) FROM ecommerce_dw.fact_sales WHERE invoice_date IN ({placeholders})",
                         {f"d{i}": d for i, d in enumerate(dates)})
    (total,), = hs2.query("SELECT count(*) FROM ecommerce_dw.fact_sales")
    assert rows == total > 0
