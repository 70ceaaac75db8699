"""A date's readiness: the late-date refresh, the tables that must see it, and ``MartsReady``.

    luigi --module pipeline.tasks.ready MartsReady --date 2010-12-02
    luigi --module pipeline.tasks.ready RangeDaily --of MartsReady --start 2010-12-01 --stop 2010-12-09
    luigi --module pipeline.tasks.ready MartsBackfill --start 2010-12-01 --end 2011-12-09

``RefreshLateDates`` rebuilds every earlier date whose input revision changed (late lines, lines released from
quarantine) by running its ``MartsReady`` again with the ``revision`` parameter, before the run date's
customer-level tables, which read every day's customer sales. So the graph loops through this module: a
date's ``DimCustomer`` needs ``RefreshLateDates``, which needs earlier dates' ``MartsReady``, which needs their
customer-level marts and data-quality checks, which need ``DimCustomer``. Those tasks live here together;
the tables they do not loop through are in ``star``, ``marts`` and ``quality``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

import luigi
from luigi.tools.range import RangeDaily  # noqa: F401  (for `luigi --module pipeline.tasks.ready RangeDaily`)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import clock, config
from pipeline.io import alerts, crash, fs, hs2, lock
from pipeline.io import warehouse as wh
from pipeline.schemas.mart import PURCHASE_HISTORY_BUCKETS
from pipeline.tasks.base import (
    DW,
    MART,
    TableForDate,
    dw_spark,
    fact_rows,
    input_revisions,
    marker,
    read_dates,
    write_marker,
    writes_warehouse,
)
from pipeline.tasks.ingest import IngestBackfill, IngestDay, previous_trading_day, source_days
from pipeline.tasks.marts import MartDailySales, MartHourlySales, MartProductPerformance
from pipeline.tasks.quality import (
    DATES_PER_JOB,
    DataQualityError,
    DetectAnomalies,
    batches_touched,
    dated,
    dq_history,
    failing_rows,
    load_checks,
    reconciled,
)
from pipeline.tasks.star import CustomerSalesDaily, DimCountry, DimDate, DimProduct, FactSales
from pipeline.transforms import publication, star
from pipeline.transforms.alerting import Alert
from pipeline.transforms.columns import in_values

log = logging.getLogger(__name__)
progress = logging.getLogger("pipeline.runtime.progress")


class ReconciliationError(RuntimeError):
    """The fact, the raw lines and the daily mart of a date disagree: its marts are not declared ready."""


class MartsNotServed(RuntimeError):
    """HiveServer2, which analysts query, does not show a date's published marts: they are not declared ready."""


class RefreshLateDates(luigi.Task):
    """Rebuild the star and date marts of every earlier date whose input changed since it was published.

    A date's input changes when a later batch brings lines for it or a quarantine retry releases some;
    its fact marker's ``input_revision`` then differs from ``input_revisions``. Runs after the day's
    ingestion and before its customer-level tables, which therefore see the late lines.
    """

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        return IngestDay(self.date)

    def output(self):
        return marker("dw", "late_refresh", f"{self.date}.json")

    def stale_dates(self, spark) -> dict[dt.date, str]:
        stale = {}
        for day, revision in input_revisions(spark).items():
            out = FactSales(day).output()
            if day < self.date and out.exists() and fs.read_json(out).get("input_revision") != revision:
                stale[day] = revision
        return stale

    def run(self):
        plan = marker("dw", "late_refresh", f"{self.date}.plan.json")
        if plan.exists():
            stale = {dt.date.fromisoformat(d): r for d, r in fs.read_json(plan)["rebuilt"].items()}
        else:
            stale = self.stale_dates(dw_spark())
            fs.write_json(plan, {"rebuilt": {str(d): r for d, r in stale.items()}})
        if stale:
            progress.info("[%s] late lines changed %d earlier dates: rebuilding %s", self.date, len(stale),
                          ", ".join(map(str, sorted(stale))))
            yield [MartsReady(day, revision) for day, revision in sorted(stale.items())]
        fs.write_json(self.output(), {"date": self.date, "rebuilt": {str(d): r for d, r in stale.items()}})
        plan.remove()


class DimCustomer(TableForDate):
    """``ecommerce_dw.dim_customer`` rebuilt from every day's customer sales up to the run."""

    table, partition = f"{DW}.dim_customer", None

    def requires(self):
        deps = [CustomerSalesDaily(self.date, self.revision)]
        return deps if self.revision else [*deps, RefreshLateDates(self.date)]

    def build(self, spark, dates):
        return star.dim_customer(wh.read(spark, f"{DW}.customer_sales_daily"))


class MartCustomerPurchaseHistory(TableForDate):
    """``ecommerce_mart.mart_customer_purchase_history``: a date's lines of known customers (shoppers' view).

    Laid out for the storefront's lookup of one customer: partitions by invoice month and
    ``customer_bucket = pmod(customer_id, 32)``, files sorted by customer, so a lookup reads one small file
    per month. Publishing a date rewrites the buckets of its month (the month so far plus the date), so the
    cost is bounded by a month's volume, not by the history. Up to ``[spark] driver_publish_max_rows`` lines,
    the month is published from the driver.
    """

    table = f"{MART}.mart_customer_purchase_history"
    partition = ("invoice_month", "customer_bucket")
    sort_by = ("customer_id", "invoice_ts", "invoice_no")

    def requires(self):
        return [FactSales(self.date, self.revision), DimCustomer(self.date, self.revision), DimCountry(self.date)]

    @staticmethod
    def months(dates: list[dt.date]) -> list[dt.date]:
        return sorted({d.replace(day=1) for d in dates})

    def partition_values(self, dates):
        return [(str(m), str(b)) for m in self.months(dates) for b in range(PURCHASE_HISTORY_BUCKETS)]

    def fits_in_driver(self, dates):
        """The month so far, as its ``FactSales`` markers count it, within ``[spark] driver_publish_max_rows``."""
        month = self.months(dates)[0]
        days = (max(dates) - month).days + 1
        rows = sum(fact_rows(month + dt.timedelta(days=n)) or 0 for n in range(days))
        return rows <= config.spark().driver_publish_max_rows

    def build(self, spark, dates):
        new = star.mart_customer_purchase_history(
            read_dates(spark, f"{DW}.fact_sales", dates), wh.read(spark, f"{DW}.dim_customer"),
            wh.read(spark, f"{DW}.dim_product"), wh.read(spark, f"{DW}.dim_country"))
        kept = read_dates(spark, self.table, self.months(dates), "invoice_month") \
            .where(~in_values("invoice_date", dates))
        return kept.unionByName(star.purchase_history_layout(new, PURCHASE_HISTORY_BUCKETS))


def as_of(spark, dates: list[dt.date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in dates], "as_of_date DATE")


class CustomerMart(TableForDate):
    """A customer-level mart: one partition per run date, from every day's customer sales up to it."""

    partition = "as_of_date"
    transform = None

    def requires(self):
        return DimCustomer(self.date)

    def build(self, spark, dates):
        return self.transform(wh.read(spark, f"{DW}.customer_sales_daily"), as_of(spark, dates))


class MartCustomerRfm(CustomerMart):
    """``ecommerce_mart.mart_customer_rfm`` partition of one run date: every customer's RFM scores and segment."""

    table = f"{MART}.mart_customer_rfm"
    transform = staticmethod(star.mart_customer_rfm)


class MartCohortRetention(CustomerMart):
    """``ecommerce_mart.mart_cohort_retention`` partition of one run date: retention of every monthly cohort."""

    table = f"{MART}.mart_cohort_retention"
    transform = staticmethod(star.mart_cohort_retention)


DATE_MARTS = (MartDailySales, MartHourlySales, MartProductPerformance, MartCustomerPurchaseHistory)
CUSTOMER_MARTS = (MartCustomerRfm, MartCohortRetention)


class DataQualityChecks(TableForDate):
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
        cfg = config.dq()
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


class MartsReady(TableForDate):
    """Records in ``ecommerce_mart.marts_ready`` the moment every mart of a date is published and reconciled.

    Before that, the date's error-severity data-quality checks must pass (``DataQualityChecks``), the fact
    must match its raw lines (count and amount), the daily mart must match the fact (gross and returns)
    and every fact key must exist in its dimension; otherwise the task fails with ``ReconciliationError``
    naming the checks, and the date is not declared ready. The first publication's time stays the date's
    ``first_ready_at``; a republication (late lines, ``python -m pipeline invalidate``) adds a revision with
    its time and reason (``transforms.publication``).
    """

    table, partition = f"{MART}.marts_ready", None
    resources = {"ecommerce_db_writer": 1, "alerts_writer": 1}

    def requires(self):
        return [*(m(self.date, self.revision) for m in DATE_MARTS), *(m(self.date) for m in CUSTOMER_MARTS),
                DataQualityChecks(self.date, self.revision)]

    def reconcile(self, spark, dates) -> dict[dt.date, dict[str, bool]]:
        """The dates' reconciliation: as the dates' ``DataQualityChecks`` recorded it (their ``reconciliation``
        check), else computed here."""
        recorded = {d: fs.read_json(DataQualityChecks(d).output()).get("reconciliation") for d in dates}
        checked = recorded if all(recorded.values()) else reconciled(spark, dates)
        failed = [f"{d} {name}: expected {c['expected']}, got {c['actual']}"
                  for d, by_check in checked.items() for name, c in by_check.items() if not c["passed"]]
        if failed:
            alerts.notify(spark, [Alert(kind="reconciliation", severity="error",
                                        subject=f"reconciliation failed for {', '.join(map(str, dates))}",
                                        body="; ".join(failed), dedupe_key=f"reconciliation:{dates[0]}:{dates[-1]}",
                                        condition="FAIL")])
            raise ReconciliationError("marts not declared ready, reconciliation failed: " + "; ".join(failed))
        return {d: {name: c["passed"] for name, c in by_check.items()} for d, by_check in checked.items()}

    def served(self, spark, dates) -> None:
        """Analysts read the marts through HiveServer2: each date's daily sales must be visible there as
        published (a table HiveServer2 still caches is refreshed once); otherwise ``MartsNotServed``."""
        table = f"{MART}.mart_daily_sales"
        published = {str(r.invoice_date): r["count"] for r in read_dates(spark, table, dates)
                     .groupBy("invoice_date").count().collect()}
        listed = ", ".join(f"DATE '{d}'" for d in dates)
        sql = f"SELECT invoice_date, count(*) FROM {table} WHERE invoice_date IN ({listed}) GROUP BY invoice_date"
        seen = {str(d): n for d, n in hs2.query(sql)}
        if seen != published:
            hs2.query(f"REFRESH TABLE {table}")
            seen = {str(d): n for d, n in hs2.query(sql)}
        if seen != published:
            raise MartsNotServed(f"HiveServer2 ({hs2.url()}) shows {table} rows per date {seen}, published {published}")

    def build(self, spark, dates):
        self._checks = self.reconcile(spark, dates)
        self.served(spark, dates)
        now = clock.now()
        previous: dict[dt.date, list[publication.Publication]] = {}
        for r in read_dates(spark, self.table, dates).collect():
            first = r.first_ready_at or r.ready_at
            previous.setdefault(r.invoice_date, []).append(publication.Publication(
                r.invoice_date, r.revision or 0, first, r.ready_at, r.republished_at, r.reason or "",
                r.input_revision or "", r.invalidated_at))
        revisions = input_revisions(spark, dates)
        added, self._ready = [], {}
        for d in dates:
            note = invalidation(d)
            new = publication.next_publication(
                d, previous.get(d, []), revisions.get(d, ""), now,
                dt.datetime.fromisoformat(note["invalidated_at"]) if note else None, note.get("reason", ""))
            added += [new] if new else []
            self._ready[d] = new or max(previous[d], key=lambda p: p.revision)
        names = ",".join(m.__name__ for m in DATE_MARTS + CUSTOMER_MARTS)
        rows = spark.createDataFrame(
            [(p.invoice_date, p.ready_at, names, p.revision, p.first_ready_at, p.republished_at, p.reason,
              p.input_revision, p.invalidated_at) for p in added], wh.SCHEMAS[MART]["marts_ready"]["columns"])
        return wh.read(spark, self.table).unionByName(rows)

    def marker_facts(self, spark, dates):
        return {d: {"ready_at": self._ready[d].ready_at, "first_ready_at": self._ready[d].first_ready_at,
                    "ready_revision": self._ready[d].revision, "reconciliation": self._checks.get(d, {})}
                for d in dates}


def invalidation_marker(day: dt.date) -> luigi.Target:
    """The note ``python -m pipeline invalidate`` leaves for a date before removing its markers."""
    return marker("invalidations", f"{day}.json")


def invalidation(day: dt.date) -> dict:
    """The date's latest invalidation (``invalidated_at``, ``reason``, ``tasks``), or {} if never invalidated."""
    out = invalidation_marker(day)
    return fs.read_json(out) if out.exists() else {}


class MartsBackfill(luigi.Task):
    """Publish the star schema, every mart, the anomaly flags and the data-quality results of the dates of a
    range that are not complete, in one Spark pass per table.

    Writes the same per-date markers as the daily tasks, so daily runs continue where it stopped, and never
    republishes a complete date. Days before ``start`` must already be done (the customer-level tables need
    the whole history). A date whose error-severity checks fail is not declared ready; the task then fails
    naming those dates, after declaring the others.
    """

    start = luigi.DateParameter()
    end = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1, "alerts_writer": 1}

    @property
    def days(self) -> list[dt.date]:
        return [d for d in source_days() if self.start <= d <= self.end]

    def requires(self):
        prev = previous_trading_day(self.days[0]) if self.days else None
        return [IngestBackfill(self.start, self.end)] + ([MartsReady(prev)] if prev else [])

    def complete(self):
        return all(MartsReady(d).complete() for d in self.days)

    def run(self):
        days = [d for d in self.days if not MartsReady(d).complete()]
        yield [DimDate(), DimProduct(days[-1]), DimCountry(days[-1])]
        with lock.warehouse_lock(self.task_id):
            self._publish(days)

    def _publish(self, days: list[dt.date]) -> None:
        spark = dw_spark()
        for table in (FactSales, CustomerSalesDaily, DimCustomer, *DATE_MARTS, *CUSTOMER_MARTS, DetectAnomalies):
            todo = [d for d in days if not table(d).complete()]
            if todo:
                progress.info("%s: publishing %d dates", table.__name__, len(todo))
                table(todo[-1]).publish(spark, todo)
        for d in days:
            if not RefreshLateDates(d).complete():
                write_marker(RefreshLateDates(d).output(), {"date": d, "rebuilt": {}, "backfill": True})
        todo = [d for d in days if not DataQualityChecks(d).complete()]
        progress.info("DataQualityChecks: checking %d dates", len(todo))
        errors = DataQualityChecks(days[-1]).publish(spark, todo) if todo else {}
        ready = [d for d in days if d not in errors]
        progress.info("MartsReady: reconciling %d dates", len(ready))
        if ready:
            MartsReady(ready[-1]).publish(spark, ready)
        if errors:
            raise DataQualityError(f"{len(errors)} dates not declared ready: " + " | ".join(errors.values()))
