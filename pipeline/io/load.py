"""Ingestion steps: read landed feeds, call the pure transforms, publish atomically, record the audit.

Each step takes any number of batches or snapshots and runs a fixed number of Spark jobs for all of
them, so a 4-hour batch, a day, or a year of backfill use the same code.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline import clock, config
from pipeline.io import arrow_tables, crash, fs
from pipeline.io import warehouse as wh
from pipeline.transforms import masters, records, transactions
from pipeline.transforms.columns import in_values

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
    manifest: str | None = None  # the day's manifest, whose line count a transaction file must match


@dataclass
class Landed:
    """A landed feed file as read: its records, or why it is refused whole (``rejected``)."""

    batch: Batch
    records: list[records.Record] = field(default_factory=list)
    encoding: str | None = None
    extra_columns: tuple[str, ...] = ()
    rejected: str | None = None
    moved: bool = False  # a refused file already moved to the rejected area (a rerun after a crash)

    @property
    def audit(self) -> dict:
        return {"encoding": self.encoding, "extra_columns": ",".join(self.extra_columns) or None,
                "reason": self.rejected, "status": "REJECTED" if self.rejected else "LOADED"}


def non_product_patterns() -> list[str]:
    path = config.resolve_path(config.reference().non_product_codes)
    with open(path, newline="", encoding="utf-8") as fh:
        return [row["stock_code_pattern"] for row in csv.DictReader(fh)]


def _now() -> dt.datetime:
    return clock.now()


AUDIT = "ecommerce_db.batch_audit"


def audit_frame(rows: list[tuple]) -> pd.DataFrame:
    """``batch_audit`` rows given as tuples in the table's column order."""
    return pd.DataFrame(rows, columns=arrow_tables.schemas(AUDIT)[0].names)


def audit_rows(batches: list[Batch], counts: dict[str, dict], started_at, status="LOADED") -> pd.DataFrame:
    """``batch_audit`` rows of ``batches`` from their counts; a count's ``status``, ``encoding``,
    ``extra_columns`` and ``reason`` are taken when present."""
    finished = _now()
    rows = []
    for b in batches:
        c = counts.get(b.batch_id, {})
        rows.append((b.batch_id, b.feed, b.window_start, b.window_end, b.path,
                     int(c.get("rows_received") or 0), int(c.get("rows_loaded") or 0),
                     int(c.get("rows_quarantined") or 0), int(c.get("rows_duplicate") or 0),
                     int(c.get("rows_released") or 0), c.get("status") or status, started_at, finished,
                     c.get("encoding"), c.get("extra_columns"), c.get("reason")))
    return audit_frame(rows)


def upsert_audit(spark: SparkSession, new_rows: pd.DataFrame, only_if_changed: bool = False) -> None:
    """Replace the audit rows of the batches in ``new_rows``. With ``only_if_changed`` nothing is written
    when those rows are already there (a rerun that recomputes the same counts).

    The table holds a few rows per batch: it is rewritten from its Parquet files (``io.arrow_tables``, the same
    publication steps as ``warehouse.replace_table``) instead of by a Spark job, and this session's view of it
    is refreshed."""
    schema = arrow_tables.schemas(AUDIT)[0]
    new = arrow_tables.to_arrow(new_rows, schema).sort_by("batch_id")
    existing = arrow_tables.read_arrow(AUDIT)
    replaced = pc.is_in(existing["batch_id"], value_set=new["batch_id"])
    if only_if_changed and existing.filter(replaced).sort_by("batch_id").equals(new):
        return
    kept = existing.filter(pc.invert(replaced))
    arrow_tables.replace_table(pa.concat_tables([kept, new]), AUDIT)
    spark.catalog.refreshTable(AUDIT)


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


def rejected_dir(day: dt.date) -> str:
    return fs.join(config.warehouse().uri, config.landing().rejected_dir, day.isoformat())


def rejections(batch: Batch) -> list[dict]:
    """Reason notes of a batch's refused files, oldest first."""
    folder = rejected_dir(batch.window_start.date())
    stem = _file_name(batch.path).rsplit(".", 1)[0]
    notes = [fs.read_json(fs.join(folder, n)) for n in fs.listdir(folder)
             if n.startswith(f"{stem}.") and n.endswith(".reason.json")]
    return sorted(notes, key=lambda n: n["rejected_at"])


def manifest_lines(batches: list[Batch]) -> dict[str, int]:
    """The data lines the days' manifests list per transaction batch, each manifest read once; a batch
    without a manifest or an entry in it is absent."""
    lines: dict[str, int] = {}
    for path in sorted({b.manifest for b in batches if b.manifest}):
        if fs.target(path).exists():
            lines.update({bid: int(e["lines"]) for bid, e in fs.read_json(path).get("transactions", {}).items()})
    return lines


def read_records(path: str, columns: dict[str, str]) -> tuple[str, records.ParsedFile]:
    """Decode a landed file and split it into records (``records.RefusedFile`` when it cannot be read as its
    feed); returns the encoding it was read with and the records."""
    text, encoding = records.decode(fs.read_bytes(path))
    try:
        return encoding, records.parse_file(text, columns, config.landing().max_record_chars)
    except records.RefusedFile as exc:
        exc.encoding = encoding
        raise


def read_landed(batch: Batch, columns: dict[str, str], expected: int | None = None) -> Landed:
    """Read one landed file: decode it, split its records, check its header and the ``expected`` count (the
    manifest's).

    A file refused whole comes back with ``rejected`` set (the reason); a file already moved to the rejected
    area by an interrupted run comes back refused with the reason recorded then.
    """
    if not fs.target(batch.path).exists():
        earlier = rejections(batch)
        if earlier:
            note = earlier[-1]
            return Landed(batch, [], note.get("encoding"), tuple(note.get("extra_columns") or ()), note["reason"],
                          moved=True)
        raise FileNotFoundError(f"{batch.path}: the {batch.feed} file of {batch.batch_id} has not landed")
    try:
        encoding, parsed = read_records(batch.path, columns)
    except records.RefusedFile as exc:
        return Landed(batch, [], exc.encoding, (), str(exc))
    landed = Landed(batch, parsed.records, encoding, tuple(parsed.extra_columns))
    if expected is not None and expected != len(parsed.records):
        landed.records, landed.rejected = [], (
            f"the day's manifest lists {expected} lines for {batch.batch_id}, the file has {len(parsed.records)}")
    return landed


def move_rejected(landed: Landed) -> str:
    """Move a refused file to ``<rejected_dir>/<day>/`` beside ``<name>.reason.json``; returns its new URI.
    An earlier refused copy of the same batch is kept: the new one gets a numbered name."""
    b = landed.batch
    folder = rejected_dir(b.window_start.date())
    stem, _, ext = _file_name(b.path).rpartition(".")
    names = set(fs.listdir(folder))
    k = 0
    while (name := f"{stem}.{ext}" if k == 0 else f"{stem}.{k}.{ext}") in names:
        k += 1
    dst = fs.join(folder, name)
    fs.write_json(f"{dst}.reason.json", {
        "batch_id": b.batch_id, "feed": b.feed, "landed_path": b.path, "reason": landed.rejected,
        "encoding": landed.encoding, "extra_columns": list(landed.extra_columns), "rejected_at": _now()})
    fs.move(b.path, dst)
    return dst


def records_frame(spark: SparkSession, files: list[tuple[str, Landed]], key: str, fields: list[str],
                  flag_duplicates: bool = False) -> DataFrame:
    """One row per record of the landed files: ``key`` (each file's given value), ``source_file``,
    ``raw_line``, the ``fields`` as text and ``record_error_code, record_error_detail``; all strings.

    ``flag_duplicates`` adds ``is_duplicate``: the record repeats an earlier record of the same ``key``
    (``transactions.mark_duplicates``, found here while the records are read: no shuffle of every line)."""
    names = [key, "source_file", "raw_line", *fields, "record_error_code", "record_error_detail"]
    columns: dict[str, list] = {c: [] for c in names}
    duplicate: list[bool] = []
    seen: dict[str, set[str]] = {}
    for value, f in files:
        name = _file_name(f.batch.path)
        earlier = seen.setdefault(value, set())
        for r in f.records:
            columns[key].append(value)
            columns["source_file"].append(name)
            columns["raw_line"].append(r.raw)
            for c in fields:
                columns[c].append(r.fields[c])
            columns["record_error_code"].append(r.error[0] if r.error else None)
            columns["record_error_detail"].append(r.error[1] if r.error else None)
            if flag_duplicates:
                duplicate.append(r.raw in earlier)
                earlier.add(r.raw)
    schema = pa.schema([(c, pa.string()) for c in names] + ([("is_duplicate", pa.bool_())] if flag_duplicates else []))
    if flag_duplicates:
        columns["is_duplicate"] = duplicate
    if not columns[key]:
        return spark.createDataFrame([], ", ".join(f"{c} STRING" for c in names)
                                     + (", is_duplicate BOOLEAN" if flag_duplicates else ""))
    return spark.createDataFrame(pa.table(columns, schema=schema))


def lines_frame(spark: SparkSession, landed: list[Landed]) -> DataFrame:
    """One row per received record of the landed transaction files (``transactions.LINE_COLUMNS``) with
    its batch's ``masters_date`` (the earliest date when the batch has none) and window."""
    text = records_frame(spark, [(f.batch.batch_id, f) for f in landed], "batch_id", transactions.SOURCE_FIELDS,
                         flag_duplicates=True)
    by_batch = spark.createDataFrame(
        [(f.batch.batch_id, f.batch.masters_date or dt.date.min, f.batch.window_start, f.batch.window_end)
         for f in landed], "batch_id STRING, masters_date DATE, window_start TIMESTAMP, window_end TIMESTAMP")
    return text.join(F.broadcast(by_batch), "batch_id")


def date_range() -> transactions.DateRange:
    cfg = config.landing()
    return transactions.DateRange(cfg.after_window_minutes, cfg.before_window_days)


def _file_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _masters_for_fk(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """Product codes and countries with the first snapshot date that knew them (``known_from``)."""
    products = wh.read(spark, "products").select("stock_code", F.col("valid_from").alias("known_from"))
    countries = wh.read(spark, "countries").withColumn("known_from", F.col("first_seen"))
    return products, countries


def publish_invoice_dates(spark: SparkSession, dates: DataFrame, batch_ids: list[str]) -> None:
    """The batches' index rows (a few per batch), published from the driver."""
    arrow_tables.publish_collected(spark, dates, "batch_invoice_dates", batch_ids)


def load_transaction_batches(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Load transaction batches into ``transactions_raw`` (partition per batch), quarantine and audit.

    A file refused whole (a required column missing, its line count not the manifest's) loads nothing: its
    audit row says REJECTED with the reason, and the file moves to the rejected area beside a reason file,
    after the audit is published. The other batches load as usual. Returns each batch's counts, status,
    encoding, extra columns and reason.
    """
    if not batches:
        return {}
    started = _now()
    expected = manifest_lines(batches)
    landed = [read_landed(b, records.TRANSACTION_COLUMNS, expected.get(b.batch_id)) for b in batches]
    ids = [b.batch_id for b in batches]
    products, countries = _masters_for_fk(spark)
    # computed once and kept as serialized rows, not as a columnar cache, and later queries plan from those rows:
    # a 1M-line day's classification and counts took 20.1 s cached (driver peak 1.76 GB), 10.4 s so (1.73 GB;
    # 12.7 s and 2.22 GB as deserialized rows, Spark's default for a local checkpoint). On a cluster, an executor
    # lost before the batches are published fails the task (the rows have no lineage), and Luigi runs it again
    classified = transactions.classify_lines(
        lines_frame(spark, [f for f in landed if not f.rejected]), products, countries, non_product_patterns(),
        date_range()).localCheckpoint(storageLevel=StorageLevel.MEMORY_AND_DISK)
    counts = {r.batch_id: {**r.asDict(), "rows_released": 0}
              for r in transactions.batch_counts(classified).collect()}
    for f in landed:
        counts.setdefault(f.batch.batch_id, {"batch_id": f.batch.batch_id, "rows_received": 0, "rows_loaded": 0,
                                             "rows_quarantined": 0, "rows_duplicate": 0, "rows_released": 0})
        counts[f.batch.batch_id].update(f.audit)
        if not f.rejected and counts[f.batch.batch_id]["rows_received"] != len(f.records):
            raise NothingLostViolation(f"{f.batch.batch_id}: {len(f.records)} records read, "
                                       f"{counts[f.batch.batch_id]['rows_received']} classified")
    check_nothing_lost(counts)
    previous = wh.read(spark, "transactions_quarantine").where(in_values("batch_id", ids)).cache()
    resolved = previous.where(F.col("resolved_at").isNotNull())
    previous_lines, resolved_lines = previous.agg(F.count(F.lit(1)), F.count("resolved_at")).first()
    released = None
    if resolved_lines:
        for r in transactions.released_counts(classified, resolved).collect():
            counts[r.batch_id]["rows_released"] = r.rows_released
        released = resolved.select("batch_id", "raw_line", F.col("last_retry_date").alias("released_on"))
    loaded = transactions.loaded_rows(classified, released).withColumn("ingested_at", F.lit(started))
    wh.replace_partitions(spark, loaded.repartition("batch_id"), "transactions_raw", "batch_id", ids)
    crash.point("ingest.raw_published")
    publish_invoice_dates(spark, transactions.invoice_dates(loaded), ids)
    new_quarantine = transactions.quarantined_rows(classified)
    if any(c["rows_quarantined"] for c in counts.values()) or previous_lines:
        merged = transactions.merge_quarantine(wh.read(spark, "transactions_quarantine"), new_quarantine, ids,
                                               F.lit(started))
        wh.replace_table(spark, merged.coalesce(1), "transactions_quarantine")
    crash.point("ingest.quarantine_published")
    upsert_audit(spark, audit_rows(batches, counts, started))
    for f in landed:
        if f.rejected and not f.moved:
            counts[f.batch.batch_id]["rejected_to"] = move_rejected(f)
            log.warning("%s refused: %s", f.batch.path, f.rejected)
    previous.unpersist()
    return counts


def record_missing_batch(spark: SparkSession, batch: Batch) -> None:
    """Record a transaction batch whose file never landed: an audit row with status MISSING and no rows."""
    now = _now()
    upsert_audit(spark, audit_rows([batch], {}, now, status="MISSING"), only_if_changed=False)


def read_snapshot_rows(spark: SparkSession, batches: list[Batch], columns: list[str]) -> tuple[DataFrame, dict]:
    """One row per record of the snapshot files: ``snapshot_date, source_file, raw_line``, the columns as
    text and the reason a record could not be split; and each snapshot date's encoding and extra columns.

    A file that is structurally wrong (empty, no data rows, a required column missing) is refused whole with
    ``records.RefusedFile`` naming the file: applying it would delete or rewrite the whole master.
    """
    files: list[tuple[str, Landed]] = []
    read: dict[dt.date, dict] = {}
    for b in batches:
        landed = read_landed(b, {c: c for c in columns})
        if landed.rejected or not landed.records:
            raise records.RefusedFile(f"{b.feed} snapshot {b.path} refused, nothing was applied: "
                                      f"{landed.rejected or 'the file has a header but no rows'}")
        day = b.window_start.date()
        read[day] = {k: v for k, v in landed.audit.items() if k in ("encoding", "extra_columns")}
        files.append((day.isoformat(), landed))
    rows = records_frame(spark, files, "snapshot_date", columns)
    return rows.withColumn("snapshot_date", F.col("snapshot_date").cast("date")), read


def publish_master_quarantine(spark: SparkSession, feed: str, rows: DataFrame, dates: list[dt.date], now) -> None:
    """Replace the feed's master quarantine rows of ``dates`` with ``rows`` (``masters.screen_snapshot``'s
    refused rows). Written before the master table, so a rerun after a crash writes it again."""
    new = rows.select("snapshot_date", F.lit(feed).alias("feed"), F.col("_key").alias("key"), "raw_line",
                      "source_file", "reason_code", "reason_detail", F.lit(now).alias("quarantined_at"))
    existing = wh.read(spark, "master_quarantine")
    kept = existing.where(~((F.col("feed") == feed) & F.col("snapshot_date").isin(dates)))
    arrow_tables.publish_collected(spark, kept.unionByName(new), "master_quarantine")


def _screened(spark: SparkSession, feed: str, batches: list[Batch], columns: list[str], key: str,
              checks: dict[str, str], started) -> tuple[DataFrame, dict[dt.date, dict]]:
    """Read snapshot files, refuse bad rows to the master quarantine, and return the good rows (one per key
    and date, exact duplicates dropped) and each date's counts, encoding and extra columns."""
    rows, read = read_snapshot_rows(spark, batches, columns)
    screened = masters.screen_snapshot(rows, key, columns, checks).cache()
    stats = screened.groupBy("snapshot_date").agg(
        F.count(F.lit(1)).alias("rows_received"),
        F.sum(F.col("reason_code").isNotNull().cast("long")).alias("rows_quarantined"),
        F.count_distinct(F.when(F.col("reason_code").isNull(), F.col(key))).alias("rows_loaded"),
    ).collect()
    counts = {r.snapshot_date: {"rows_received": r.rows_received, "rows_loaded": r.rows_loaded,
                                "rows_quarantined": r.rows_quarantined,
                                "rows_duplicate": r.rows_received - r.rows_loaded - r.rows_quarantined,
                                **read[r.snapshot_date]} for r in stats}
    if any(c["rows_quarantined"] for c in counts.values()):
        publish_master_quarantine(spark, feed, screened.where(F.col("reason_code").isNotNull()),
                                  sorted(counts), started)
    return screened, counts


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
                     dt.datetime.fromisoformat(c["started_at"]), dt.datetime.fromisoformat(c["finished_at"]),
                     c.get("encoding"), c.get("extra_columns"), None))
    upsert_audit(spark, audit_frame(rows), only_if_changed=True)
    return {b.batch_id: {k: v for k, v in applied[b.window_start.date()].items() if k.startswith("rows_")}
            for b in done}


def load_product_snapshots(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Apply daily products snapshots to ``products`` (SCD2); already applied dates are skipped.

    The applied dates are published with the table (its state), in the same catalog swap as the rows.
    """

    def apply(screened: DataFrame) -> DataFrame:
        good = screened.where(F.col("reason_code").isNull())
        snapshot = good.select("snapshot_date", "stock_code", "description",
                               F.col("unit_price").cast(masters.PRICE_TYPE).alias("unit_price")) \
            .dropDuplicates(["snapshot_date", "stock_code"])
        held = screened.where(F.col("reason_code").isNotNull() & F.col("_key").isNotNull()) \
            .select("snapshot_date", F.col("_key").alias("stock_code")) \
            .join(snapshot.select("snapshot_date", "stock_code"), ["snapshot_date", "stock_code"], "left_anti")
        return masters.apply_product_snapshots(wh.read(spark, "products"), snapshot, held)

    return _apply_snapshots(spark, "products", batches, list(records.PRODUCT_COLUMNS), "stock_code",
                            {"unit_price": (masters.PRICE_TYPE, "BAD_PRICE")}, apply)


def load_country_snapshots(spark: SparkSession, batches: list[Batch]) -> dict[str, dict]:
    """Apply daily countries snapshots to ``countries`` (SCD0); ignored changes become warnings."""

    def apply(screened: DataFrame) -> DataFrame:
        raw = screened.where(F.col("reason_code").isNull()) \
            .select("snapshot_date", *records.COUNTRY_COLUMNS).dropDuplicates()
        table, changes = masters.apply_country_snapshots(wh.read(spark, "countries"), raw)
        warnings = changes.select("snapshot_date", F.lit("countries").alias("feed"), F.col("country_code").alias("key"),
                                  "attribute", "kept_value", "snapshot_value")
        old_warnings = wh.read(spark, "master_data_warnings")
        merged = old_warnings.join(warnings.select("snapshot_date", "feed", "key", "attribute"),
                                   ["snapshot_date", "feed", "key", "attribute"], "left_anti").unionByName(warnings)
        if not warnings.isEmpty():
            arrow_tables.publish_collected(spark, merged, "master_data_warnings")
        return table

    return _apply_snapshots(spark, "countries", batches, list(records.COUNTRY_COLUMNS), "source_country_name", {},
                            apply)


def _apply_snapshots(spark: SparkSession, feed: str, batches: list[Batch], columns: list[str], key: str,
                     checks: dict[str, tuple], apply) -> dict[str, dict]:
    """Screen the pending snapshots of a master (``_screened``), publish ``apply(screened rows)`` as its table
    with the applied dates as the table's state, and return the audit rows of every requested snapshot."""
    applied = applied_snapshots(spark, feed)
    todo = pending_snapshots(applied, batches)
    if todo:
        started = _now()
        screened, counts = _screened(spark, feed, todo, columns, key, checks, started)
        arrow_tables.publish_collected(spark, apply(screened), feed,
                                       state=snapshot_state(applied, counts, started, _now()))
        crash.point("snapshot.published")
        screened.unpersist()
    return _audit_snapshots(spark, feed, batches)


def refresh_audit_counts(spark: SparkSession, batch_ids: list[str]) -> None:
    """Set the loaded, quarantined and released counts of the batches' audit rows from what is published:
    rows in ``transactions_raw`` (released ones have ``released_on``), open lines in the quarantine."""
    if not batch_ids:
        return
    audit = wh.read(spark, "batch_audit").where(in_values("batch_id", batch_ids))
    raw = wh.read(spark, "transactions_raw").where(in_values("batch_id", batch_ids)).groupBy("batch_id").agg(
        F.count(F.lit(1)).alias("rows_loaded"), F.count("released_on").alias("rows_released"))
    open_lines = wh.read(spark, "transactions_quarantine").where(
        in_values("batch_id", batch_ids) & F.col("resolved_at").isNull()
    ).groupBy("batch_id").agg(F.count(F.lit(1)).alias("rows_quarantined"))
    counted = ("rows_loaded", "rows_quarantined", "rows_released")
    changed = (audit.drop(*counted).join(raw, "batch_id", "left").join(open_lines, "batch_id", "left")
               .fillna(0, list(counted)).select(*audit.columns))
    upsert_audit(spark, changed.toPandas(), only_if_changed=True)


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
    pending = quarantine.where(due).select(
        "batch_id", "source_file", "raw_line", *transactions.SOURCE_FIELDS,
        F.lit(None).cast("string").alias("record_error_code"), F.lit(None).cast("string").alias("record_error_detail"),
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
        kept = wh.read(spark, "transactions_raw").where(in_values("batch_id", ids)) \
            .where(F.col("released_on").isNull() | (F.col("released_on") != day))
        first_release = released.join(earlier, ["batch_id", "raw_line"], "left") \
            .withColumn("ingested_at", F.coalesce("_resolved_at", F.lit(now)))
        new_rows = transactions.loaded_rows(first_release, carry=("ingested_at",)).withColumn("released_on", day)
        wh.replace_partitions(spark, kept.unionByName(new_rows).repartition("batch_id"), "transactions_raw",
                              "batch_id", ids)
        crash.point("retry.raw_published")
        publish_invoice_dates(spark, transactions.invoice_dates(wh.read(spark, "transactions_raw")
                                                                .where(in_values("batch_id", ids))), ids)
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
