"""The star schema in ``ecommerce_dw`` and the marts in ``ecommerce_mart``.

    luigi --module pipeline.tasks.dw MartsReady --date 2010-12-02
    luigi --module pipeline.tasks.dw MartsBackfill --start 2010-12-01 --end 2011-12-09

Facts and date marts are partitioned by invoice date and built per date from the batches that carry lines
for it (``ecommerce_db.batch_invoice_dates``), so a day's cost does not depend on history. Each fact
marker records the date's input revision (its batches and their row counts); ``RefreshLateDates`` rebuilds
every earlier date whose revision changed (late lines, lines released from quarantine) with the
``revision`` parameter, before the run date's customer-level marts are computed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

import holidays
import luigi
from luigi.tools.range import RangeDaily  # noqa: F401  (for `luigi --module pipeline.tasks.dw RangeDaily`)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import alerts, config, fs, hs2, load
from pipeline import warehouse as wh
from pipeline.io import arrow_tables, lock
from pipeline.runtime import clock
from pipeline.spark import one_date_queries
from pipeline.tasks.base import write_marker, writes_warehouse
from pipeline.tasks.ingest import (
    CountriesSnapshot,
    IngestBackfill,
    IngestDay,
    ProductsSnapshot,
    marker,
    previous_trading_day,
    source_days,
    spark_with_schema,
)
from pipeline.transforms import publication, star
from pipeline.transforms.alerting import Alert
from pipeline.transforms.columns import in_values

log = logging.getLogger(__name__)
progress = logging.getLogger("pipeline.progress")

DW, MART = "ecommerce_dw", "ecommerce_mart"


class dw(luigi.Config):
    calendar_start = luigi.DateParameter(
        default=dt.date(2010, 1, 1),
        description="dim_date starts no later than this (it also covers every landed date, whole years)")
    calendar_end = luigi.DateParameter(
        default=dt.date(2012, 12, 31),
        description="dim_date ends no earlier than this (it also covers every landed date, whole years)")


class ReconciliationError(RuntimeError):
    """The fact, the raw lines and the daily mart of a date disagree: its marts are not declared ready."""


class MartsNotServed(RuntimeError):
    """HiveServer2, which analysts query, does not show a date's published marts: they are not declared ready."""


def dw_spark():
    spark = spark_with_schema()
    wh.ensure_schema(spark, DW)
    wh.ensure_schema(spark, MART)
    return spark


def input_revisions(spark, dates: list[dt.date] | None = None) -> dict[dt.date, str]:
    """Per invoice date, a digest of the batches carrying its lines and their row counts.

    It changes exactly when a batch brings lines for the date or a quarantine retry releases some.
    """
    index = wh.read(spark, "batch_invoice_dates")
    if dates is not None:
        index = index.where(in_values("invoice_date", dates))
    parts = index.groupBy("invoice_date").agg(F.sort_array(F.collect_list(
        F.concat_ws(":", "batch_id", F.col("rows_loaded").cast("string")))).alias("parts")).collect()
    return {r.invoice_date: hashlib.sha1("|".join(r.parts).encode()).hexdigest()[:12] for r in parts}


def fact_rows(day: dt.date) -> int | None:
    """The date's rows in ``fact_sales`` as its ``FactSales`` marker records them; None before it is published."""
    out = FactSales(day).output()
    return fs.read_json(out).get("rows") if out.exists() else None


def lines_for_dates(spark, dates: list[dt.date]) -> DataFrame:
    """The loaded raw lines with an invoice date in ``dates``, read only from the batches that carry them."""
    batches = [r.batch_id for r in wh.read(spark, "batch_invoice_dates")
               .where(in_values("invoice_date", dates)).select("batch_id").distinct().collect()]
    return (wh.read(spark, "transactions_raw").where(in_values("batch_id", batches))
            .where(in_values("to_date(invoice_ts)", dates)))


def read_dates(spark, table: str, dates: list[dt.date], column: str = "invoice_date") -> DataFrame:
    return wh.read(spark, table).where(in_values(column, dates))


class DimDate(luigi.Task):
    """``ecommerce_dw.dim_date`` over whole years covering ``[dw]`` and every landed date, with England's
    bank holidays.

    The range follows the feed calendar (``source_days``): the first feed of a new year changes it, and with
    it the marker's name, so the next run republishes the table with that whole year.
    """

    @staticmethod
    def span() -> tuple[dt.date, dt.date]:
        cfg = dw()
        return star.calendar_range(source_days(), cfg.calendar_start, cfg.calendar_end)

    @staticmethod
    def marker_for(start: dt.date, end: dt.date) -> luigi.Target:
        return marker("dw", f"dim_date_{start}_{end}.json")

    def output(self):
        return self.marker_for(*self.span())

    @writes_warehouse
    def run(self):
        start, end = self.span()
        spark = dw_spark()
        calendar = spark.sql(f"SELECT explode(sequence(DATE '{start}', DATE '{end}')) AS date")
        bank = holidays.country_holidays("GB", subdiv="ENG", years=range(start.year, end.year + 1))
        holiday_df = spark.createDataFrame(sorted(bank.items()), "date DATE, holiday_name STRING")
        wh.replace_table(spark, star.dim_date(calendar, holiday_df).coalesce(1), f"{DW}.dim_date")
        log.info("dim_date published for %s .. %s", start, end)
        write_marker(self.marker_for(start, end), {"start": start, "end": end, "rows": (end - start).days + 2})


class _DailyTable(luigi.Task):
    """Publishes one table for a run date: its date partition (``partition``) or the whole table.

    ``revision`` is set when ``RefreshLateDates`` rebuilds a date whose input changed after it was
    published: the task is then complete only when its marker carries that revision.
    ``publish`` builds several dates in one Spark pass (backfills) and writes each date's marker. A run of one
    date publishes from the driver (``fits_in_driver``) and, when its fact is small, runs its queries
    interpreted (``spark.one_date_queries``).
    """

    date = luigi.DateParameter()
    revision = luigi.Parameter(default="", description="input revision of a rebuilt date ('' = first build)")
    resources = {"ecommerce_db_writer": 1}
    table = ""
    partition: str | tuple[str, ...] | None = "invoice_date"
    sort_by: tuple[str, ...] = ()

    def output(self):
        db, name = self.table.split(".")
        return marker("dw" if db == DW else "mart", name, f"{self.date}.json")

    def complete(self):
        if not self.revision:
            return super().complete()
        out = self.output()
        return out.exists() and fs.read_json(out).get("revision") == self.revision

    def build(self, spark, dates: list[dt.date]) -> DataFrame:
        raise NotImplementedError

    def marker_facts(self, spark, dates: list[dt.date]) -> dict[dt.date, dict]:
        return {}

    def partition_values(self, dates: list[dt.date]) -> list:
        return [str(d) for d in dates]

    def fits_in_driver(self, dates: list[dt.date]) -> bool:
        """Whether one date's rows are few enough to publish from the driver (Arrow), without a Spark write job."""
        return True

    def date_session(self):
        """The session for a run of this one date, interpreted when its fact is small (``one_date_queries``)."""
        return one_date_queries(dw_spark(), fact_rows(self.date))

    @writes_warehouse
    def run(self):
        with self.date_session() as spark:
            self.publish(spark, [self.date])

    def publish(self, spark, dates: list[dt.date]) -> None:
        self.write(spark, self.build(spark, dates), dates)
        facts = self.marker_facts(spark, dates)
        published_at = clock.now()
        for d in dates:
            write_marker(self.clone(date=d).output(), {"date": d, "revision": self.revision,
                                                        "published_at": published_at, **facts.get(d, {})})

    def write(self, spark, df: DataFrame, dates: list[dt.date]) -> None:
        """Publish ``df`` as the dates' partitions (``partition_values``), or as the whole table: one date's rows
        from the driver, several dates' with a Spark write job."""
        if len(dates) == 1 and self.fits_in_driver(dates):
            df = df.coalesce(1).sortWithinPartitions(*self.sort_by) if self.sort_by else df
            values = self.partition_values(dates) if self.partition else None
            arrow_tables.publish_collected(spark, df, self.table, values)
        elif self.partition:
            columns = (self.partition,) if isinstance(self.partition, str) else self.partition
            df = df.coalesce(1) if len(dates) == 1 else df.repartition(*columns)
            if self.sort_by:
                df = df.sortWithinPartitions(*columns, *self.sort_by)
            wh.replace_partitions(spark, df, self.table, self.partition, self.partition_values(dates))
        else:
            wh.replace_table(spark, df.coalesce(1), self.table)


class DimProduct(_DailyTable):
    """``ecommerce_dw.dim_product`` as of a day's products snapshot."""

    table, partition = f"{DW}.dim_product", None

    def requires(self):
        return ProductsSnapshot(self.date)

    def build(self, spark, dates):
        return star.dim_product(wh.read(spark, "products"), load.non_product_patterns())


class DimCountry(_DailyTable):
    """``ecommerce_dw.dim_country`` as of a day's countries snapshot."""

    table, partition = f"{DW}.dim_country", None

    def requires(self):
        return CountriesSnapshot(self.date)

    def build(self, spark, dates):
        return star.dim_country(wh.read(spark, "countries"))


class FactSales(_DailyTable):
    """``ecommerce_dw.fact_sales`` partition of one invoice date, from every batch carrying lines for it."""

    table = f"{DW}.fact_sales"

    def requires(self):
        return [IngestDay(self.date), DimProduct(self.date)]

    def build(self, spark, dates):
        return star.fact_sales(lines_for_dates(spark, dates), wh.read(spark, f"{DW}.dim_product"))

    def fits_in_driver(self, dates):
        return False  # as many rows as the feed brings

    def marker_facts(self, spark, dates):
        revisions = input_revisions(spark, dates)
        sums = {r.invoice_date: r for r in read_dates(spark, self.table, dates).groupBy("invoice_date")
                .agg(F.count(F.lit(1)).alias("rows"), F.sum("line_amount").alias("amount")).collect()}
        return {d: {"input_revision": revisions.get(d, ""), "rows": sums[d].rows if d in sums else 0,
                    "line_amount": str(sums[d].amount if d in sums else 0)} for d in dates}


class MartDailySales(_DailyTable):
    """``ecommerce_mart.mart_daily_sales`` partition of one invoice date."""

    table = f"{MART}.mart_daily_sales"

    def requires(self):
        return [FactSales(self.date, self.revision), DimCountry(self.date), DimDate()]

    def build(self, spark, dates):
        return star.mart_daily_sales(read_dates(spark, f"{DW}.fact_sales", dates),
                                     wh.read(spark, f"{DW}.dim_country"))


class MartHourlySales(_DailyTable):
    """``ecommerce_mart.mart_hourly_sales`` partition of one invoice date."""

    table = f"{MART}.mart_hourly_sales"

    def requires(self):
        return FactSales(self.date, self.revision)

    def build(self, spark, dates):
        return star.mart_hourly_sales(read_dates(spark, f"{DW}.fact_sales", dates))


class MartProductPerformance(_DailyTable):
    """``ecommerce_mart.mart_product_performance`` partition of one invoice date."""

    table = f"{MART}.mart_product_performance"

    def requires(self):
        return FactSales(self.date, self.revision)

    def build(self, spark, dates):
        return star.mart_product_performance(read_dates(spark, f"{DW}.fact_sales", dates),
                                             wh.read(spark, f"{DW}.dim_product"))


class CustomerSalesDaily(_DailyTable):
    """``ecommerce_dw.customer_sales_daily`` partition of one invoice date; needs every earlier day's."""

    table = f"{DW}.customer_sales_daily"

    def requires(self):
        prev = previous_trading_day(self.date)
        return [IngestDay(self.date)] + ([CustomerSalesDaily(prev)] if prev and not self.revision else [])

    def build(self, spark, dates):
        return star.customer_sales_daily(lines_for_dates(spark, dates))


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


class DimCustomer(_DailyTable):
    """``ecommerce_dw.dim_customer`` rebuilt from every day's customer sales up to the run."""

    table, partition = f"{DW}.dim_customer", None

    def requires(self):
        deps = [CustomerSalesDaily(self.date, self.revision)]
        return deps if self.revision else [*deps, RefreshLateDates(self.date)]

    def build(self, spark, dates):
        return star.dim_customer(wh.read(spark, f"{DW}.customer_sales_daily"))


HISTORY_BUCKETS = 32


class MartCustomerPurchaseHistory(_DailyTable):
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
        return [(str(m), str(b)) for m in self.months(dates) for b in range(HISTORY_BUCKETS)]

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
        return kept.unionByName(star.purchase_history_layout(new, HISTORY_BUCKETS))


def as_of(spark, dates: list[dt.date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in dates], "as_of_date DATE")


class _CustomerMart(_DailyTable):
    """A customer-level mart: one partition per run date, from every day's customer sales up to it."""

    partition = "as_of_date"
    transform = None

    def requires(self):
        return DimCustomer(self.date)

    def build(self, spark, dates):
        return self.transform(wh.read(spark, f"{DW}.customer_sales_daily"), as_of(spark, dates))


class MartCustomerRfm(_CustomerMart):
    """``ecommerce_mart.mart_customer_rfm`` partition of one run date: every customer's RFM scores and segment."""

    table = f"{MART}.mart_customer_rfm"
    transform = staticmethod(star.mart_customer_rfm)


class MartCohortRetention(_CustomerMart):
    """``ecommerce_mart.mart_cohort_retention`` partition of one run date: retention of every monthly cohort."""

    table = f"{MART}.mart_cohort_retention"
    transform = staticmethod(star.mart_cohort_retention)


DATE_MARTS = (MartDailySales, MartHourlySales, MartProductPerformance, MartCustomerPurchaseHistory)
CUSTOMER_MARTS = (MartCustomerRfm, MartCohortRetention)


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


class MartsReady(_DailyTable):
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
        from pipeline.tasks.quality import DataQualityChecks

        return [*(m(self.date, self.revision) for m in DATE_MARTS), *(m(self.date) for m in CUSTOMER_MARTS),
                DataQualityChecks(self.date, self.revision)]

    def reconcile(self, spark, dates) -> dict[dt.date, dict[str, bool]]:
        """The dates' reconciliation: as the dates' ``DataQualityChecks`` recorded it (their ``reconciliation``
        check), else computed here."""
        from pipeline.tasks.quality import DataQualityChecks

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
        from pipeline.tasks.quality import DataQualityChecks, DataQualityError, DetectAnomalies

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
