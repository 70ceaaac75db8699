"""Anomaly detection on each day's fact lines, and the declarative data-quality checks and reconciliation that
``ready.DataQualityChecks`` runs. Analysts review flagged lines through ``pipeline.io.anomaly_review``.

    luigi --module pipeline.tasks.quality DetectAnomalies --date 2011-01-18
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import clock, config
from pipeline.io import fs, load
from pipeline.io import warehouse as wh
from pipeline.schemas.mart import DQ_SEVERITIES
from pipeline.sources import replay
from pipeline.tasks.base import DW, MART, TableForDate, lines_for_dates, read_dates
from pipeline.tasks.ingest import source_days
from pipeline.tasks.star import FactSales
from pipeline.transforms import anomalies as an
from pipeline.transforms import dq as checks
from pipeline.transforms import records, star
from pipeline.transforms import sla as sla_rules
from pipeline.transforms.columns import in_values


def detect(spark, dates: list[dt.date], cfg: config.anomaly, fact: DataFrame | None = None) -> DataFrame:
    """The flagged lines of ``dates``, each against the trailing ``baseline_days`` of fact history, in one pass
    (``fact``: ``fact_sales`` or a cached copy of it)."""
    first, last = an.history_range(dates, cfg.baseline_days)
    fact = (fact if fact is not None else wh.read(spark, f"{DW}.fact_sales")) \
        .where(F.col("invoice_date").between(first, last))
    status_log = wh.read(spark, f"{MART}.anomaly_status_log")
    false_positives = an.current_status(status_log).where(F.col("status") == "FALSE_POSITIVE").select("line_id")
    store = None
    if cfg.new_products == "store":
        sales = an.store_sales(fact, dates, false_positives, cfg.baseline_days).toPandas()
        store = spark.createDataFrame(an.store_baselines(sales, dates, cfg.baseline_days), an.STORE_BASELINE_SCHEMA)
    baselined = an.product_baselines(fact, dates, false_positives, cfg.baseline_days)
    return an.score_lines(baselined, cfg.rule, cfg.threshold, cfg.min_history, cfg.min_spread, store)


class DetectAnomalies(TableForDate):
    """``ecommerce_mart.anomalies`` partition of one invoice date: lines far outside their product's history.

    A rerun keeps the first ``detected_at`` of a line and its lifecycle status.
    """

    table = f"{MART}.anomalies"

    def requires(self):
        """The day's fact and every fact partition of its baseline window."""
        start = self.date - dt.timedelta(days=config.anomaly().baseline_days)
        return [FactSales(self.date, self.revision), *(FactSales(d) for d in source_days() if start <= d < self.date)]

    def build(self, spark, dates):
        cfg = config.anomaly()
        now = clock.now()
        flags = detect(spark, list(dates), cfg)
        previous = read_dates(spark, self.table, dates).select(
            "line_id", "metric", F.col("detected_at").alias("_first"))
        flags = flags.join(previous, ["line_id", "metric"], "left").withColumn(
            "detected_at", F.coalesce("_first", F.lit(now))).drop("_first")
        return an.with_status(flags, wh.read(spark, f"{MART}.anomaly_status_log"))

    def marker_facts(self, spark, dates):
        counts = dict(read_dates(spark, self.table, dates).groupBy("invoice_date").count().collect())
        return {d: {"flagged": counts.get(d, 0), "rule": config.anomaly().rule} for d in dates}


CHECK_FIELDS = {
    "not_null": ("columns",), "unique": ("columns",), "relationships": ("column", "to", "to_column"),
    "accepted_values": ("column", "values"), "scd2_integrity": ("key",), "batch_accounting": (),
    "volume": ("weeks", "low", "high"), "freshness": ("feed", "tolerance_minutes"),
    "reconciliation": (), "batch_rows": (), "batch_received": (), "batch_encoding": (),
}


class InvalidCheck(ValueError):
    """A check in the checks file is malformed."""


class DataQualityError(RuntimeError):
    """An error-severity check failed: the date's marts are not declared ready."""


def load_checks(path) -> list[dict]:
    """The checks of a TOML file (``[[check]]`` tables), validated: known type and severity, unique names,
    the fields the type needs, scope ``date`` or ``table``."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            checks = tomllib.load(fh).get("check", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidCheck(f"cannot read data-quality checks from {path}: {exc}") from None
    seen = set()
    for i, check in enumerate(checks, 1):
        where = f"{path}: check {i} ({check.get('name', 'unnamed')})"
        for field in ("name", "type", "table", "severity"):
            if field not in check:
                raise InvalidCheck(f"{where} has no {field!r}")
        if check["type"] not in CHECK_FIELDS:
            raise InvalidCheck(f"{where}: unknown type {check['type']!r}; known: {', '.join(CHECK_FIELDS)}")
        if check["severity"] not in DQ_SEVERITIES:
            raise InvalidCheck(f"{where}: severity must be error or warn, not {check['severity']!r}")
        if check.setdefault("scope", "table") not in ("date", "table"):
            raise InvalidCheck(f"{where}: scope must be date or table, not {check['scope']!r}")
        missing = [f for f in CHECK_FIELDS[check["type"]] if f not in check]
        if missing:
            raise InvalidCheck(f"{where}: a {check['type']} check needs {', '.join(missing)}")
        if check["name"] in seen:
            raise InvalidCheck(f"{where}: the name is used twice")
        seen.add(check["name"])
    return checks


def batches_touched(spark, days: list[dt.date]) -> dict[dt.date, list[str]]:
    """The transaction batches each date's ingestion wrote: its own windows and every batch into which the
    date's quarantine retry released lines."""
    touched = {day: {replay.batch_id(day, w) for w in replay.WINDOW_HOURS} for day in days}
    released = wh.read(spark, "transactions_quarantine").where(
        F.col("last_retry_date").isin(days) & F.col("resolved_at").isNotNull()
    ).select("last_retry_date", "batch_id").distinct()
    for row in released.collect():
        touched[row.last_retry_date].add(row.batch_id)
    return {day: sorted(batches) for day, batches in touched.items()}


def landed_data_lines(path: str) -> int | None:
    """Data records of a landed transaction file (RFC 4180, header and blank lines not counted), or None when
    it is missing; a file without a readable header has none."""
    if not fs.target(path).exists():
        return None
    try:
        return len(load.read_records(path, records.TRANSACTION_COLUMNS)[1].records)
    except records.RefusedFile:
        return 0


def _batches_of(spark, touched: dict[dt.date, list[str]]) -> DataFrame:
    """``day, batch_id``: which batches each date's checks look at."""
    return spark.createDataFrame([(day, b) for day, batches in touched.items() for b in batches],
                                 "day DATE, batch_id STRING")


def failing_rows(spark, check: dict, days: list[dt.date], touched: dict[dt.date, list[str]],
                 checked: dict[dt.date, dict[str, dict]]) -> DataFrame:
    """The failing rows of one check for the run dates (``day, failing_key``), through the check type's
    transform; a table-wide check is evaluated once, with a NULL ``day``. ``touched``: the batches each
    date's ingestion wrote (``batches_touched``); ``checked``: the dates' reconciliation (``reconciled``)."""

    date_column = check.get("date_column", "invoice_date")
    kind = check["type"]
    if kind == "freshness":
        now = clock.now()
        expected = feeds(days, config.sla())
        late = sla_rules.late_feeds(expected[expected["feed"] == check["feed"]], now)
        keys = [(pd.Timestamp(r.invoice_date).date(),
                 f"{r.feed} {r.invoice_date}" + ("" if r.window < 0 else f" {r.window:02d}h"))
                for r in late.itertuples()]
        return spark.createDataFrame(keys, "day DATE, failing_key STRING")
    if kind == "volume":
        needed = sorted({day - dt.timedelta(weeks=w) for day in days for w in range(check["weeks"] + 1)})
        counts = read_dates(spark, check["table"], needed, date_column) \
            .groupBy(F.col(date_column).alias("date")).agg(F.count(F.lit(1)).alias("rows"))
        return checks.volume(counts, days, check["weeks"], check["low"], check["high"])
    if kind == "reconciliation":
        return spark.createDataFrame([(day, f"{name} expected {c['expected']} got {c['actual']}")
                                      for day, by_check in checked.items() for name, c in by_check.items()
                                      if not c["passed"]], "day DATE, failing_key STRING")
    if kind in ("batch_encoding", "batch_rows", "batch_received"):
        if kind == "batch_encoding":
            touched = {day: [*batches, f"products_{day:%Y%m%d}", f"countries_{day:%Y%m%d}"]
                       for day, batches in touched.items()}
        batches = _batches_of(spark, touched)
        all_batches = sorted({b for bs in touched.values() for b in bs})
        audit = wh.read(spark, "batch_audit").where(in_values("batch_id", all_batches)).join(batches, "batch_id")
        if kind == "batch_encoding":
            return checks.batch_encoding(audit, list(records.UTF8_ENCODINGS), by=["day"])
        if kind == "batch_rows":
            raw = wh.read(spark, "transactions_raw").where(in_values("batch_id", all_batches))
            return checks.batch_rows(audit, raw.groupBy("batch_id").agg(F.count(F.lit(1)).alias("rows")),
                                     by=["day"])
        files = audit.select("batch_id", "source_files").distinct().collect()
        landed = spark.createDataFrame([(r.batch_id, landed_data_lines(r.source_files)) for r in files],
                                       "batch_id STRING, data_lines BIGINT").join(batches, "batch_id")
        return checks.batch_received(audit, landed, by=["day"])
    if check["scope"] == "date":
        df = read_dates(spark, check["table"], days, date_column).withColumn("_day", F.col(date_column))
        by = ["_day"]
    else:
        df, by = wh.read(spark, check["table"]), []
    if kind == "not_null":
        rows = checks.not_null(df, check["columns"], check.get("key_columns", check["columns"]), by=by)
    elif kind == "unique":
        rows = checks.unique(df, check["columns"], by=by)
    elif kind == "relationships":
        rows = checks.relationships(df, check["column"], wh.read(spark, check["to"]), check["to_column"],
                                    as_of=check.get("as_of"), by=by)
    elif kind == "accepted_values":
        rows = checks.accepted_values(df, check["column"], check["values"], by=by)
    elif kind == "scd2_integrity":
        rows = checks.scd2_integrity(df, check["key"], by=by)
    else:
        rows = checks.batch_accounting(df, by=by)
    return rows.select((F.col("_day") if by else F.lit(None)).cast("date").alias("day"), "failing_key")


def feeds(days: list[dt.date], cfg: config.sla) -> pd.DataFrame:
    """The day's expected feeds, whether each has landed, and its freshness tolerance (``freshness`` checks)."""
    tolerance = {c["feed"]: c["tolerance_minutes"] for c in load_checks(config.resolve_path(config.dq().checks))
                 if c["type"] == "freshness"}
    expected = sla_rules.feed_schedule(days, replay.WINDOW_HOURS, dt.time.fromisoformat(cfg.masters_at), cfg.timezone)
    root = config.warehouse().uri

    def landed(row) -> bool:
        paths = replay.landing_paths(root, row.invoice_date)
        path = paths["transactions"][row.window] if row.feed == "transactions" else paths[row.feed]
        return fs.target(path).exists()

    expected["landed"] = [landed(r) for r in expected.itertuples()]
    expected["tolerance_minutes"] = expected["feed"].map(lambda f: tolerance.get(f, 30))
    return expected


def dq_history(earlier: DataFrame, new: DataFrame) -> DataFrame:
    """Each date's check results after a new run: earlier runs are kept, except the date's latest one when its
    outcomes (check, status, failing rows) are exactly the new run's: then the new run replaces it. A run
    repeated on the same input (a rerun after a crash between the results and the marker) is thus recorded
    once, and every run whose outcome differed from the one before it stays in the history."""
    from pyspark.sql import Window

    def outcome(df: DataFrame) -> DataFrame:
        return df.groupBy("invoice_date", "run_id").agg(
            F.max("checked_at").alias("_at"),
            F.sort_array(F.collect_list(F.concat_ws("|", "check_name", "status",
                                                    F.col("failing_rows").cast("string")))).alias("_outcome"))

    newest_first = Window.partitionBy("invoice_date").orderBy(F.desc("_at"), F.desc("run_id"))
    latest = outcome(earlier).withColumn("_n", F.row_number().over(newest_first)).where(F.col("_n") == 1)
    same = latest.join(outcome(new).select("invoice_date", "_outcome"), ["invoice_date", "_outcome"]) \
        .select("invoice_date", "run_id")
    return earlier.join(same, ["invoice_date", "run_id"], "left_anti").unionByName(new)


ROW_CHECKS = ("not_null", "unique", "relationships", "accepted_values", "scd2_integrity", "batch_accounting")


def dated(check: dict) -> bool:
    """Whether a check's outcome depends on the run date: a row check of a whole table (``ROW_CHECKS``, scope
    ``table``) gives the same for every date."""
    return check["scope"] == "date" or check["type"] not in ROW_CHECKS


# a backfill checks its dates in jobs of this many, one result query and one write each: a year's 305 dates took
# 84-88 s in jobs of 32 dates and 22.4-22.6 s in one job


DATES_PER_JOB = 366


def reconciliation(spark, dates: list[dt.date]) -> DataFrame:
    """The reconciliation checks of ``dates`` (``star.reconciliation``) over the published tables."""
    dims = {"product_key": f"{DW}.dim_product", "country_key": f"{DW}.dim_country",
            "customer_key": f"{DW}.dim_customer", "date_key": f"{DW}.dim_date"}
    return star.reconciliation(
        lines_for_dates(spark, dates), read_dates(spark, f"{DW}.fact_sales", dates),
        read_dates(spark, f"{MART}.mart_daily_sales", dates),
        {key: wh.read(spark, table) for key, table in dims.items()})


def reconciled(spark, dates: list[dt.date]) -> dict[dt.date, dict[str, dict]]:
    """Each date's ``reconciliation`` collected: check -> expected, actual, passed."""
    out: dict[dt.date, dict[str, dict]] = {d: {} for d in dates}
    for r in reconciliation(spark, dates).collect():
        out.setdefault(r.invoice_date, {})[r.check] = {"expected": r.expected, "actual": r.actual,
                                                       "passed": r.passed}
    return out
