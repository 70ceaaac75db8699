"""Data-quality check types (pure transforms, like dbt tests): each returns the failing rows.

Every function returns a DataFrame with one row per failure and a ``failing_key`` column (a readable key
of the failing row or group); an empty result means the check passes. ``by`` names columns that split the
check into independent groups, kept in the result (a check of many invoice dates at once, each date judged
on its own rows). Which tables and columns are checked, and with what severity, is configuration
(``conf/dq_checks.toml``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def _key(columns: list[str]):
    return F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("NULL")) for c in columns])


def not_null(df: DataFrame, columns: list[str], key_columns: list[str], by: Sequence[str] = ()) -> DataFrame:
    """Rows where any of ``columns`` is NULL; keyed by ``key_columns`` and the NULL column names."""
    nulls = F.concat_ws(",", *[F.when(F.col(c).isNull(), F.lit(c)) for c in columns])
    return df.where(F.length(nulls) > 0).select(
        *by, F.concat(_key(key_columns), F.lit(" null: "), nulls).alias("failing_key"))


def unique(df: DataFrame, columns: list[str], by: Sequence[str] = ()) -> DataFrame:
    """Values of ``columns`` held by more than one row."""
    return df.groupBy(*by, *columns).count().where("count > 1").select(
        *by, F.concat(_key(columns), F.lit(" x"), F.col("count").cast("string")).alias("failing_key"))


def relationships(df: DataFrame, column: str, parent: DataFrame, parent_column: str,
                  as_of: str | None = None, valid_from: str = "valid_from", valid_to: str = "valid_to",
                  by: Sequence[str] = ()) -> DataFrame:
    """Rows whose ``column`` has no row in ``parent``; with ``as_of`` (SCD2-aware) the parent row must also be
    in force on that date: ``valid_from <= as_of < valid_to``."""
    p = parent.select(F.col(parent_column).alias("_pk"),
                      *([F.col(valid_from).alias("_from"), F.col(valid_to).alias("_to")] if as_of else []))
    cond = df[column] == p["_pk"]
    if as_of:
        cond = cond & (p["_from"] <= df[as_of]) & (df[as_of] < p["_to"])
    keys = [column] + ([as_of] if as_of else [])
    return df.join(p, cond, "left_anti").select(*by, _key(keys).alias("failing_key"))


def accepted_values(df: DataFrame, column: str, values: list, by: Sequence[str] = ()) -> DataFrame:
    """Rows whose ``column`` is not one of ``values`` (NULL passes, as in dbt)."""
    return df.where(F.col(column).isNotNull() & ~F.col(column).isin(values)) \
        .groupBy(*by, column).count().select(
            *by, F.concat(F.col(column).cast("string"), F.lit(" x"), F.col("count").cast("string"))
            .alias("failing_key"))


def scd2_integrity(df: DataFrame, key: str, valid_from: str = "valid_from", valid_to: str = "valid_to",
                   is_current: str = "is_current", by: Sequence[str] = ()) -> DataFrame:
    """Keys with more than one current row, and versions that are empty or overlap the next one.

    A key without a current row is a deleted product: the first snapshot that omitted it closed its last
    version (``masters.apply_product_snapshots``), which is history, not an integrity fault.
    """
    current = df.groupBy(*by, key).agg(F.sum(F.col(is_current).cast("int")).alias("_current")) \
        .where("_current > 1").select(*by, F.concat(F.col(key), F.lit(" current rows: "),
                                                     F.col("_current").cast("string")).alias("failing_key"))
    nxt = F.lead(valid_from).over(Window.partitionBy(*by, key).orderBy(valid_from, valid_to))
    bad = df.withColumn("_next_from", nxt).where(
        (F.col(valid_from) >= F.col(valid_to)) | (F.col("_next_from") < F.col(valid_to))).select(
        *by, F.concat(F.col(key), F.lit(" version from "), F.col(valid_from).cast("string"),
                      F.lit(" overlaps or is empty")).alias("failing_key"))
    return current.unionByName(bad)


def batch_accounting(audit: DataFrame, by: Sequence[str] = ()) -> DataFrame:
    """Batches where ``rows_received <> rows_loaded + rows_quarantined + rows_duplicate``."""
    return audit.where(F.col("rows_received") != F.col("rows_loaded") + F.col("rows_quarantined")
                       + F.col("rows_duplicate")).select(*by, F.col("batch_id").alias("failing_key"))


def batch_rows(audit: DataFrame, raw_counts: DataFrame, by: Sequence[str] = ()) -> DataFrame:
    """Batches whose published raw rows differ from the audit's ``rows_loaded`` (a line loaded twice, or
    lost). ``raw_counts``: ``batch_id, rows`` counted in ``transactions_raw``; a batch without rows counts 0."""
    joined = audit.join(raw_counts, "batch_id", "left").withColumn("rows", F.coalesce("rows", F.lit(0)))
    return joined.where(F.col("rows") != F.col("rows_loaded")).select(*by, F.format_string(
        "%s: %d rows in transactions_raw, audit says %d loaded", "batch_id", "rows", "rows_loaded"
    ).alias("failing_key"))


def batch_received(audit: DataFrame, landed: DataFrame, by: Sequence[str] = ()) -> DataFrame:
    """Batches whose ``rows_received`` differs from the data lines of the landed file (``landed``:
    ``batch_id, data_lines`` and the ``by`` columns); a batch without an audit row or without a landed file
    fails too."""
    joined = audit.select(*by, "batch_id", "rows_received").join(landed, [*by, "batch_id"], "full")
    return joined.where(~F.col("rows_received").eqNullSafe(F.col("data_lines"))).select(*by, F.format_string(
        "%s: %s lines landed, audit says %s received", "batch_id",
        F.coalesce(F.col("data_lines").cast("string"), F.lit("no file")),
        F.coalesce(F.col("rows_received").cast("string"), F.lit("no audit row"))).alias("failing_key"))


def batch_encoding(audit: DataFrame, expected: list[str], by: Sequence[str] = ()) -> DataFrame:
    """Batches whose file was not in one of the ``expected`` encodings (it was decoded, and the audit says
    with which: worth asking the source system why)."""
    return audit.where(F.col("encoding").isNotNull() & ~F.col("encoding").isin(expected)).select(
        *by, F.format_string("%s: read as %s", "batch_id", "encoding").alias("failing_key"))


def volume(counts: DataFrame, days: list[dt.date], weeks: int, low: float, high: float) -> DataFrame:
    """Each day's row count against the mean of the same weekday over the previous ``weeks`` weeks.

    ``counts``: ``date, rows`` per date (a date without rows may be absent). Fails a day (result column
    ``day``) when its ratio is below ``low`` or above ``high``; passes a day without history yet.
    """
    lookups = counts.sparkSession.createDataFrame(
        [(day, day - dt.timedelta(weeks=w), w) for day in days for w in range(weeks + 1)],
        "day DATE, date DATE, weeks_back INT")
    per_day = lookups.join(counts, "date", "left").groupBy("day").agg(
        F.coalesce(F.sum(F.when(F.col("weeks_back") == 0, F.col("rows"))), F.lit(0)).alias("_today"),
        F.avg(F.when(F.col("weeks_back") > 0, F.col("rows"))).alias("_base"))
    return per_day.where(F.col("_base").isNotNull() & (
        (F.col("_today") < F.col("_base") * low) | (F.col("_today") > F.col("_base") * high))).select(
        "day", F.format_string("%d rows vs %.1f on the same weekday (ratio %.2f)", "_today", "_base",
                               F.col("_today") / F.col("_base")).alias("failing_key"))
