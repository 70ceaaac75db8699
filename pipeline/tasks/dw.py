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
from pyspark.sql import DataFrame
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
    "customer_orders_daily": {
        "grain": "one row per known customer, invoice date and country (feeds dim_customer incrementally)",
        "columns": "customer_id INT, country_code STRING, orders BIGINT, lines BIGINT",
        "partition": "invoice_date DATE",
    },
    "dim_customer": {
        "grain": "one row per known customer, plus the unknown member -1 for guests",
        "columns": """customer_key BIGINT, customer_id INT, home_country_code STRING, home_country_key BIGINT,
            first_order_date DATE, last_order_date DATE""",
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
    "mart_hourly_sales": {
        "grain": "one row per invoice date and hour of day",
        "columns": """hour INT, orders BIGINT, lines BIGINT, units BIGINT, gross_revenue DECIMAL(18,3),
            returns_amount DECIMAL(18,3), customers BIGINT, net_revenue DECIMAL(18,3)""",
        "partition": "invoice_date DATE",
    },
    "mart_product_performance": {
        "grain": "one row per invoice date and stock code",
        "columns": """stock_code STRING, product_key BIGINT, description STRING, is_merchandise BOOLEAN,
            orders BIGINT, units BIGINT, gross_revenue DECIMAL(18,3), returned_units BIGINT,
            returns_amount DECIMAL(18,3), avg_price_paid DECIMAL(12,3), list_unit_price DECIMAL(12,3)""",
        "partition": "invoice_date DATE",
    },
    "mart_customer_purchase_history": {
        "grain": "one row per invoice line of a known customer (the purchase history the storefront reads)",
        "columns": """customer_id INT, invoice_no STRING, invoice_ts TIMESTAMP, stock_code STRING,
            description STRING, quantity INT, unit_price_paid DECIMAL(12,3), line_amount DECIMAL(18,3),
            is_cancellation BOOLEAN, country_name STRING""",
        "partition": "invoice_date DATE",
    },
    "marts_ready": {
        "grain": "one row per invoice date whose marts are all published, with the moment they were",
        "columns": "invoice_date DATE, ready_at TIMESTAMP, marts STRING",
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


def lines_for_date(spark, day: dt.date):
    """The loaded raw lines with invoice date ``day``, read only from the batches that carry such lines."""
    batches = [r.batch_id for r in wh.read(spark, "batch_invoice_dates")
               .where(F.col("invoice_date") == F.lit(day)).select("batch_id").collect()]
    lines = (wh.read(spark, "transactions_raw").where(F.col("batch_id").isin(batches))
             .where(F.to_date("invoice_ts") == F.lit(day)))
    return batches, lines


def fact_for_date(spark, day: dt.date):
    return wh.read(spark, f"{DW}.fact_sales").where(F.col("invoice_date") == F.lit(day))


def publish_date(spark, df, table: str, day: dt.date) -> None:
    wh.replace_partitions(spark, df.coalesce(1), table, "invoice_date", [str(day)])


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


class _DailyTable(luigi.Task):
    """Publishes one table for one date: a date partition (``partitioned``) or the whole table."""

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}
    table = ""
    partitioned = True

    def output(self):
        db, name = self.table.split(".")
        return marker("dw" if db == DW else "mart", name, f"{self.date}.json")

    def build(self, spark) -> DataFrame:
        raise NotImplementedError

    def run(self):
        spark = dw_spark()
        self.summary: dict = {}
        df = self.build(spark)
        if self.partitioned:
            publish_date(spark, df, self.table, self.date)
        else:
            wh.replace_table(spark, df.coalesce(1), self.table)
        df.unpersist()
        fs.write_json(self.output().path, {"date": self.date, **self.summary})


class DimProduct(_DailyTable):
    """``ecommerce_dw.dim_product`` as of a day's products snapshot."""

    table, partitioned = f"{DW}.dim_product", False

    def requires(self):
        return ProductsSnapshot(self.date)

    def build(self, spark):
        return star.dim_product(wh.read(spark, "products"), load.non_product_patterns())


class DimCountry(_DailyTable):
    """``ecommerce_dw.dim_country`` as of a day's countries snapshot."""

    table, partitioned = f"{DW}.dim_country", False

    def requires(self):
        return CountriesSnapshot(self.date)

    def build(self, spark):
        return star.dim_country(wh.read(spark, "countries"))


class FactSales(_DailyTable):
    """``ecommerce_dw.fact_sales`` partition of one invoice date, from every batch carrying lines for it."""

    table = f"{DW}.fact_sales"

    def requires(self):
        return [IngestDay(self.date), DimProduct(self.date)]

    def build(self, spark):
        batches, lines = lines_for_date(spark, self.date)
        fact = star.fact_sales(lines, wh.read(spark, f"{DW}.dim_product")).cache()
        rows, amount = fact.agg(F.count(F.lit(1)), F.sum("line_amount")).first()
        self.summary = {"batches": sorted(batches), "rows": rows, "line_amount": str(amount or 0)}
        return fact


class MartDailySales(_DailyTable):
    """``ecommerce_mart.mart_daily_sales`` partition of one invoice date."""

    table = f"{MART}.mart_daily_sales"

    def requires(self):
        return [FactSales(self.date), DimCountry(self.date), DimDate()]

    def build(self, spark):
        return star.mart_daily_sales(fact_for_date(spark, self.date), wh.read(spark, f"{DW}.dim_country"))


class CustomerOrdersDaily(_DailyTable):
    """``ecommerce_dw.customer_orders_daily`` partition of one invoice date (orders per customer and country)."""

    table = f"{DW}.customer_orders_daily"

    def requires(self):
        return IngestDay(self.date)

    def build(self, spark):
        return star.customer_orders_by_day(lines_for_date(spark, self.date)[1])


class DimCustomer(_DailyTable):
    """``ecommerce_dw.dim_customer`` rebuilt from every day's customer orders up to the run."""

    table, partitioned = f"{DW}.dim_customer", False

    def requires(self):
        return CustomerOrdersDaily(self.date)

    def build(self, spark):
        return star.dim_customer(wh.read(spark, f"{DW}.customer_orders_daily"))


class MartHourlySales(_DailyTable):
    """``ecommerce_mart.mart_hourly_sales`` partition of one invoice date."""

    table = f"{MART}.mart_hourly_sales"

    def requires(self):
        return FactSales(self.date)

    def build(self, spark):
        return star.mart_hourly_sales(fact_for_date(spark, self.date))


class MartProductPerformance(_DailyTable):
    """``ecommerce_mart.mart_product_performance`` partition of one invoice date."""

    table = f"{MART}.mart_product_performance"

    def requires(self):
        return FactSales(self.date)

    def build(self, spark):
        return star.mart_product_performance(fact_for_date(spark, self.date), wh.read(spark, f"{DW}.dim_product"))


class MartCustomerPurchaseHistory(_DailyTable):
    """``ecommerce_mart.mart_customer_purchase_history`` partition of one invoice date (shoppers' view)."""

    table = f"{MART}.mart_customer_purchase_history"

    def requires(self):
        return [FactSales(self.date), DimCustomer(self.date), DimCountry(self.date)]

    def build(self, spark):
        return star.mart_customer_purchase_history(
            fact_for_date(spark, self.date), wh.read(spark, f"{DW}.dim_customer"),
            wh.read(spark, f"{DW}.dim_product"), wh.read(spark, f"{DW}.dim_country"))


DAILY_MARTS = (MartDailySales, MartHourlySales, MartProductPerformance, MartCustomerPurchaseHistory)


class MartsReady(luigi.Task):
    """Records in ``ecommerce_mart.marts_ready`` the moment every mart of an invoice date is published."""

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        return [mart(self.date) for mart in DAILY_MARTS]

    def output(self):
        return marker("mart", "marts_ready", f"{self.date}.json")

    def run(self):
        spark = dw_spark()
        ready_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        names = ",".join(m.__name__ for m in DAILY_MARTS)
        row = spark.createDataFrame([(self.date, ready_at, names)],
                                    "invoice_date DATE, ready_at TIMESTAMP, marts STRING")
        existing = wh.read(spark, f"{MART}.marts_ready").where(F.col("invoice_date") != F.lit(self.date))
        wh.replace_table(spark, existing.unionByName(row).coalesce(1), f"{MART}.marts_ready")
        fs.write_json(self.output().path, {"date": self.date, "ready_at": ready_at})
