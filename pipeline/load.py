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
from pipeline.io import crash
from pipeline.replay import HEADER
from pipeline.runtime import clock
from pipeline.transforms import masters, transactions

log = logging.getLogger(__name__)


MASTER_TABLES = {"products": "products", "countries": "countries"}


class NothingLostViolation(AssertionError):
    """Rows received differ from rows loaded + quarantined + duplicate: publishing is refused."""


@dataclass(frozen=True)
class Batch:
    batch_id: str
    feed: str
    path: str
    window_start: dt.datetime
    window_end: dt.datetime
    masters_date: dt.date | None = None  # the master snapshot a transaction batch is checked against


def non_product_patterns() -> list[str]:
    path = config.resolve_path(config.reference().non_product_codes)
    with open(path, newline="", encoding="utf-8") as fh:
        return [row["stock_code_pattern"] for row in csv.DictReader(fh)]


def _now() -> dt.datetime:
    return clock.now()


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


def upsert_audit(spark: SparkSession, new_rows: DataFrame, only_if_changed: bool = False) -> None:
    """Replace the audit rows of the batches in ``new_rows``. With ``only_if_changed`` nothing is written
    when those rows are already there (a rerun that recomputes the same counts)."""
    existing = wh.read(spark, "batch_audit")
    if only_if_changed and new_rows.exceptAll(existing).isEmpty():
        return
    merged = existing.join(new_rows.select("batch_id"), "batch_id", "left_anti").unionByName(new_rows)
    wh.replace_table(spark, merged.coalesce(1), "batch_audit")


def applied_snapshots(spark: SparkSession, feed: str) -> dict[dt.date, dict]:
    """The snapshots applied to a master table, with their counts and times, from the state published with
    the table itself (so a crash between the table and its audit rows cannot make a rerun apply one twice).
    A table published before this state existed falls back to its audit rows."""
    state = wh.table_state(spark, MASTER_TABLES[feed]).get("snapshots")
    if state is not None:
        return {dt.date.fromisoformat(d): c for d, c in state.items()}
    rows = wh.read(spark, "batch_audit").where((F.col("feed") == feed) & (F.col("status") == "LOADED"))
    return {r.window_start.date(): {"rows_received": r.rows_received, "rows_loaded": r.rows_loaded,
                                    "rows_quarantined": r.rows_quarantined, "rows_duplicate": r.rows_duplicate,
                                    "started_at": str(r.started_at), "finished_at": str(r.finished_at)}
            for r in rows.collect()}


def check_nothing_lost(counts: dict[str, dict]) -> None:
    bad = {b: c for b, c in counts.items()
           if c["rows_received"] != c["rows_loaded"] + c["rows_quarantined"] + c["rows_duplicate"]}
    if bad:
        raise NothingLostViolation(f"batch accounting does not add up, refusing to publish: {bad}")


def read_batch_lines(spark: SparkSession, batches: list[Batch]) -> DataFrame:
    """One row per data line of the given transaction files: ``batch_id, source_file, raw_line,
    masters_date`` (a batch without masters gets the earliest date, before which nothing is known)."""
    by_file = spark.createDataFrame([(_file_name(b.path), b.batch_id, b.masters_date or dt.date.min)
                                     for b in batches], "source_file STRING, batch_id STRING, masters_date DATE")
    text = spark.read.text([b.path for b in batches]).select(
        F.col("value").alias("raw_line"), F.col("_metadata.file_name").alias("source_file"),
    )
    return (
        text.where((F.trim("raw_line") != "") & (F.col("raw_line") != HEADER))
        .join(F.broadcast(by_file), "source_file")
        .select("batch_id", "source_file", "raw_line", "masters_date")
    )


def _file_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _masters_for_fk(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """Product codes and countries with the first snapshot date that knew them (``known_from``)."""
    products = wh.read(spark, "products").select("stock_code", F.col("valid_from").alias("known_from"))
    countries = wh.read(spark, "countries").withColumn("known_from", F.col("first_seen"))
    return products, countries


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
    released = None
    if not resolved.isEmpty():
        for r in transactions.released_counts(classified, resolved).collect():
            counts[r.batch_id]["rows_released"] = r.rows_released
        released = resolved.select("batch_id", "raw_line", F.col("last_retry_date").alias("released_on"))
    loaded = transactions.loaded_rows(classified, released).withColumn("ingested_at", F.lit(started))
    wh.replace_partitions(spark, loaded.repartition("batch_id"), "transactions_raw", "batch_id", ids)
    crash.point("ingest.raw_published")
    publish_invoice_dates(spark, transactions.invoice_dates(loaded), ids)
    new_quarantine = transactions.quarantined_rows(classified)
    if any(c["rows_quarantined"] for c in counts.values()) or not previous.isEmpty():
        merged = transactions.merge_quarantine(wh.read(spark, "transactions_quarantine"), new_quarantine, ids,
                                               F.lit(started))
        wh.replace_table(spark, merged.coalesce(1), "transactions_quarantine")
    crash.point("ingest.quarantine_published")
    upsert_audit(spark, audit_rows(spark, batches, counts, started))
    previous.unpersist()
    classified.unpersist()
    return counts


def record_missing_batch(spark: SparkSession, batch: Batch) -> None:
    """Record a transaction batch whose file never landed: an audit row with status MISSING and no rows."""
    now = _now()
    upsert_audit(spark, audit_rows(spark, [batch], {}, now, status="MISSING"), only_if_changed=False)


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


def pending_snapshots(applied: dict[dt.date, dict], batches: list[Batch]) -> list[Batch]:
    """The snapshots not applied yet, in date order; an older one than the latest applied is refused."""
    todo = masters.plan_snapshots(set(applied), [b.window_start.date() for b in batches])
    by_date = {b.window_start.date(): b for b in batches}
    return [by_date[d] for d in todo]


def snapshot_state(applied: dict[dt.date, dict], counts: dict[dt.date, dict], started, finished) -> dict:
    """The ``snapshots`` state of a master table after applying ``counts``' dates (date -> counts, times)."""
    new = {d: {**c, "started_at": str(started), "finished_at": str(finished)} for d, c in counts.items()}
    return {"snapshots": {str(d): c for d, c in sorted({**applied, **new}.items())}}


def _audit_snapshots(spark: SparkSession, feed: str, batches: list[Batch]) -> dict[str, dict]:
    """Audit rows of the requested snapshots that the table has applied, written from the table's state,
    so a rerun after a crash writes the same rows."""
    applied = applied_snapshots(spark, feed)
    done = [b for b in batches if b.window_start.date() in applied]
    if not done:
        return {}
    rows = []
    for b in done:
        c = applied[b.window_start.date()]
        rows.append((b.batch_id, b.feed, b.window_start, b.window_end, b.path, int(c["rows_received"]),
                     int(c["rows_loaded"]), int(c["rows_quarantined"]), int(c["rows_duplicate"]), 0, "LOADED",
                     dt.datetime.fromisoformat(c["started_at"]), dt.datetime.fromisoformat(c["finished_at"])))
    upsert_audit(spark, spark.createDataFrame(rows, wh.read(spark, "batch_audit").schema), only_if_changed=True)
    return {b.batch_id: {k: v for k, v in applied[b.window_start.date()].items() if k.startswith("rows_")}
            for b in done}


def load_product_snapshots(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Apply daily products snapshots to ``products`` (SCD2); already applied dates are skipped.

    The applied dates are published with the table (its state), in the same catalog swap as the rows.
    """
    applied = applied_snapshots(spark, "products")
    todo = pending_snapshots(applied, batches)
    if not todo:
        return _audit_snapshots(spark, "products", batches)
    all_batches, batches = batches, todo
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
    wh.replace_table(spark, new_table.repartition(1), "products",
                     state=snapshot_state(applied, counts, started, _now()))
    crash.point("snapshot.published")
    snaps.unpersist()
    return _audit_snapshots(spark, "products", all_batches)


def load_country_snapshots(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Apply daily countries snapshots to ``countries`` (SCD0); ignored changes become warnings."""
    applied = applied_snapshots(spark, "countries")
    todo = pending_snapshots(applied, batches)
    if not todo:
        return _audit_snapshots(spark, "countries", batches)
    all_batches, batches = batches, todo
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
    wh.replace_table(spark, table.coalesce(1), "countries", state=snapshot_state(applied, counts, started, _now()))
    crash.point("snapshot.published")
    raw.unpersist()
    return _audit_snapshots(spark, "countries", all_batches)


def refresh_audit_counts(spark: SparkSession, batch_ids: list[str]) -> None:
    """Set the loaded, quarantined and released counts of the batches' audit rows from what is published:
    rows in ``transactions_raw`` (released ones have ``released_on``), open lines in the quarantine."""
    if not batch_ids:
        return
    audit = wh.read(spark, "batch_audit").where(F.col("batch_id").isin(batch_ids))
    raw = wh.read(spark, "transactions_raw").where(F.col("batch_id").isin(batch_ids)).groupBy("batch_id").agg(
        F.count(F.lit(1)).alias("rows_loaded"), F.count("released_on").alias("rows_released"))
    open_lines = wh.read(spark, "transactions_quarantine").where(
        F.col("batch_id").isin(batch_ids) & F.col("resolved_at").isNull()
    ).groupBy("batch_id").agg(F.count(F.lit(1)).alias("rows_quarantined"))
    counted = ("rows_loaded", "rows_quarantined", "rows_released")
    changed = (audit.drop(*counted).join(raw, "batch_id", "left").join(open_lines, "batch_id", "left")
               .fillna(0, list(counted)).select(*audit.columns))
    upsert_audit(spark, changed, only_if_changed=True)


def retry_quarantine(spark: SparkSession, retry_date: dt.date) -> dict[str, int]:
    """Re-check quarantined lines whose reason may have gone away (unknown product or country).

    Runs after the masters of ``retry_date`` are loaded. Lines the masters now know are published in their
    original batch partition with ``released_on = retry_date`` and marked resolved; the others get one more
    attempt counted. The retry of a date is a function of the quarantine as it was before that date's
    retry: lines already retried on ``retry_date`` are retried again from their earlier state, and a
    batch partition is rebuilt from its rows not released on that date plus the lines released now. So
    rerunning it, after success or after a crash between any two of its writes, gives the same tables.
    The audit counts of the batches are then recomputed from the published rows.
    """
    now = _now()
    day = F.lit(retry_date)
    quarantine = wh.read(spark, "transactions_quarantine")
    retried_today = F.coalesce(F.col("last_retry_date") == day, F.lit(False))
    due = F.col("reason_code").isin(*transactions.RETRYABLE_REASONS) & (
        retried_today | (F.col("resolved_at").isNull()
                         & (F.col("last_retry_date").isNull() | (F.col("last_retry_date") < day))))
    pending = quarantine.where(due).select("batch_id", "source_file", "raw_line",
                                           day.alias("masters_date")).cache()
    retried = pending.count()
    if not retried:
        pending.unpersist()
        return {"retried": 0, "released": 0}
    products, countries = _masters_for_fk(spark)
    classified = transactions.classify_lines(pending, products, countries, non_product_patterns()).cache()
    released = classified.where(F.col("outcome") == "loaded")
    released_counts = {r.batch_id: r["count"] for r in released.groupBy("batch_id").count().collect()}
    earlier = quarantine.where(due & retried_today).select("batch_id", "raw_line",
                                                           F.col("resolved_at").alias("_resolved_at"))
    ids = sorted(set(released_counts) | {r.batch_id for r in earlier.select("batch_id").distinct().collect()})
    if ids:
        kept = wh.read(spark, "transactions_raw").where(F.col("batch_id").isin(ids)) \
            .where(F.col("released_on").isNull() | (F.col("released_on") != day))
        first_release = released.join(earlier, ["batch_id", "raw_line"], "left") \
            .withColumn("ingested_at", F.coalesce("_resolved_at", F.lit(now)))
        new_rows = transactions.loaded_rows(first_release, carry=("ingested_at",)).withColumn("released_on", day)
        wh.replace_partitions(spark, kept.unionByName(new_rows).repartition("batch_id"), "transactions_raw",
                              "batch_id", ids)
        crash.point("retry.raw_published")
        publish_invoice_dates(spark, transactions.invoice_dates(wh.read(spark, "transactions_raw")
                                                                .where(F.col("batch_id").isin(ids))), ids)
    outcome = classified.select("batch_id", "raw_line", F.col("outcome").alias("_outcome"),
                                F.col("reason_code").alias("_reason"), F.col("reason_detail").alias("_detail"))
    tried = F.col("_outcome").isNotNull()
    attempts_before = F.col("attempts") - F.when(retried_today, 1).otherwise(0)
    # a line retried again on the same date keeps the times of its first retry that date
    attempt_at = F.when(retried_today, F.col("last_attempt_at")).otherwise(F.lit(now))
    resolved_at = F.when(retried_today, F.coalesce("resolved_at", F.lit(now))).otherwise(F.lit(now))
    updated = quarantine.join(outcome, ["batch_id", "raw_line"], "left").select(
        *[c for c in quarantine.columns if c not in ("reason_code", "reason_detail", "attempts",
                                                     "last_attempt_at", "resolved_at", "last_retry_date")],
        F.coalesce("_reason", "reason_code").alias("reason_code"),
        F.coalesce("_detail", "reason_detail").alias("reason_detail"),
        F.when(tried, attempts_before + 1).otherwise(F.col("attempts")).alias("attempts"),
        F.when(tried, attempt_at).otherwise(F.col("last_attempt_at")).alias("last_attempt_at"),
        F.when(F.col("_outcome") == "loaded", resolved_at).when(tried, F.lit(None).cast("timestamp"))
        .otherwise(F.col("resolved_at")).alias("resolved_at"),
        F.when(tried, day).otherwise(F.col("last_retry_date")).alias("last_retry_date"),
    ).select(*quarantine.columns)
    wh.replace_table(spark, updated.coalesce(1), "transactions_quarantine")
    crash.point("retry.quarantine_published")
    refresh_audit_counts(spark, ids)
    classified.unpersist()
    pending.unpersist()
    return {"retried": retried, "released": sum(released_counts.values())}
