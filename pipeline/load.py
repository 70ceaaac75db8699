"""Ingestion steps: read landed feeds, call the pure transforms, publish atomically, record the audit.

Each step takes any number of batches or snapshots and runs a fixed number of Spark jobs for all of
them, so a 4-hour batch, a day, or a year of backfill use the same code.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline import config
from pipeline import warehouse as wh
from pipeline.replay import HEADER
from pipeline.transforms import masters, transactions

log = logging.getLogger(__name__)


class NothingLostViolation(AssertionError):
    """Rows received differ from rows loaded + quarantined + duplicate: publishing is refused."""


@dataclass(frozen=True)
class Batch:
    batch_id: str
    feed: str
    path: str
    window_start: dt.datetime
    window_end: dt.datetime


def non_product_patterns() -> list[str]:
    path = config.resolve_path(config.reference().non_product_codes)
    with open(path, newline="", encoding="utf-8") as fh:
        return [row["stock_code_pattern"] for row in csv.DictReader(fh)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def audit_rows(spark: SparkSession, batches: list[Batch], counts: dict[str, dict], started_at, status="LOADED"):
    finished = _now()
    rows = []
    for b in batches:
        c = counts.get(b.batch_id, {})
        rows.append((b.batch_id, b.feed, b.window_start, b.window_end, b.path,
                     int(c.get("rows_received") or 0), int(c.get("rows_loaded") or 0),
                     int(c.get("rows_quarantined") or 0), int(c.get("rows_duplicate") or 0),
                     int(c.get("rows_released") or 0), status, started_at, finished))
    return spark.createDataFrame(rows, wh.read(spark, "batch_audit").schema)


def upsert_audit(spark: SparkSession, new_rows: DataFrame) -> None:
    existing = wh.read(spark, "batch_audit")
    merged = existing.join(new_rows.select("batch_id"), "batch_id", "left_anti").unionByName(new_rows)
    wh.replace_table(spark, merged.coalesce(1), "batch_audit")


def applied_snapshots(spark: SparkSession, feed: str) -> set[dt.date]:
    rows = wh.read(spark, "batch_audit").where((F.col("feed") == feed) & (F.col("status") == "LOADED"))
    return {r.window_start.date() for r in rows.select("window_start").collect()}


def check_nothing_lost(counts: dict[str, dict]) -> None:
    bad = {b: c for b, c in counts.items()
           if c["rows_received"] != c["rows_loaded"] + c["rows_quarantined"] + c["rows_duplicate"]}
    if bad:
        raise NothingLostViolation(f"batch accounting does not add up, refusing to publish: {bad}")


def read_batch_lines(spark: SparkSession, batches: list[Batch]) -> DataFrame:
    """One row per data line of the given transaction files: ``batch_id, source_file, raw_line``."""
    by_file = spark.createDataFrame([(_file_name(b.path), b.batch_id) for b in batches],
                                    "source_file STRING, batch_id STRING")
    text = spark.read.text([b.path for b in batches]).select(
        F.col("value").alias("raw_line"), F.col("_metadata.file_name").alias("source_file"),
    )
    return (
        text.where((F.trim("raw_line") != "") & (F.col("raw_line") != HEADER))
        .join(F.broadcast(by_file), "source_file")
        .select("batch_id", "source_file", "raw_line")
    )


def _file_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _masters_for_fk(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    return wh.read(spark, "products").select("stock_code"), wh.read(spark, "countries")


def publish_invoice_dates(spark: SparkSession, dates: DataFrame, batch_ids: list[str]) -> None:
    wh.replace_partitions(spark, dates.coalesce(1), "batch_invoice_dates", "batch_id", batch_ids)


def load_transaction_batches(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Load transaction batches into ``transactions_raw`` (partition per batch), quarantine and audit."""
    if not batches:
        return {}
    started = _now()
    ids = [b.batch_id for b in batches]
    products, countries = _masters_for_fk(spark)
    classified = transactions.classify_lines(
        read_batch_lines(spark, batches), products, countries, non_product_patterns()
    ).persist()
    counts = {r.batch_id: {**r.asDict(), "rows_released": 0}
              for r in transactions.batch_counts(classified).collect()}
    for b in ids:
        counts.setdefault(b, {"batch_id": b, "rows_received": 0, "rows_loaded": 0, "rows_quarantined": 0,
                              "rows_duplicate": 0, "rows_released": 0})
    check_nothing_lost(counts)
    previous = wh.read(spark, "transactions_quarantine").where(F.col("batch_id").isin(ids)).cache()
    resolved = previous.where(F.col("resolved_at").isNotNull())
    if not resolved.isEmpty():
        for r in transactions.released_counts(classified, resolved).collect():
            counts[r.batch_id]["rows_released"] = r.rows_released
    loaded = transactions.loaded_rows(classified).withColumn("ingested_at", F.lit(started))
    wh.replace_partitions(spark, loaded.repartition("batch_id"), "transactions_raw", "batch_id", ids)
    publish_invoice_dates(spark, transactions.invoice_dates(loaded), ids)
    new_quarantine = transactions.quarantined_rows(classified)
    if any(c["rows_quarantined"] for c in counts.values()) or not previous.isEmpty():
        merged = transactions.merge_quarantine(wh.read(spark, "transactions_quarantine"), new_quarantine, ids,
                                               F.lit(started))
        wh.replace_table(spark, merged.coalesce(1), "transactions_quarantine")
    upsert_audit(spark, audit_rows(spark, batches, counts, started))
    previous.unpersist()
    classified.unpersist()
    return counts


def _read_snapshot_csv(spark: SparkSession, batches: list[Batch], schema: str) -> DataFrame:
    by_file = spark.createDataFrame([(_file_name(b.path), b.window_start.date()) for b in batches],
                                    "source_file STRING, snapshot_date DATE")
    df = spark.read.csv([b.path for b in batches], header=True, schema=schema, enforceSchema=False,
                        mode="FAILFAST", escape='"')
    return df.withColumn("source_file", F.col("_metadata.file_name")).join(F.broadcast(by_file), "source_file")


def _snapshot_counts(df: DataFrame, key: str) -> dict[dt.date, dict]:
    rows = df.groupBy("snapshot_date").agg(
        F.count(F.lit(1)).alias("rows_received"), F.count_distinct(key).alias("distinct_keys")
    ).collect()
    return {r.snapshot_date: {"rows_received": r.rows_received, "rows_loaded": r.distinct_keys,
                              "rows_quarantined": 0, "rows_duplicate": r.rows_received - r.distinct_keys}
            for r in rows}


def pending_snapshots(spark: SparkSession, feed: str, batches: list[Batch]) -> list[Batch]:
    """The snapshots not applied yet, in date order; an older one than the latest applied is refused."""
    todo = masters.plan_snapshots(applied_snapshots(spark, feed), [b.window_start.date() for b in batches])
    by_date = {b.window_start.date(): b for b in batches}
    return [by_date[d] for d in todo]


def _audit_snapshots(spark: SparkSession, batches: list[Batch], counts: dict, started) -> dict[str, dict]:
    by_id = {b.batch_id: counts[b.window_start.date()] for b in batches}
    upsert_audit(spark, audit_rows(spark, batches, by_id, started))
    return by_id


def load_product_snapshots(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Apply daily products snapshots to ``products`` (SCD2); already applied dates are skipped."""
    batches = pending_snapshots(spark, "products", batches)
    if not batches:
        return {}
    started = _now()
    raw = _read_snapshot_csv(spark, batches, "stock_code STRING, description STRING, unit_price STRING")
    snaps = raw.select(
        "snapshot_date", F.trim("stock_code").alias("stock_code"),
        F.nullif(F.trim("description"), F.lit("")).alias("description"),
        F.nullif(F.trim("unit_price"), F.lit("")).alias("unit_price_text"),
    ).withColumn("unit_price", F.col("unit_price_text").try_cast("decimal(12,3)")).cache()
    bad = snaps.where(F.col("unit_price_text").isNotNull() & F.col("unit_price").isNull()).limit(5).collect()
    if bad:
        raise ValueError(
            "products snapshot refused, unit_price is not a decimal: "
            + ", ".join(f"{r.snapshot_date} {r.stock_code}={r.unit_price_text!r}" for r in bad)
        )
    counts = _snapshot_counts(snaps, "stock_code")
    snapshot = snaps.dropDuplicates(["snapshot_date", "stock_code"]).drop("unit_price_text")
    new_table = masters.apply_product_snapshots(wh.read(spark, "products"), snapshot)
    wh.replace_table(spark, new_table.repartition(1), "products")
    snaps.unpersist()
    return _audit_snapshots(spark, batches, counts, started)


def load_country_snapshots(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Apply daily countries snapshots to ``countries`` (SCD0); ignored changes become warnings."""
    batches = pending_snapshots(spark, "countries", batches)
    if not batches:
        return {}
    started = _now()
    raw = _read_snapshot_csv(
        spark, batches,
        "source_country_name STRING, country_code STRING, iso3 STRING, country_name STRING, region STRING, "
        "continent STRING",
    ).drop("source_file").cache()
    counts = _snapshot_counts(raw, "country_code")
    table, changes = masters.apply_country_snapshots(wh.read(spark, "countries"), raw)
    warnings = changes.select("snapshot_date", F.lit("countries").alias("feed"), F.col("country_code").alias("key"),
                              "attribute", "kept_value", "snapshot_value")
    old_warnings = wh.read(spark, "master_data_warnings")
    merged = old_warnings.join(warnings.select("snapshot_date", "feed", "key", "attribute"),
                               ["snapshot_date", "feed", "key", "attribute"], "left_anti").unionByName(warnings)
    if not warnings.isEmpty():
        wh.replace_table(spark, merged.coalesce(1), "master_data_warnings")
    wh.replace_table(spark, table.coalesce(1), "countries")
    raw.unpersist()
    return _audit_snapshots(spark, batches, counts, started)


def retry_quarantine(spark: SparkSession, retry_date: dt.date) -> dict[str, int]:
    """Re-check quarantined lines whose reason may have gone away (unknown product or country).

    Runs after the masters of ``retry_date`` are loaded. Lines the masters now know are loaded into
    their original batch partition and marked resolved; the others get one more attempt counted. Each
    line is retried at most once per ``retry_date``, so rerunning the retry changes nothing. Batch audit
    rows move from quarantined to loaded/released.
    """
    now = _now()
    quarantine = wh.read(spark, "transactions_quarantine")
    pending_filter = (
        F.col("resolved_at").isNull() & F.col("reason_code").isin(*transactions.RETRYABLE_REASONS)
        & (F.col("last_retry_date").isNull() | (F.col("last_retry_date") < F.lit(retry_date)))
    )
    pending = quarantine.where(pending_filter).select("batch_id", "source_file", "raw_line").cache()
    retried = pending.count()
    if not retried:
        pending.unpersist()
        return {"retried": 0, "released": 0}
    products, countries = _masters_for_fk(spark)
    classified = transactions.classify_lines(pending, products, countries, non_product_patterns()).cache()
    released = classified.where(F.col("outcome") == "loaded")
    released_counts = {r.batch_id: r["count"] for r in released.groupBy("batch_id").count().collect()}
    if released_counts:
        ids = sorted(released_counts)
        current = wh.read(spark, "transactions_raw").where(F.col("batch_id").isin(ids))
        new_rows = transactions.loaded_rows(released).withColumn("ingested_at", F.lit(now))
        merged = current.unionByName(new_rows)
        wh.replace_partitions(spark, merged.repartition("batch_id"), "transactions_raw", "batch_id", ids)
        publish_invoice_dates(spark, transactions.invoice_dates(wh.read(spark, "transactions_raw")
                                                                .where(F.col("batch_id").isin(ids))), ids)
    outcome = classified.select("batch_id", "raw_line", F.col("outcome").alias("_outcome"),
                                F.col("reason_code").alias("_reason"), F.col("reason_detail").alias("_detail"))
    updated = quarantine.join(outcome, ["batch_id", "raw_line"], "left").select(
        *[c for c in quarantine.columns if c not in ("reason_code", "reason_detail", "attempts",
                                                     "last_attempt_at", "resolved_at", "last_retry_date")],
        F.coalesce("_reason", "reason_code").alias("reason_code"),
        F.coalesce("_detail", "reason_detail").alias("reason_detail"),
        (F.col("attempts") + F.col("_outcome").isNotNull().cast("int")).alias("attempts"),
        F.when(F.col("_outcome").isNotNull(), F.lit(now)).otherwise(F.col("last_attempt_at")).alias("last_attempt_at"),
        F.when(F.col("_outcome") == "loaded", F.lit(now)).otherwise(F.col("resolved_at")).alias("resolved_at"),
        F.when(F.col("_outcome").isNotNull(), F.lit(retry_date)).otherwise(F.col("last_retry_date"))
        .alias("last_retry_date"),
    ).select(*quarantine.columns)
    wh.replace_table(spark, updated.coalesce(1), "transactions_quarantine")
    if released_counts:
        audit = wh.read(spark, "batch_audit")
        delta = spark.createDataFrame(list(released_counts.items()), "batch_id STRING, _released BIGINT")
        changed = audit.join(delta, "batch_id").select(
            *[c for c in audit.columns if c not in ("rows_loaded", "rows_quarantined", "rows_released")],
            (F.col("rows_loaded") + F.col("_released")).alias("rows_loaded"),
            (F.col("rows_quarantined") - F.col("_released")).alias("rows_quarantined"),
            (F.col("rows_released") + F.col("_released")).alias("rows_released"),
        ).select(*audit.columns)
        upsert_audit(spark, changed)
    classified.unpersist()
    pending.unpersist()
    return {"retried": retried, "released": sum(released_counts.values())}
