"""Kimball star schema of ``ecommerce_dw`` and the marts built on it (pure transforms).

Surrogate keys are stable hashes of natural keys (products: of code and version start), so rebuilding a
dimension gives the same keys and facts can be keyed without a lookup; ``-1`` is the unknown member of
every dimension (guest lines, the ``Unspecified`` country, a product with no version in force).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.transforms.columns import date_key, non_product_flag

UNKNOWN_KEY = -1
UNSPECIFIED_COUNTRY = "XX"
LOW_DATE = dt.date(1900, 1, 1)
HIGH_DATE = dt.date(9999, 12, 31)
AMOUNT_TYPE = "decimal(18,3)"


def stable_key(*cols: str | Column) -> Column:
    """A non-negative bigint hash of natural-key columns (never -1)."""
    return F.pmod(F.xxhash64(*[F.col(c) if isinstance(c, str) else c for c in cols]), F.lit(2**62)).cast("bigint")


def with_unknown_member(dim: DataFrame, row: tuple) -> DataFrame:
    """``dim`` plus its unknown member row (every column nullable, so the member may leave fields empty)."""
    schema = T.StructType([T.StructField(f.name, f.dataType, True) for f in dim.schema])
    return dim.unionByName(dim.sparkSession.createDataFrame([row], schema))


def calendar_range(days: Iterable[dt.date], minimum_start: dt.date,
                   minimum_end: dt.date) -> tuple[dt.date, dt.date]:
    """The span of ``dim_date``: whole calendar years covering the minimum range and every feed day.

    From Jan 1 of the year of the earliest of ``minimum_start`` and ``days`` to Dec 31 of the year of the
    latest of ``minimum_end`` and ``days``, so every landed date has its ``date_key`` and a new year's first
    feed brings in that whole year.
    """
    days = list(days)
    first, last = min([minimum_start, *days]), max([minimum_end, *days])
    return dt.date(first.year, 1, 1), dt.date(last.year, 12, 31)


def dim_date(calendar: DataFrame, bank_holidays: DataFrame) -> DataFrame:
    """One row per calendar day (``calendar.date``) with UK (England) bank holidays, plus the unknown member.

    ``bank_holidays``: ``date, holiday_name``. ``day_of_week`` is ISO: 1 = Monday .. 7 = Sunday.
    """
    dow = F.weekday("date") + 1
    days = calendar.join(bank_holidays, "date", "left").select(
        date_key("date").alias("date_key"),
        "date",
        dow.alias("day_of_week"),
        F.date_format("date", "EEEE").alias("day_name"),
        (dow >= 6).alias("is_weekend"),
        F.weekofyear("date").alias("iso_week"),
        F.month("date").alias("month"),
        F.date_format("date", "MMMM").alias("month_name"),
        F.quarter("date").alias("quarter"),
        F.year("date").alias("year"),
        F.col("holiday_name").isNotNull().alias("is_uk_bank_holiday"),
        F.col("holiday_name").alias("bank_holiday_name"),
    )
    return with_unknown_member(days, (UNKNOWN_KEY, None, None, "Unknown", False, None, None, "Unknown", None, None,
                                      False, None))


def dim_product(products: DataFrame, non_product_patterns: list[str]) -> DataFrame:
    """SCD2 product dimension from ``ecommerce_db.products``: one row per code version, plus the unknown member."""
    versions = products.select(
        "product_key", "stock_code", "description", "unit_price", "valid_from", "valid_to", "is_current",
        (~non_product_flag("stock_code", non_product_patterns)).alias("is_merchandise"),
    )
    return with_unknown_member(versions, (UNKNOWN_KEY, "UNKNOWN", "Unknown product", None, LOW_DATE, HIGH_DATE,
                                          True, False))


def dim_country(countries: DataFrame) -> DataFrame:
    """SCD0 country dimension: one row per country code; ``Unspecified`` (XX) is the unknown member -1."""
    known = countries.where(F.col("country_code") != UNSPECIFIED_COUNTRY).select(
        stable_key("country_code").alias("country_key"), "country_code", "iso3", "country_name", "region",
        "continent",
    )
    return with_unknown_member(known, (UNKNOWN_KEY, UNSPECIFIED_COUNTRY, "XXX", "Unspecified", "Unknown", "Unknown"))


def country_key(country_code: str) -> Column:
    return (F.when(F.col(country_code).isNull() | (F.col(country_code) == UNSPECIFIED_COUNTRY), F.lit(UNKNOWN_KEY))
            .otherwise(stable_key(country_code)))


def customer_key(customer_id: str) -> Column:
    return F.when(F.col(customer_id).isNull(), F.lit(UNKNOWN_KEY)).otherwise(stable_key(customer_id))


def customer_sales_daily(lines: DataFrame) -> DataFrame:
    """Per known customer, invoice date and country: orders (distinct non-cancelled invoices), lines,
    gross revenue and returns amount with the ``mart_daily_sales`` definitions. Guest lines are left out."""
    known = lines.where(F.col("customer_id").isNotNull())
    measures = _sales_measures(F.col("quantity") * F.col("unit_price"))
    return known.groupBy("customer_id", F.to_date("invoice_ts").alias("invoice_date"), "country_code").agg(
        *(measures[name] for name in ("orders", "lines", "gross_revenue", "returns_amount")))


def dim_customer(sales_daily: DataFrame) -> DataFrame:
    """One row per known customer: home country (most orders; ties: lowest code), first and last order dates.

    Built from ``customer_sales_daily`` rows (a customer with only cancellations still appears, with NULL
    order dates). Plus the unknown member -1 for guest lines.
    """
    per_country = sales_daily.groupBy("customer_id", "country_code").agg(F.sum("orders").alias("orders"),
                                                                          F.sum("lines").alias("lines"))
    rank = Window.partitionBy("customer_id").orderBy(F.desc("orders"), F.desc("lines"), "country_code")
    home = per_country.withColumn("_rn", F.row_number().over(rank)).where("_rn = 1").select(
        "customer_id", F.col("country_code").alias("home_country_code"))
    dates = sales_daily.groupBy("customer_id").agg(
        F.min(F.when(F.col("orders") > 0, F.col("invoice_date"))).alias("first_order_date"),
        F.max(F.when(F.col("orders") > 0, F.col("invoice_date"))).alias("last_order_date"),
    )
    customers = home.join(dates, "customer_id").select(
        customer_key("customer_id").alias("customer_key"), "customer_id", "home_country_code",
        country_key("home_country_code").alias("home_country_key"), "first_order_date", "last_order_date",
    )
    return with_unknown_member(customers, (UNKNOWN_KEY, None, UNSPECIFIED_COUNTRY, UNKNOWN_KEY, None, None))


def fact_sales(lines: DataFrame, dim_product_df: DataFrame) -> DataFrame:
    """One row per loaded invoice line, with the product version in force on the invoice date.

    ``lines``: rows of ``ecommerce_db.transactions_raw``. The product key is the version with
    ``valid_from <= invoice date < valid_to`` (-1 when none is in force); country and customer keys are
    the stable hashes their dimensions use (-1 for ``Unspecified`` and guests).
    """
    versions = dim_product_df.where(F.col("product_key") != UNKNOWN_KEY).select(
        F.col("stock_code").alias("_code"), F.col("product_key"), F.col("valid_from").alias("_from"),
        F.col("valid_to").alias("_to"), F.col("unit_price").alias("list_unit_price"), "is_merchandise",
    )
    dated = lines.withColumn("invoice_date", F.to_date("invoice_ts"))
    joined = dated.join(
        F.broadcast(versions),
        (dated["stock_code"] == versions["_code"]) & (versions["_from"] <= dated["invoice_date"])
        & (dated["invoice_date"] < versions["_to"]),
        "left",
    )
    return joined.select(
        date_key("invoice_date").alias("date_key"),
        F.coalesce("product_key", F.lit(UNKNOWN_KEY)).alias("product_key"),
        country_key("country_code").alias("country_key"),
        customer_key("customer_id").alias("customer_key"),
        "invoice_no", "stock_code", "invoice_ts", "quantity",
        F.col("unit_price").alias("unit_price_paid"),
        (F.col("quantity") * F.col("unit_price")).cast(AMOUNT_TYPE).alias("line_amount"),
        "list_unit_price", "is_cancellation",
        F.coalesce("is_merchandise", ~F.col("is_non_product")).alias("is_merchandise"),
        "batch_id", "invoice_date",
    )


def mart_daily_sales(fact: DataFrame, dim_country_df: DataFrame) -> DataFrame:
    """One row per invoice date and country.

    ``orders``: distinct non-cancelled invoices; ``lines``: all fact lines; ``units``: quantity of
    non-cancelled lines with quantity > 0; ``gross_revenue``: their ``line_amount``; ``returns_amount``:
    ``line_amount`` of cancellation lines, as a positive number; ``net_revenue = gross - returns``;
    ``customers``: distinct known customers; ``avg_order_value = gross_revenue / orders``.
    """
    daily = fact.groupBy("invoice_date", "country_key").agg(
        *_sales_measures().values(),
        F.count_distinct(F.when(F.col("customer_key") != UNKNOWN_KEY, F.col("customer_key"))).alias("customers"),
    )
    return daily.join(dim_country_df.select("country_key", "country_code", "country_name"), "country_key", "left") \
        .select(
            "invoice_date", "country_key", "country_code", "country_name", "orders", "lines", "units",
            "gross_revenue", "returns_amount",
            (F.col("gross_revenue") - F.col("returns_amount")).cast(AMOUNT_TYPE).alias("net_revenue"),
            "customers",
            F.when(F.col("orders") > 0, (F.col("gross_revenue") / F.col("orders")).cast(AMOUNT_TYPE))
            .alias("avg_order_value"),
        )


def _sale() -> Column:
    return ~F.col("is_cancellation") & (F.col("quantity") > 0)


def _sales_measures(amount: Column | None = None) -> dict[str, Column]:
    """The sales measures as ``mart_daily_sales`` defines them, by name: orders, lines, units, gross revenue and
    returns. ``amount`` is a line's amount: the fact's ``line_amount`` unless given."""
    amount = F.col("line_amount") if amount is None else amount
    return {
        "orders": F.count_distinct(F.when(~F.col("is_cancellation"), F.col("invoice_no"))).alias("orders"),
        "lines": F.count(F.lit(1)).alias("lines"),
        "units": F.coalesce(F.sum(F.when(_sale(), F.col("quantity"))), F.lit(0)).cast("bigint").alias("units"),
        "gross_revenue": F.coalesce(F.sum(F.when(_sale(), amount)), F.lit(0)).cast(AMOUNT_TYPE)
        .alias("gross_revenue"),
        "returns_amount": F.coalesce(F.sum(F.when(F.col("is_cancellation"), -amount)), F.lit(0))
        .cast(AMOUNT_TYPE).alias("returns_amount"),
    }


def mart_hourly_sales(fact: DataFrame) -> DataFrame:
    """One row per invoice date and hour of day (UK wall clock): orders, lines, units, gross, returns, net."""
    hourly = fact.groupBy("invoice_date", F.hour("invoice_ts").alias("hour")).agg(
        *_sales_measures().values(),
        F.count_distinct(F.when(F.col("customer_key") != UNKNOWN_KEY, F.col("customer_key"))).alias("customers"),
    )
    return hourly.withColumn("net_revenue", (F.col("gross_revenue") - F.col("returns_amount")).cast(AMOUNT_TYPE))


def mart_product_performance(fact: DataFrame, dim_product_df: DataFrame) -> DataFrame:
    """One row per invoice date and stock code.

    ``units``/``gross_revenue``: non-cancelled lines with quantity > 0; ``returned_units``/``returns_amount``:
    cancellation lines, as positive numbers; ``orders``: distinct non-cancelled invoices;
    ``avg_price_paid = gross_revenue / units``; ``list_unit_price``: the list price of the version in force.
    """
    per_product = fact.groupBy("invoice_date", "stock_code").agg(
        *_sales_measures().values(),
        F.coalesce(F.sum(F.when(F.col("is_cancellation"), -F.col("quantity"))), F.lit(0)).cast("bigint")
        .alias("returned_units"),
        F.max("product_key").alias("product_key"),
        F.max("list_unit_price").alias("list_unit_price"),
    )
    products = dim_product_df.select("product_key", "description", "is_merchandise")
    return per_product.join(products, "product_key", "left").select(
        "invoice_date", "stock_code", "product_key", "description", "is_merchandise", "orders", "units",
        "gross_revenue", "returned_units", "returns_amount",
        F.when(F.col("units") > 0, (F.col("gross_revenue") / F.col("units")).cast("decimal(12,3)"))
        .alias("avg_price_paid"),
        "list_unit_price",
    )


def mart_customer_purchase_history(fact: DataFrame, dim_customer_df: DataFrame, dim_product_df: DataFrame,
                                   dim_country_df: DataFrame) -> DataFrame:
    """The shopper's view: one row per invoice line of a known customer.

    ``description`` is the product version's description at purchase time; guest lines are left out.
    """
    known = fact.where(F.col("customer_key") != UNKNOWN_KEY)
    return (
        known.join(dim_customer_df.select("customer_key", "customer_id"), "customer_key")
        .join(dim_product_df.select("product_key", "description"), "product_key", "left")
        .join(dim_country_df.select("country_key", "country_name"), "country_key", "left")
        .select("invoice_date", "customer_id", "invoice_no", "invoice_ts", "stock_code", "description", "quantity",
                "unit_price_paid", "line_amount", "is_cancellation", "country_name")
    )


RFM_SEGMENTS = (
    ("Champions", "r_score >= 4 AND f_score >= 4"),
    ("Loyal", "r_score >= 3 AND f_score >= 3"),
    ("New", "r_score >= 4 AND f_score = 1"),
    ("Promising", "r_score >= 3"),
    ("At risk", "f_score >= 3"),
    ("Hibernating", "r_score = 2"),
    ("Lost", "TRUE"),
)


def _score(order: Column, as_of: str) -> Column:
    """1..5 by percent rank within the run date (ties share a score; the best customer gets 5)."""
    rank = F.percent_rank().over(Window.partitionBy(as_of).orderBy(order))
    return F.least(F.lit(5), F.floor(rank * 5) + 1).cast("int")


def mart_customer_rfm(sales_daily: DataFrame, as_of_dates: DataFrame) -> DataFrame:
    """One row per known customer with at least one order, as of each run date (``as_of_dates.as_of_date``).

    Only days up to the run date count. ``recency_days``: days from the last order to the run date;
    ``frequency``: orders (distinct non-cancelled invoices); ``monetary_gbp``: net revenue (gross minus
    returns). Scores 1..5 are ``1 + floor(5 * percent_rank)`` capped at 5 within the run date: recency
    ranked from oldest to newest, frequency and monetary from lowest to highest, so 5 is best and ties
    share a score. ``segment``: the first of ``RFM_SEGMENTS`` whose rule on the R and F scores matches.
    """
    history = sales_daily.join(F.broadcast(as_of_dates), F.col("invoice_date") <= F.col("as_of_date"))
    per_customer = history.groupBy("as_of_date", "customer_id").agg(
        F.max(F.when(F.col("orders") > 0, F.col("invoice_date"))).alias("last_order_date"),
        F.sum("orders").cast("bigint").alias("frequency"),
        (F.sum("gross_revenue") - F.sum("returns_amount")).cast(AMOUNT_TYPE).alias("monetary_gbp"),
    ).where(F.col("frequency") > 0)
    scored = per_customer.select(
        "as_of_date", customer_key("customer_id").alias("customer_key"), "customer_id", "last_order_date",
        F.datediff("as_of_date", "last_order_date").alias("recency_days"), "frequency", "monetary_gbp",
        _score(F.desc(F.datediff("as_of_date", "last_order_date")), "as_of_date").alias("r_score"),
        _score(F.col("frequency").asc(), "as_of_date").alias("f_score"),
        _score(F.col("monetary_gbp").asc(), "as_of_date").alias("m_score"),
    )
    segment = F.lit(None).cast("string")
    for label, rule in reversed(RFM_SEGMENTS):
        segment = F.when(F.expr(rule), F.lit(label)).otherwise(segment)
    return scored.select(
        "*", F.concat_ws("", "r_score", "f_score", "m_score").alias("rfm_cell"), segment.alias("segment"))


def mart_cohort_retention(sales_daily: DataFrame, as_of_dates: DataFrame) -> DataFrame:
    """One row per first-purchase month (cohort) and months since it, as of each run date (``as_of_date``).

    Only days up to the run date count. A customer joins the cohort of the month of their first order
    (non-cancelled invoice) and is active in a month when they place an order in it. Every month from the
    cohort's to the run date's is listed, with 0 active customers where nobody ordered.
    ``retention_rate = customers_active / cohort_customers``.
    """
    orders = sales_daily.where(F.col("orders") > 0).join(F.broadcast(as_of_dates),
                                                         F.col("invoice_date") <= F.col("as_of_date"))
    months = orders.select("as_of_date", "customer_id",
                           F.trunc("invoice_date", "month").alias("activity_month")).distinct()
    cohorts = months.groupBy("as_of_date", "customer_id").agg(F.min("activity_month").alias("cohort_month"))
    sizes = cohorts.groupBy("as_of_date", "cohort_month").agg(F.count(F.lit(1)).alias("cohort_customers"))
    grid = sizes.select(
        "as_of_date", "cohort_month", "cohort_customers",
        F.explode(F.sequence(F.lit(0), F.months_between(F.trunc("as_of_date", "month"), "cohort_month")
                             .cast("int"))).alias("months_since"))
    active = months.join(cohorts, ["as_of_date", "customer_id"]).groupBy(
        "as_of_date", "cohort_month",
        F.months_between("activity_month", "cohort_month").cast("int").alias("months_since"),
    ).agg(F.count(F.lit(1)).alias("customers_active"))
    return grid.join(active, ["as_of_date", "cohort_month", "months_since"], "left").select(
        "as_of_date", "cohort_month", "months_since",
        F.add_months("cohort_month", F.col("months_since")).alias("activity_month"),
        F.col("cohort_customers").cast("bigint").alias("cohort_customers"),
        F.coalesce("customers_active", F.lit(0)).cast("bigint").alias("customers_active"),
        F.round(F.coalesce("customers_active", F.lit(0)) / F.col("cohort_customers"), 4)
        .cast("decimal(6,4)").alias("retention_rate"),
    )


def reconciliation(raw_lines: DataFrame, fact: DataFrame, daily_mart: DataFrame,
                   dimension_keys: dict[str, DataFrame]) -> DataFrame:
    """One row per invoice date and check: the loaded raw lines, the fact and the daily mart must agree.

    Checks: ``fact_lines`` (row count) and ``fact_line_amount`` (sum of quantity x price) of the fact vs
    the raw lines; ``mart_gross_revenue`` and ``mart_returns_amount`` of ``mart_daily_sales`` vs the fact;
    ``fact_orphans_<dim>``: fact rows whose key is missing from a dimension (expected 0).
    ``dimension_keys`` maps a fact key column to the dimension's DataFrame holding that column.
    """
    raw = raw_lines.groupBy(F.to_date("invoice_ts").alias("invoice_date")).agg(
        F.count(F.lit(1)).alias("raw_lines"),
        F.sum((F.col("quantity") * F.col("unit_price")).cast(AMOUNT_TYPE)).alias("raw_amount"))
    measures = _sales_measures()
    known = fact
    for key, dim in dimension_keys.items():
        known = known.join(dim.select(key).distinct().withColumn(f"_known_{key}", F.lit(True)), key, "left")
    facts = known.groupBy("invoice_date").agg(
        F.count(F.lit(1)).alias("fact_lines"), F.sum("line_amount").alias("fact_amount"),
        measures["gross_revenue"].alias("fact_gross"), measures["returns_amount"].alias("fact_returns"),
        *[F.count(F.when(F.col(f"_known_{key}").isNull(), 1)).alias(f"orphans_{key}") for key in dimension_keys],
    )
    mart = daily_mart.groupBy("invoice_date").agg(F.sum("gross_revenue").alias("mart_gross"),
                                                  F.sum("returns_amount").alias("mart_returns"))
    joined = raw.join(facts, "invoice_date", "full").join(mart, "invoice_date", "full")
    zero_amount = F.lit(0).cast(AMOUNT_TYPE)
    checks = [
        ("fact_lines", "raw_lines", "fact_lines", F.lit(0)),
        ("fact_line_amount", "raw_amount", "fact_amount", zero_amount),
        ("mart_gross_revenue", "fact_gross", "mart_gross", zero_amount),
        ("mart_returns_amount", "fact_returns", "mart_returns", zero_amount),
        *[(f"fact_orphans_{k}", None, f"orphans_{k}", F.lit(0)) for k in dimension_keys],
    ]
    rows = [F.struct(
        F.lit(name).alias("check"),
        (F.coalesce(F.col(exp), default) if exp else F.lit(0)).cast("string").alias("expected"),
        F.coalesce(F.col(act), default).cast("string").alias("actual"),
        ((F.coalesce(F.col(exp), default) if exp else F.lit(0)) == F.coalesce(F.col(act), default)).alias("passed"),
    ) for name, exp, act, default in checks]
    return joined.select("invoice_date", F.explode(F.array(*rows)).alias("_check")).select("invoice_date", "_check.*")


def purchase_history_layout(history: DataFrame, buckets: int) -> DataFrame:
    """Adds the storefront layout's partition columns: ``invoice_month`` (first day of the month of the
    invoice date) and ``customer_bucket = pmod(customer_id, buckets)``, so one shopper's history is in
    one bucket of each month."""
    return history.withColumn("invoice_month", F.trunc("invoice_date", "month")).withColumn(
        "customer_bucket", F.pmod(F.col("customer_id"), F.lit(buckets)).cast("int"))
