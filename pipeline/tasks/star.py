"""The star schema in ``ecommerce_dw``: the calendar, product and country dimensions, the sales fact and each
customer's daily sales, one task per table.

    luigi --module pipeline.tasks.star FactSales --date 2010-12-02

Facts are partitioned by invoice date and built per date from the batches that carry lines for it
(``ecommerce_db.batch_invoice_dates``), so a day's cost does not depend on history. Each fact marker records
the date's input revision (its batches and their row counts), which ``ready.RefreshLateDates`` compares.
"""

from __future__ import annotations

import datetime as dt
import logging

import holidays
import luigi
from pyspark.sql import functions as F

from pipeline import config
from pipeline.io import load
from pipeline.io import warehouse as wh
from pipeline.tasks.base import (
    DW,
    TableForDate,
    dw_spark,
    input_revisions,
    lines_for_dates,
    marker,
    read_dates,
    write_marker,
    writes_warehouse,
)
from pipeline.tasks.ingest import CountriesSnapshot, IngestDay, ProductsSnapshot, previous_trading_day, source_days
from pipeline.transforms import star

log = logging.getLogger(__name__)


class DimDate(luigi.Task):
    """``ecommerce_dw.dim_date`` over whole years covering ``[dw]`` and every landed date, with England's
    bank holidays.

    The range follows the feed calendar (``source_days``): the first feed of a new year changes it, and with
    it the marker's name, so the next run republishes the table with that whole year.
    """

    @staticmethod
    def span() -> tuple[dt.date, dt.date]:
        cfg = config.dw()
        return star.calendar_range(source_days(), cfg.calendar_start, cfg.calendar_end)

    @staticmethod
    def marker_for(start: dt.date, end: dt.date) -> luigi.Target:
        return marker("dw", f"dim_date_{start}_{end}.json")

    def output(self):
        return self.marker_for(*self.span())

    @writes_warehouse
    def run(self):
        start, end = self.span()
        spark = dw_spark()
        calendar = spark.sql(f"SELECT explode(sequence(DATE '{start}', DATE '{end}')) AS date")
        bank = holidays.country_holidays("GB", subdiv="ENG", years=range(start.year, end.year + 1))
        holiday_df = spark.createDataFrame(sorted(bank.items()), "date DATE, holiday_name STRING")
        wh.replace_table(spark, star.dim_date(calendar, holiday_df).coalesce(1), f"{DW}.dim_date")
        log.info("dim_date published for %s .. %s", start, end)
        write_marker(self.marker_for(start, end), {"start": start, "end": end, "rows": (end - start).days + 2})


class DimProduct(TableForDate):
    """``ecommerce_dw.dim_product`` as of a day's products snapshot."""

    table, partition = f"{DW}.dim_product", None

    def requires(self):
        return ProductsSnapshot(self.date)

    def build(self, spark, dates):
        return star.dim_product(wh.read(spark, "products"), load.non_product_patterns())


class DimCountry(TableForDate):
    """``ecommerce_dw.dim_country`` as of a day's countries snapshot."""

    table, partition = f"{DW}.dim_country", None

    def requires(self):
        return CountriesSnapshot(self.date)

    def build(self, spark, dates):
        return star.dim_country(wh.read(spark, "countries"))


class FactSales(TableForDate):
    """``ecommerce_dw.fact_sales`` partition of one invoice date, from every batch carrying lines for it."""

    table = f"{DW}.fact_sales"

    def requires(self):
        return [IngestDay(self.date), DimProduct(self.date)]

    def build(self, spark, dates):
        return star.fact_sales(lines_for_dates(spark, dates), wh.read(spark, f"{DW}.dim_product"))

    def fits_in_driver(self, dates):
        return False  # as many rows as the feed brings

    def marker_facts(self, spark, dates):
        revisions = input_revisions(spark, dates)
        sums = {r.invoice_date: r for r in read_dates(spark, self.table, dates).groupBy("invoice_date")
                .agg(F.count(F.lit(1)).alias("rows"), F.sum("line_amount").alias("amount")).collect()}
        return {d: {"input_revision": revisions.get(d, ""), "rows": sums[d].rows if d in sums else 0,
                    "line_amount": str(sums[d].amount if d in sums else 0)} for d in dates}


class CustomerSalesDaily(TableForDate):
    """``ecommerce_dw.customer_sales_daily`` partition of one invoice date; needs every earlier day's."""

    table = f"{DW}.customer_sales_daily"

    def requires(self):
        prev = previous_trading_day(self.date)
        return [IngestDay(self.date)] + ([CustomerSalesDaily(prev)] if prev and not self.revision else [])

    def build(self, spark, dates):
        return star.customer_sales_daily(lines_for_dates(spark, dates))
