"""Yellow/Green phases (work in progress): star schema in ``ecommerce_dw`` and the daily sales mart.

    luigi --module pipeline.tasks.dw MartDailySales --date 2010-12-02

Facts and marts are partitioned by invoice date and rebuilt per date from the batches that carry lines
for it (``ecommerce_db.batch_invoice_dates``), so a day's cost does not depend on history.
"""

from __future__ import annotations

import datetime as dt
import logging

import holidays
import luigi
from luigi.tools.range import RangeDaily  # noqa: F401  (for `luigi --module pipeline.tasks.dw RangeDaily`)
from pyspark.sql import functions as F

from pipeline import fs, load
from pipeline import warehouse as wh
from pipeline.tasks.ingest import CountriesSnapshot, IngestDay, ProductsSnapshot, marker, spark_with_schema
from pipeline.transforms import star

log = logging.getLogger(__name__)

DW, MART = "ecommerce_dw", "ecommerce_mart"
wh.SCHEMAS[DW] = {
    "dim_date": {
        "grain": "one row per calendar day, plus the unknown member -1",
        "columns": """date_key INT, date DATE, day_of_week INT, day_name STRING, is_weekend BOOLEAN,
            iso_week INT, month INT, month_name STRING, quarter INT, year INT, is_uk_bank_holiday BOOLEAN,
            bank_holiday_name STRING""",
    },
    "dim_product": {
        "grain": "one row per stock code version (SCD2), plus the unknown member -1",
        "columns": """product_key BIGINT, stock_code STRING, description STRING, unit_price DECIMAL(12,3),
            valid_from DATE, valid_to DATE, is_current BOOLEAN, is_merchandise BOOLEAN""",
    },
    "dim_country": {
        "grain": "one row per country code (SCD0); Unspecified is the unknown member -1",
        "columns": "country_key BIGINT, country_code STRING, iso3 STRING, country_name STRING, region STRING, "
                   "continent STRING",
    },
    "fact_sales": {
        "grain": "one row per loaded invoice line, partitioned by invoice date",
        "columns": """date_key INT, product_key BIGINT, country_key BIGINT, customer_key BIGINT, invoice_no STRING,
            stock_code STRING, invoice_ts TIMESTAMP, quantity INT, unit_price_paid DECIMAL(12,3),
            line_amount DECIMAL(18,3), list_unit_price DECIMAL(12,3), is_cancellation BOOLEAN,
            is_merchandise BOOLEAN, batch_id STRING""",
        "partition": "invoice_date DATE",
    },
}
wh.SCHEMAS[MART] = {
    "mart_daily_sales": {
        "grain": "one row per invoice date and country",
        "columns": """country_key BIGINT, country_code STRING, country_name STRING, orders BIGINT, lines BIGINT,
            units BIGINT, gross_revenue DECIMAL(18,3), returns_amount DECIMAL(18,3), net_revenue DECIMAL(18,3),
            customers BIGINT, avg_order_value DECIMAL(18,3)""",
        "partition": "invoice_date DATE",
    },
}


class dw(luigi.Config):
    calendar_start = luigi.DateParameter(default=dt.date(2010, 1, 1))
    calendar_end = luigi.DateParameter(default=dt.date(2012, 12, 31))


def dw_spark():
    spark = spark_with_schema()
    wh.ensure_schema(spark, DW)
    wh.ensure_schema(spark, MART)
    return spark


class DimDate(luigi.Task):
    """``ecommerce_dw.dim_date`` over the configured calendar, with England's bank holidays."""

    def output(self):
        cfg = dw()
        return marker("dw", f"dim_date_{cfg.calendar_start}_{cfg.calendar_end}.json")

    def run(self):
        cfg = dw()
        spark = dw_spark()
        calendar = spark.sql(f"SELECT explode(sequence(DATE '{cfg.calendar_start}', DATE '{cfg.calendar_end}')) "
                             "AS date")
        years = range(cfg.calendar_start.year, cfg.calendar_end.year + 1)
        bank = holidays.country_holidays("GB", subdiv="ENG", years=years)
        holiday_df = spark.createDataFrame(sorted(bank.items()), "date DATE, holiday_name STRING")
        wh.replace_table(spark, star.dim_date(calendar, holiday_df).coalesce(1), f"{DW}.dim_date")
        fs.write_json(self.output().path, {"rows": (cfg.calendar_end - cfg.calendar_start).days + 2})


class DimProduct(luigi.Task):
    """``ecommerce_dw.dim_product`` as of a day's products snapshot."""

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        return ProductsSnapshot(self.date)

    def output(self):
        return marker("dw", "dim_product", f"{self.date}.json")

    def run(self):
        spark = dw_spark()
        dim = star.dim_product(wh.read(spark, "products"), load.non_product_patterns())
        wh.replace_table(spark, dim.coalesce(1), f"{DW}.dim_product")
        fs.write_json(self.output().path, {"date": self.date})


class DimCountry(luigi.Task):
    """``ecommerce_dw.dim_country`` as of a day's countries snapshot."""

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        return CountriesSnapshot(self.date)

    def output(self):
        return marker("dw", "dim_country", f"{self.date}.json")

    def run(self):
        spark = dw_spark()
        wh.replace_table(spark, star.dim_country(wh.read(spark, "countries")).coalesce(1), f"{DW}.dim_country")
        fs.write_json(self.output().path, {"date": self.date})


class FactSales(luigi.Task):
    """``ecommerce_dw.fact_sales`` partition of one invoice date, from every batch carrying lines for it."""

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        return [IngestDay(self.date), DimProduct(self.date)]

    def output(self):
        return marker("dw", "fact_sales", f"{self.date}.json")

    def run(self):
        spark = dw_spark()
        batches = [r.batch_id for r in wh.read(spark, "batch_invoice_dates")
                   .where(F.col("invoice_date") == F.lit(self.date)).select("batch_id").collect()]
        lines = (wh.read(spark, "transactions_raw").where(F.col("batch_id").isin(batches))
                 .where(F.to_date("invoice_ts") == F.lit(self.date)))
        fact = star.fact_sales(lines, wh.read(spark, f"{DW}.dim_product")).cache()
        rows, amount = fact.agg(F.count(F.lit(1)), F.sum("line_amount")).first()
        wh.replace_partitions(spark, fact.coalesce(1), f"{DW}.fact_sales", "invoice_date", [str(self.date)])
        fact.unpersist()
        fs.write_json(self.output().path, {"date": self.date, "batches": sorted(batches), "rows": rows,
                                           "line_amount": str(amount or 0)})


class MartDailySales(luigi.Task):
    """``ecommerce_mart.mart_daily_sales`` partition of one invoice date."""

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        return [FactSales(self.date), DimCountry(self.date), DimDate()]

    def output(self):
        return marker("mart", "mart_daily_sales", f"{self.date}.json")

    def run(self):
        spark = dw_spark()
        fact = wh.read(spark, f"{DW}.fact_sales").where(F.col("invoice_date") == F.lit(self.date))
        mart = star.mart_daily_sales(fact, wh.read(spark, f"{DW}.dim_country"))
        wh.replace_partitions(spark, mart.coalesce(1), f"{MART}.mart_daily_sales", "invoice_date",
                              [str(self.date)])
        fs.write_json(self.output().path, {"date": self.date})
