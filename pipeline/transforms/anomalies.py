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

Lifecycle: ``NEW -> ACKNOWLEDGED -> RESOLVED``, or ``FALSE_POSITIVE``. A line's status is its latest change in
``ecommerce_mart.anomaly_status_log``; the rule is written once, on pandas rows (``latest_changes``,
``apply_status``), used as it is by the review and by Spark through ``current_status`` and ``with_status``.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

RULES = ("stddev", "mad")
METRICS = ("quantity", "line_amount")
LINE_ID_COLUMNS = ("invoice_no", "stock_code", "invoice_ts", "quantity", "unit_price_paid")


def line_id() -> Column:
    """A stable id of an invoice line (lines are unique after de-duplication)."""
    return F.sha2(F.concat_ws("|", *[F.col(c).cast("string") for c in LINE_ID_COLUMNS]), 256).substr(1, 20)


def _sale_lines(fact: DataFrame) -> DataFrame:
    return fact.where(~F.col("is_cancellation") & (F.col("quantity") > 0))


def _long_sales(history: DataFrame, false_positive_ids: DataFrame) -> DataFrame:
    sales = _sale_lines(history).withColumn("line_id", line_id()).join(false_positive_ids, "line_id", "left_anti")
    return sales.select("stock_code", F.explode(F.array(*[
        F.struct(F.lit(m).alias("metric"), F.col(m).cast("double").alias("value")) for m in METRICS
    ])).alias("m")).select("stock_code", "m.metric", "m.value")


def _baselines(long: DataFrame, keys: list[str]) -> DataFrame:
    centre = long.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("baseline_lines"),
        F.median("value").alias("baseline_median"),
        F.stddev_samp("value").alias("baseline_stddev"),
    )
    spread = long.join(centre, keys).groupBy(*keys).agg(
        F.median(F.abs(F.col("value") - F.col("baseline_median"))).alias("baseline_mad"),
        F.avg(F.abs(F.col("value") - F.col("baseline_median"))).alias("baseline_meanad"),
    )
    return centre.join(spread, keys)


def product_baselines(history: DataFrame, false_positive_ids: DataFrame) -> DataFrame:
    """Per stock code and metric: baseline lines, median, standard deviation, MAD and mean absolute deviation.

    ``history``: fact lines before the scored date; ``false_positive_ids``: ``line_id`` of lines marked
    false positive, which do not count.
    """
    return _baselines(_long_sales(history, false_positive_ids), ["stock_code", "metric"])


def store_baselines(history: DataFrame, false_positive_ids: DataFrame) -> DataFrame:
    """Per metric, the same statistics over every product's sale lines: the baseline of new products."""
    return _baselines(_long_sales(history, false_positive_ids), ["metric"])


def score_lines(day_fact: DataFrame, baselines: DataFrame, rule: str, threshold: float,
                min_history: int, min_spread: float = 1.0, store: DataFrame | None = None) -> DataFrame:
    """One row per sale line of ``day_fact`` and metric that ``rule`` flags against its product's baseline.

    Columns: the line's identity and values, ``metric``, ``value``, the baseline used (lines, median,
    spread, ``baseline_scope``), ``rule``, ``threshold``, ``score``. A line flagged on both metrics gives
    two rows. Products with fewer than ``min_history`` baseline lines are scored against ``store``
    (``store_baselines``) when given, and not scored otherwise.
    """
    if rule not in RULES:
        raise ValueError(f"unknown anomaly rule {rule!r}: use one of {', '.join(RULES)}")
    lines = _sale_lines(day_fact).withColumn("line_id", line_id())
    long = lines.select("*", F.explode(F.array(*[
        F.struct(F.lit(m).alias("metric"), F.col(m).cast("double").alias("value")) for m in METRICS
    ])).alias("m")).select("*", "m.metric", "m.value").drop("m")
    stats = ("baseline_lines", "baseline_median", "baseline_stddev", "baseline_mad", "baseline_meanad")
    joined = long.join(baselines.where(F.col("baseline_lines") >= min_history), ["stock_code", "metric"], "left")
    joined = joined.withColumn("baseline_scope", F.when(F.col("baseline_lines").isNotNull(), F.lit("product")))
    if store is not None:
        fallback = store.select("metric", *[F.col(c).alias(f"_store_{c}") for c in stats])
        joined = joined.join(fallback, "metric", "left").withColumn(
            "baseline_scope", F.coalesce("baseline_scope", F.when(F.col("_store_baseline_lines") >= min_history,
                                                                  F.lit("store"))))
        joined = joined.select(*[c for c in joined.columns if not c.startswith("_store_") and c not in stats], *[
            F.when(F.col("baseline_scope") == "store", F.col(f"_store_{c}")).otherwise(F.col(c)).alias(c)
            for c in stats])
    joined = joined.where(F.col("baseline_scope").isNotNull())
    floor = F.lit(float(min_spread))
    if rule == "stddev":
        spread = F.greatest(F.coalesce(F.col("baseline_stddev"), F.lit(0.0)), floor)
        score = (F.col("value") - F.col("baseline_median")) / spread
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


STATUSES = ("NEW", "ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE")
INITIAL_STATUS = "NEW"
STATUS_COLUMNS = ("status", "status_changed_by", "status_changed_at")
CURRENT_STATUS_SCHEMA = StructType([
    StructField("line_id", StringType()), StructField("status", StringType()),
    StructField("status_changed_by", StringType()), StructField("status_changed_at", TimestampType())])
TRANSITIONS = {
    "NEW": {"ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE"},
    "ACKNOWLEDGED": {"RESOLVED", "FALSE_POSITIVE"},
    "RESOLVED": set(),
    "FALSE_POSITIVE": set(),
}


class InvalidTransition(ValueError):
    """An anomaly status change the lifecycle does not allow."""


def check_transition(current: str, new: str) -> None:
    """``NEW -> ACKNOWLEDGED -> RESOLVED``; ``NEW`` or ``ACKNOWLEDGED`` may also become ``FALSE_POSITIVE``."""
    if new not in STATUSES:
        raise InvalidTransition(f"unknown status {new!r}: use one of {', '.join(STATUSES)}")
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final)"
        raise InvalidTransition(f"an anomaly in status {current} cannot become {new}; allowed: {allowed}")


def latest_changes(status_log: pd.DataFrame) -> pd.DataFrame:
    """The lifecycle rule: a line's status is its latest change in ``status_log`` (by ``changed_at``; on a tie
    the later one in the log). The log rows that say so, one per line that has changes."""
    return status_log.sort_values("changed_at", kind="stable").drop_duplicates("line_id", keep="last") \
        .reset_index(drop=True)


def _statuses(status_log: pd.DataFrame) -> pd.DataFrame:
    latest = latest_changes(status_log)
    return pd.DataFrame({
        "line_id": latest["line_id"].astype(object), "status": latest["status"].astype(object),
        "status_changed_by": latest["changed_by"].astype(object),
        "status_changed_at": pd.to_datetime(latest["changed_at"])})


def apply_status(flags: pd.DataFrame, status_log: pd.DataFrame) -> pd.DataFrame:
    """Flagged lines with their lifecycle status: the line's latest change (``latest_changes``), or ``NEW``, by
    no one, when nobody has changed it. Status columns already in ``flags`` are replaced."""
    base = flags.drop(columns=[c for c in STATUS_COLUMNS if c in flags.columns])
    out = base.merge(_statuses(status_log), on="line_id", how="left")
    out["status"] = out["status"].fillna(INITIAL_STATUS)
    return out


def current_status(status_log: DataFrame) -> DataFrame:
    """The latest change per line (``latest_changes``) of a status log held by Spark (a small table, collected):
    ``line_id, status, status_changed_by, status_changed_at``."""
    return status_log.sparkSession.createDataFrame(_statuses(status_log.toPandas()), CURRENT_STATUS_SCHEMA)


def with_status(flags: DataFrame, status_log: DataFrame) -> DataFrame:
    """``apply_status`` over flagged lines held by Spark, batch by batch (the status log is small and collected)."""
    log_rows = status_log.toPandas()
    base = flags.drop(*STATUS_COLUMNS)
    schema = StructType([*base.schema.fields, *CURRENT_STATUS_SCHEMA.fields[1:]])
    return base.mapInPandas(lambda batches: (apply_status(b, log_rows) for b in batches), schema)
