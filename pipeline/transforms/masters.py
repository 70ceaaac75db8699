"""Master data history: products as SCD Type 2, countries as SCD Type 0 (pure transforms)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

HIGH_DATE = dt.date(9999, 12, 31)
PRODUCT_COLUMNS = ["product_key", "stock_code", "description", "unit_price", "valid_from", "valid_to",
                   "is_current"]
COUNTRY_ATTRIBUTES = ["country_name", "iso3", "region", "continent", "source_country_name"]
COUNTRY_COLUMNS = ["country_code", "country_name", "iso3", "region", "continent", "source_country_name",
                   "first_seen"]
PRICE_TYPE = "decimal(12,3)"


class OutOfOrderSnapshot(ValueError):
    """A master snapshot older than the latest applied one, which SCD history cannot take."""


def plan_snapshots(applied: set[dt.date], requested: list[dt.date]) -> list[dt.date]:
    """Snapshot dates still to apply, in order; already applied ones are skipped (a rerun adds nothing).

    A snapshot older than the latest applied one is refused: applying it would rewrite history that
    facts may already reference.
    """
    latest = max(applied) if applied else None
    todo = sorted(d for d in set(requested) if d not in applied)
    if latest is not None and todo and todo[0] < latest:
        raise OutOfOrderSnapshot(
            f"snapshot {todo[0]} is older than the latest applied snapshot {latest}; "
            "refusing to rewrite SCD history (nothing was changed)"
        )
    return todo


def screen_snapshot(rows: DataFrame, key: str, columns: list[str], typed: dict[str, tuple[str, str]]) -> DataFrame:
    """Decide which snapshot records are applied: each row gets ``reason_code, reason_detail`` (NULL: good).

    ``rows``: one row per snapshot record, ``snapshot_date, source_file, raw_line``, the ``columns`` as text
    and ``record_error_code, record_error_detail`` (a record that could not be split). ``typed``: column ->
    (type it must cast to, reason code when it does not). Refused: unsplittable records, an empty ``key``, a
    value of the wrong type, and every record of a key listed twice on a date with different values (exact
    repeats are not a conflict). Values are trimmed, empty ones become NULL; ``_key`` holds the key.
    """
    trimmed = rows.select("snapshot_date", "source_file", "raw_line", "record_error_code", "record_error_detail",
                          *[F.nullif(F.trim(c), F.lit("")).alias(c) for c in columns]).withColumn("_key", F.col(key))

    def why(code, detail) -> F.Column:
        return F.struct(F.lit(code).alias("code"), detail.alias("detail"))

    reason = F.when(F.col("record_error_code").isNotNull(),
                    F.struct(F.col("record_error_code").alias("code"), F.col("record_error_detail").alias("detail")))
    reason = reason.when(F.col("_key").isNull(), why("EMPTY_KEY", F.lit(f"{key} is empty")))
    for column, (kind, code) in typed.items():
        reason = reason.when(F.col(column).isNotNull() & F.col(column).try_cast(kind).isNull(),
                             why(code, F.format_string(f"{column} '%s' is not a {kind}", F.col(column))))
    first = trimmed.withColumn("_why", reason)
    sig = F.when(F.col("_why").isNull(), F.to_json(F.struct(*columns)))
    per_key = Window.partitionBy("snapshot_date", "_key")
    conflicting = F.size(F.collect_set(sig).over(per_key)) > 1
    final = F.when(F.col("_why").isNotNull(), F.col("_why")).when(
        conflicting, why("CONFLICTING_DUPLICATE",
                         F.format_string(f"{key} '%s' is listed more than once with different values", "_key")))
    return first.withColumn("_why", final).select(
        "snapshot_date", "source_file", "raw_line", *columns, "_key",
        F.col("_why.code").alias("reason_code"), F.col("_why.detail").alias("reason_detail"))


def product_key(stock_code: str, valid_from: str) -> F.Column:
    """Surrogate key: a stable hash of the natural key and version start, so rebuilds give the same keys."""
    return F.pmod(F.xxhash64(F.col(stock_code), F.col(valid_from).cast("string")), F.lit(2**62)).cast("bigint")


def apply_product_snapshots(current: DataFrame, snapshots: DataFrame, held: DataFrame | None = None) -> DataFrame:
    """Apply full product snapshots (one or many dates, all newer than ``current``) as SCD Type 2.

    ``current``: the products table (one row per stock code version).
    ``snapshots``: ``snapshot_date, stock_code, description, unit_price``, one row per code and date.
    A version opens when a code first appears, when its description or price changes (NULL-safe) or
    when it returns after missing from a snapshot; it closes (``valid_to`` = that snapshot's date) on
    the next change or the first snapshot that omits the code. Result grain: one row per code version.
    ``held``: ``snapshot_date, stock_code`` whose record was refused on that date: the code keeps its
    version as if that snapshot had not mentioned it either way (neither changed nor deleted).
    """
    open_rows = current.where("is_current")
    closed_rows = current.where(~F.col("is_current")).select(*PRODUCT_COLUMNS)
    dates = snapshots.select(F.col("snapshot_date").alias("event_date")).distinct()
    codes = open_rows.select("stock_code").union(snapshots.select("stock_code")).distinct()
    snaps = snapshots.withColumn("snapshot_present", F.lit(True))
    grid = (
        codes.crossJoin(dates)
        .join(snaps.withColumnRenamed("snapshot_date", "event_date"), ["stock_code", "event_date"], "left")
        .select("stock_code", "event_date", "description", "unit_price",
                F.col("snapshot_present").isNotNull().alias("present"),
                F.lit(None).cast("bigint").alias("product_key"), F.lit(False).alias("is_base"))
    )
    if held is not None:
        grid = grid.join(held.select("stock_code", F.col("snapshot_date").alias("event_date")),
                         ["stock_code", "event_date"], "left_anti")
    base = open_rows.select(
        "stock_code", F.col("valid_from").alias("event_date"), "description", "unit_price",
        F.lit(True).alias("present"), "product_key", F.lit(True).alias("is_base"),
    )
    timeline = base.unionByName(grid).withColumn(
        "sig", F.when(F.col("present"), F.to_json(F.struct("description", F.col("unit_price").cast("string"))))
    )
    by_code = Window.partitionBy("stock_code").orderBy("event_date")
    events = (
        timeline.withColumn("prev_sig", F.lag("sig").over(by_code))
        .where(F.col("is_base") | ~F.col("sig").eqNullSafe(F.col("prev_sig")))
        .withColumn("next_event", F.lead("event_date").over(by_code))
        .where(F.col("present"))
    )
    versions = events.select(
        F.coalesce("product_key", product_key("stock_code", "event_date")).alias("product_key"),
        "stock_code", "description", "unit_price",
        F.col("event_date").alias("valid_from"),
        F.coalesce("next_event", F.lit(HIGH_DATE)).alias("valid_to"),
        F.col("next_event").isNull().alias("is_current"),
    )
    return closed_rows.unionByName(versions)


def apply_country_snapshots(current: DataFrame, snapshots: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Apply country snapshots as SCD Type 0: new codes are inserted, existing rows are never rewritten.

    Returns the new countries table (one row per country code) and the ignored changes (one row per
    snapshot date, code and attribute whose snapshot value differs from the kept one), for data quality.
    """
    first = Window.partitionBy("country_code").orderBy("snapshot_date", "source_country_name")
    new_codes = (
        snapshots.withColumn("_rn", F.row_number().over(first)).where("_rn = 1")
        .join(current.select("country_code"), "country_code", "left_anti")
        .select(*[F.col(c) for c in COUNTRY_COLUMNS[:-1]], F.col("snapshot_date").alias("first_seen"))
    )
    table = current.select(*COUNTRY_COLUMNS).unionByName(new_codes)
    kept = table.select("country_code", *[F.col(a).alias(f"kept_{a}") for a in COUNTRY_ATTRIBUTES])
    compared = snapshots.join(kept, "country_code")
    changes = compared.select(
        "snapshot_date", "country_code",
        F.explode(F.array(*[
            F.struct(F.lit(a).alias("attribute"), F.col(f"kept_{a}").alias("kept_value"),
                     F.col(a).alias("snapshot_value"))
            for a in COUNTRY_ATTRIBUTES
        ])).alias("c"),
    ).select("snapshot_date", "country_code", "c.*").where(~F.col("kept_value").eqNullSafe(F.col("snapshot_value")))
    return table, changes
