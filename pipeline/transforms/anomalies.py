"""Suspicious order lines: quantity or amount far outside the product's own history (pure transforms).

Two rules, chosen in config:

- ``stddev`` (the classic rule): flag when value > median + ``k`` x standard deviation
  (k = 2 by default). Score = (value - median) / stddev.
- ``mad`` (robust): modified z-score 0.6745 x (value - median) / MAD (Iglewicz and Hoaglin), flag above a
  threshold (3.5 by default). When MAD is 0 (a product nearly always sold in the same quantity) the mean
  absolute deviation x 1.2533 stands in for it, as in their paper.

The spread never goes below ``min_spread`` (1 unit or 1 GBP by default), so a product always sold in the
same quantity is still scored.

Only sale lines (not cancelled, quantity > 0) are scored and form baselines; lines marked false positive
leave the baseline. A product with fewer than ``min_history`` baseline lines (a new product: both famous bulk
orders of the real data are their product's first sale) is scored against the store-wide baseline of the
same window instead, when one is given (``baseline_scope = 'store'``).

The lifecycle rule (``transforms.anomaly_status``) is written once, on pandas rows; Spark applies it through
``current_status`` and ``with_status``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from pipeline.transforms.anomaly_status import STATUS_COLUMNS, apply_status, statuses

RULES = ("stddev", "mad")
METRICS = ("quantity", "line_amount")
LINE_ID_COLUMNS = ("invoice_no", "stock_code", "invoice_ts", "quantity", "unit_price_paid")
STORE_BASELINE_SCHEMA = StructType([
    StructField("score_date", DateType()), StructField("metric", StringType()),
    StructField("baseline_lines", LongType()), StructField("baseline_median", DoubleType()),
    StructField("baseline_stddev", DoubleType()), StructField("baseline_mad", DoubleType()),
    StructField("baseline_meanad", DoubleType())])


def line_id() -> Column:
    """A stable id of an invoice line (lines are unique after de-duplication)."""
    return F.sha2(F.concat_ws("|", *[F.col(c).cast("string") for c in LINE_ID_COLUMNS]), 256).substr(1, 20)


def _sale_lines(fact: DataFrame) -> DataFrame:
    return fact.where(~F.col("is_cancellation") & (F.col("quantity") > 0))


def _long(lines: DataFrame) -> DataFrame:
    """One row per line and metric (``metric``, ``value`` as double)."""
    return lines.select("*", F.explode(F.array(*[
        F.struct(F.lit(m).alias("metric"), F.col(m).cast("double").alias("value")) for m in METRICS
    ])).alias("m")).select("*", "m.metric", "m.value").drop("m")


def history_range(dates: list[dt.date], baseline_days: int) -> tuple[dt.date, dt.date]:
    """The first and last invoice date whose lines scoring ``dates`` reads."""
    return min(dates) - dt.timedelta(days=baseline_days), max(dates)


def _median(ordered: np.ndarray) -> float:
    n = len(ordered)
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)


def window_stats(days: np.ndarray, values: dict[str, np.ndarray], score_days, baseline_days: int) -> list[tuple]:
    """Per score day and metric, ``(score_day, metric, lines, median, sample stddev, MAD, mean absolute
    deviation)`` of the values dated in the ``baseline_days`` before it (a day with none gives no row).

    ``days``: sorted ``datetime64[D]``; ``values``: one array per metric, aligned with ``days``. The median of
    an even count is the mean of the two middle values; the standard deviation of one value is None.
    """
    rows = []
    for day in score_days:
        d = np.datetime64(day, "D")
        lo, hi = days.searchsorted(d - np.timedelta64(baseline_days, "D")), days.searchsorted(d)
        if hi == lo:
            continue
        for metric, column in values.items():
            ordered = np.sort(column[lo:hi])
            median = _median(ordered)
            deviations = np.sort(np.abs(ordered - median))
            rows.append((pd.Timestamp(d).date(), metric, hi - lo, median,
                         float(ordered.std(ddof=1)) if hi - lo > 1 else None, _median(deviations),
                         float(deviations.mean())))
    return rows


def _day_arrays(sales: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The invoice days (``datetime64[D]``) and one float array per metric, in the rows' order."""
    return (pd.to_datetime(sales["invoice_date"]).to_numpy(dtype="datetime64[D]"),
            {m: sales[m].to_numpy(dtype="float64") for m in METRICS})


def store_baselines(sales: pd.DataFrame, dates: list[dt.date], baseline_days: int) -> pd.DataFrame:
    """Per date of ``dates`` and metric, the statistics of every product's sale lines in the ``baseline_days``
    before it: the baseline of new products (the columns of ``STORE_BASELINE_SCHEMA``).

    ``sales``: ``invoice_date`` and one float column per metric, one row per sale line that is not a false
    positive (``store_sales`` selects them).
    """
    days, values = _day_arrays(sales.sort_values("invoice_date", kind="stable"))
    return pd.DataFrame(window_stats(days, values, sorted(dates), baseline_days),
                        columns=[f.name for f in STORE_BASELINE_SCHEMA.fields])


def store_sales(fact: DataFrame, dates: list[dt.date], false_positive_ids: DataFrame,
                baseline_days: int) -> DataFrame:
    """The sale lines ``store_baselines`` reads: ``invoice_date`` and each metric as double, false positives
    left out."""
    first, last = history_range(dates, baseline_days)
    sales = _sale_lines(fact.where((F.col("invoice_date") >= first) & (F.col("invoice_date") < last)))
    return sales.withColumn("line_id", line_id()).join(F.broadcast(false_positive_ids), "line_id", "left_anti") \
        .select("invoice_date", *[F.col(m).cast("double").alias(m) for m in METRICS])


def _product_stats(dates: set[dt.date], baseline_days: int):
    """The statistics of every product of a partition (all of a product's lines in one partition), each product
    scored on the dates of ``dates`` it has lines on, its history without false positives."""
    score_days = np.array(sorted(dates), dtype="datetime64[D]")
    columns = ["stock_code", *(f.name for f in STORE_BASELINE_SCHEMA.fields)]

    def stats(batches):
        parts = [b for b in batches if len(b)]
        if not parts:
            return
        lines = pd.concat(parts, ignore_index=True).sort_values(["stock_code", "invoice_date"], kind="stable")
        codes, history = lines["stock_code"].to_numpy(), ~lines["is_false_positive"].to_numpy(dtype=bool)
        days, values = _day_arrays(lines)
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        rows = []
        for lo, hi in zip(starts, [*starts[1:], len(codes)], strict=True):
            scored = np.intersect1d(days[lo:hi], score_days)
            if len(scored):
                keep = history[lo:hi]
                rows += [(codes[lo], *r) for r in window_stats(
                    days[lo:hi][keep], {m: v[lo:hi][keep] for m, v in values.items()}, scored, baseline_days)]
        yield pd.DataFrame(rows, columns=columns)
    return stats


def product_baselines(fact: DataFrame, dates: list[dt.date], false_positive_ids: DataFrame,
                      baseline_days: int) -> DataFrame:
    """The sale lines of ``dates`` in long form (one row per line and metric, with ``line_id``), each with the
    statistics of its product's sale lines in the ``baseline_days`` before its invoice date (``window_stats``:
    baseline lines, median, sample standard deviation, MAD, mean absolute deviation; null without history).

    ``fact``: fact lines covering ``history_range(dates, baseline_days)``; ``false_positive_ids``: ``line_id``
    of lines marked false positive, which leave every baseline (they are still scored themselves). Each
    product's lines are read once for all of ``dates``.
    """
    first, last = history_range(dates, baseline_days)
    sales = _sale_lines(fact.where(F.col("invoice_date").between(first, last))).withColumn("line_id", line_id())
    flagged_false = false_positive_ids.select("line_id", F.lit(True).alias("is_false_positive"))
    sales = sales.join(F.broadcast(flagged_false), "line_id", "left") \
        .withColumn("is_false_positive", F.coalesce("is_false_positive", F.lit(False)))
    schema = StructType([StructField("stock_code", StringType()), *STORE_BASELINE_SCHEMA.fields])
    scored_lines = sales.where(F.col("invoice_date").isin(list(dates)))
    stats = sales.join(scored_lines.select("stock_code").distinct(), "stock_code", "left_semi").select(
        "stock_code", "invoice_date", "is_false_positive", *[F.col(m).cast("double").alias(m) for m in METRICS]) \
        .repartition("stock_code").mapInPandas(_product_stats(set(dates), baseline_days), schema) \
        .withColumnRenamed("score_date", "invoice_date")
    scored = _long(scored_lines.drop("is_false_positive"))
    return scored.join(stats, ["stock_code", "invoice_date", "metric"], "left")


def score_lines(baselined: DataFrame, rule: str, threshold: float, min_history: int, min_spread: float = 1.0,
                store: DataFrame | None = None) -> DataFrame:
    """One row per sale line and metric of ``baselined`` (``product_baselines``) that ``rule`` flags.

    Columns: the line's identity and values, ``metric``, ``value``, the baseline used (lines, median,
    spread, ``baseline_scope``), ``rule``, ``threshold``, ``score``. A line flagged on both metrics gives
    two rows. Products with fewer than ``min_history`` baseline lines are scored against ``store``
    (``store_baselines`` of the same dates, as a DataFrame) when given, and not scored otherwise.
    """
    if rule not in RULES:
        raise ValueError(f"unknown anomaly rule {rule!r}: use one of {', '.join(RULES)}")
    stats = ("baseline_lines", "baseline_median", "baseline_stddev", "baseline_mad", "baseline_meanad")
    product = F.col("baseline_lines") >= min_history
    joined = baselined.withColumn("baseline_scope", F.when(product, F.lit("product")))
    if store is not None:
        fallback = store.select(F.col("score_date").alias("invoice_date"), "metric",
                                *[F.col(c).alias(f"_store_{c}") for c in stats])
        joined = joined.join(F.broadcast(fallback), ["invoice_date", "metric"], "left").withColumn(
            "baseline_scope", F.coalesce("baseline_scope", F.when(F.col("_store_baseline_lines") >= min_history,
                                                                  F.lit("store"))))
        joined = joined.select(*[c for c in joined.columns if not c.startswith("_store_") and c not in stats], *[
            F.when(F.col("baseline_scope") == "store", F.col(f"_store_{c}")).otherwise(F.col(c)).alias(c)
            for c in stats])
    joined = joined.where(F.col("baseline_scope").isNotNull())
    floor = F.lit(float(min_spread))
    if rule == "stddev":
        spread = F.greatest(F.coalesce(F.col("baseline_stddev"), F.lit(0.0)), floor)
    else:
        mad = F.when(F.col("baseline_mad") > 0, F.col("baseline_mad") / 0.6745) \
            .otherwise(F.col("baseline_meanad") * 1.2533)
        spread = F.greatest(mad, floor)
    score = (F.col("value") - F.col("baseline_median")) / spread
    return joined.where(score > threshold).select(
        "line_id", "invoice_date", "invoice_no", "stock_code", "invoice_ts", "customer_key", "quantity",
        "unit_price_paid", "line_amount", "metric", "value", "baseline_lines", "baseline_median",
        spread.alias("baseline_spread"), F.lit(rule).alias("rule"), F.lit(float(threshold)).alias("threshold"),
        F.round(score, 3).alias("score"), "baseline_scope",
    )


CURRENT_STATUS_SCHEMA = StructType([
    StructField("line_id", StringType()), StructField("status", StringType()),
    StructField("status_changed_by", StringType()), StructField("status_changed_at", TimestampType())])


def current_status(status_log: DataFrame) -> DataFrame:
    """The latest change per line (``latest_changes``) of a status log held by Spark (a small table, collected):
    ``line_id, status, status_changed_by, status_changed_at``."""
    return status_log.sparkSession.createDataFrame(statuses(status_log.toPandas()), CURRENT_STATUS_SCHEMA)


def with_status(flags: DataFrame, status_log: DataFrame) -> DataFrame:
    """``apply_status`` over flagged lines held by Spark, batch by batch (the status log is small and collected)."""
    log_rows = status_log.toPandas()
    base = flags.drop(*STATUS_COLUMNS)
    schema = StructType([*base.schema.fields, *CURRENT_STATUS_SCHEMA.fields[1:]])
    return base.mapInPandas(lambda batches: (apply_status(b, log_rows) for b in batches), schema)
