"""Anomaly detection on each day's fact lines, the declarative data-quality checks, and the SLA settings.
Analysts review flagged lines through ``pipeline.io.anomaly_review``.

    luigi --module pipeline.tasks.quality DetectAnomalies --date 2011-01-18
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from pathlib import Path

import luigi
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import alerts, config, fs, history, load, replay
from pipeline import warehouse as wh
from pipeline.io import crash
from pipeline.runtime import clock
from pipeline.schemas.mart import DQ_SEVERITIES
from pipeline.tasks.base import write_marker, writes_warehouse
from pipeline.tasks.dw import (
    CUSTOMER_MARTS,
    DATE_MARTS,
    DW,
    MART,
    FactSales,
    _DailyTable,
    read_dates,
    reconciled,
    source_days,
)
from pipeline.transforms import anomalies as an
from pipeline.transforms import records
from pipeline.transforms import sla as sla_rules
from pipeline.transforms.alerting import Alert
from pipeline.transforms.columns import in_values

log = logging.getLogger(__name__)


class anomaly(luigi.Config):
    rule = luigi.ChoiceParameter(choices=an.RULES, default="mad",
                                 description="stddev: median + k standard deviations; mad: modified z-score")
    stddev_threshold = luigi.FloatParameter(default=2.0)
    mad_threshold = luigi.FloatParameter(default=3.5)
    min_history = luigi.IntParameter(default=5, description="baseline lines a product needs before it is scored")
    baseline_days = luigi.IntParameter(default=90, description="trailing days of history forming the baseline")
    min_spread = luigi.FloatParameter(default=1.0)
    new_products = luigi.ChoiceParameter(choices=["store", "skip"], default="store",
                                         description="products below min_history: store-wide baseline, or not scored")

    @property
    def threshold(self) -> float:
        return self.stddev_threshold if self.rule == "stddev" else self.mad_threshold


def detect(spark, dates: list[dt.date], cfg: anomaly, fact: DataFrame | None = None) -> DataFrame:
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


class DetectAnomalies(_DailyTable):
    """``ecommerce_mart.anomalies`` partition of one invoice date: lines far outside their product's history.

    A rerun keeps the first ``detected_at`` of a line and its lifecycle status.
    """

    table = f"{MART}.anomalies"

    def requires(self):
        """The day's fact and every fact partition of its baseline window."""
        start = self.date - dt.timedelta(days=anomaly().baseline_days)
        return [FactSales(self.date, self.revision), *(FactSales(d) for d in source_days() if start <= d < self.date)]

    def build(self, spark, dates):
        cfg = anomaly()
        now = clock.now()
        flags = detect(spark, list(dates), cfg)
        previous = read_dates(spark, self.table, dates).select(
            "line_id", "metric", F.col("detected_at").alias("_first"))
        flags = flags.join(previous, ["line_id", "metric"], "left").withColumn(
            "detected_at", F.coalesce("_first", F.lit(now))).drop("_first")
        return an.with_status(flags, wh.read(spark, f"{MART}.anomaly_status_log"))

    def marker_facts(self, spark, dates):
        counts = dict(read_dates(spark, self.table, dates).groupBy("invoice_date").count().collect())
        return {d: {"flagged": counts.get(d, 0), "rule": anomaly().rule} for d in dates}


CHECK_FIELDS = {
    "not_null": ("columns",), "unique": ("columns",), "relationships": ("column", "to", "to_column"),
    "accepted_values": ("column", "values"), "scd2_integrity": ("key",), "batch_accounting": (),
    "volume": ("weeks", "low", "high"), "freshness": ("feed", "tolerance_minutes"),
    "reconciliation": (), "batch_rows": (), "batch_received": (), "batch_encoding": (),
}


class dq(luigi.Config):
    checks = luigi.Parameter(default="conf/dq_checks.toml", description="the declarative checks (TOML)")
    sample_size = luigi.IntParameter(default=5, description="failing keys kept per check")


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
    date's ingestion wrote (``batches_touched``); ``checked``: the dates' reconciliation (``dw.reconciled``)."""
    from pipeline.transforms import dq as checks

    date_column = check.get("date_column", "invoice_date")
    kind = check["type"]
    if kind == "freshness":
        now = clock.now()
        expected = feeds(days, sla())
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


DEFAULT_GROUPS = {"all_marts": {"tasks": ["MartsReady"], "deadline": "10:00", "days_after": 1}}


class sla(luigi.Config):
    timezone = luigi.Parameter(default="Europe/London", description="business time zone of deadlines and feeds")
    groups = luigi.DictParameter(default=DEFAULT_GROUPS,
                                 description='{"group": {"tasks": [task families], "deadline": "HH:MM", '
                                             '"days_after": N}}')
    masters_at = luigi.Parameter(default="06:00", description="when the daily master snapshots land")
    lookback_hours = luigi.IntParameter(default=12, description="keep watching a day this long after its deadline")
    default_task_s = luigi.FloatParameter(default=60.0, description="expected duration of a task never run")
    history_days = luigi.IntParameter(default=30, description="task history used for expected durations")
    task_history_db = luigi.Parameter(default="", description="luigid's history: SQLite path or URL ('' = embedded)")

    @property
    def history_path(self) -> Path:
        return history.database(self.task_history_db)


def feeds(days: list[dt.date], cfg: sla) -> pd.DataFrame:
    """The day's expected feeds, whether each has landed, and its freshness tolerance (``freshness`` checks)."""
    tolerance = {c["feed"]: c["tolerance_minutes"] for c in load_checks(config.resolve_path(dq().checks))
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


class DataQualityChecks(_DailyTable):
    """Run the declarative checks of ``[dq] checks`` for a date and record them in ``ecommerce_mart.dq_results``.

    An error-severity failure fails the task (no marker), so ``MartsReady`` does not declare the date ready;
    warnings are only recorded. Earlier runs' results for the date are kept.
    """

    table = f"{MART}.dq_results"
    resources = {"ecommerce_db_writer": 1, "alerts_writer": 1}

    def requires(self):
        return [*(m(self.date, self.revision) for m in DATE_MARTS), *(m(self.date) for m in CUSTOMER_MARTS),
                DetectAnomalies(self.date, self.revision)]

    @writes_warehouse
    def run(self):
        with self.date_session() as spark:
            errors = self.publish(spark, [self.date])
        if errors:
            raise DataQualityError(errors[self.date])

    def publish(self, spark, dates: list[dt.date]) -> dict[dt.date, str]:
        """Check each date, record its results and alert; write the markers of the dates without an error.

        Returns the dates whose error-severity checks failed, with what failed (backfills check many dates).
        """
        cfg = dq()
        checks = load_checks(config.resolve_path(cfg.checks))
        table_wide: dict[int, tuple[int, list]] = {}
        errors = {}
        for start in range(0, len(dates), DATES_PER_JOB):
            chunk = dates[start:start + DATES_PER_JOB]
            now = clock.now()
            run_ids = {day: f"{day}@{now:%Y%m%dT%H%M%S}" for day in chunk}
            touched = batches_touched(spark, chunk)
            checked = reconciled(spark, chunk) if any(c["type"] == "reconciliation" for c in checks) else {}
            summaries = [failing_rows(spark, check, chunk, touched, checked).groupBy("day").agg(
                F.count(F.lit(1)).alias("failing"),
                F.slice(F.collect_list(F.col("failing_key").cast("string")), 1, cfg.sample_size).alias("sample"),
            ).select(F.col("day").cast("string").alias("day"), F.lit(i).alias("check"), "failing", "sample")
                for i, check in enumerate(checks) if dated(check) or i not in table_wide]
            found = {(r.day or "", r.check): (r.failing, r.sample)
                     for r in functools.reduce(DataFrame.unionByName, summaries).collect()}
            table_wide.update({i: found.get(("", i), (0, [])) for i, check in enumerate(checks)
                               if not dated(check) and i not in table_wide})
            results = {day: [(run_ids[day], check["name"], check["type"], check["table"], check["severity"],
                              "FAIL" if count else "PASS", count, "; ".join(sample or []), now, day)
                             for i, check in enumerate(checks)
                             for count, sample in [found.get((str(day), i), (0, [])) if dated(check)
                                                   else table_wide[i]]]
                       for day in chunk}
            rows = spark.createDataFrame([r for day in chunk for r in results[day]],
                                         wh.SCHEMAS[MART]["dq_results"]["columns"] + ", invoice_date DATE")
            earlier = read_dates(spark, self.table, chunk)
            self.write(spark, dq_history(earlier, rows), chunk)
            crash.point("dq.results_published")
            for day in chunk:
                error = self._verdict(spark, day, run_ids[day], results[day], checked.get(day))
                if error:
                    errors[day] = error
        return errors

    def _verdict(self, spark, day: dt.date, run_id: str, results: list[tuple],
                 reconciliation_checks: dict[str, dict] | None) -> str:
        """Log and alert the date's failed checks; write its marker unless an error-severity check failed
        (then say what failed). The marker keeps the date's reconciliation, for ``MartsReady``."""
        failed = [r for r in results if r[5] == "FAIL"]
        for r in failed:
            log.warning("data quality %s %s on %s: %d failing rows, e.g. %s", r[4], r[1], r[3], r[6], r[7])
        alerts.notify(spark, [Alert(kind="dq", severity=r[4], subject=f"data quality check {r[1]} failed for "
                                    f"{day}", body=f"{r[3]}: {r[6]} failing rows, e.g. {r[7]} (run {run_id})",
                                    dedupe_key=f"dq:{r[1]}:{day}", condition="FAIL") for r in failed])
        failed_errors = [f"{r[1]} ({r[6]} rows, e.g. {r[7]})" for r in failed if r[4] == "error"]
        if failed_errors:
            return f"{day}: error-severity checks failed: " + "; ".join(failed_errors)
        write_marker(self.clone(date=day).output(), {
            "date": day, "revision": self.revision, "run_id": run_id, "passed": len(results) - len(failed),
            "warned": len(failed), **({"reconciliation": reconciliation_checks} if reconciliation_checks else {})})
        return ""
