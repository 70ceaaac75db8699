"""What the tasks that write the warehouse share: the writer lock around ``run``, markers written last, the
Spark session with the databases in place, and ``TableForDate``, the task that publishes one table for a date."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging

import luigi
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import clock, config
from pipeline.engine.spark import get_spark, one_date_queries
from pipeline.io import arrow_tables, crash, fs, lock
from pipeline.io import warehouse as wh
from pipeline.transforms.columns import in_values

log = logging.getLogger(__name__)

DW, MART = "ecommerce_dw", "ecommerce_mart"


def writes_warehouse(run):
    """Run the task holding the warehouse lock. A task that another writer completed while this one waited
    for the lock does nothing (its marker is there)."""

    @functools.wraps(run)
    def locked(self: luigi.Task):
        with lock.warehouse_lock(self.task_id), crash.task(self.task_family):
            if self.complete():
                log.info("%s was completed by another writer while waiting for the warehouse lock", self.task_id)
                return None
            return run(self)

    return locked


def write_marker(target: luigi.Target, payload: dict) -> None:
    """Write a task's marker: the last step of its run, after every table it publishes."""
    crash.point("task.before_marker")
    fs.write_json(target, payload)


def marker(*parts: str) -> luigi.Target:
    return fs.target(fs.join(config.warehouse().uri, "_markers", *parts))


def spark_with_schema():
    spark = get_spark()
    wh.ensure_schema(spark)
    return spark


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


def table_marker(table: str, day: dt.date) -> luigi.Target:
    """The marker of ``table`` (``db.name``) for a date, as its ``TableForDate`` task writes it."""
    db, name = table.split(".")
    return marker("dw" if db == DW else "mart", name, f"{day}.json")


def fact_rows(day: dt.date) -> int | None:
    """The date's rows in ``fact_sales`` as its ``FactSales`` marker records them; None before it is published."""
    out = table_marker(f"{DW}.fact_sales", day)
    return fs.read_json(out).get("rows") if out.exists() else None


def lines_for_dates(spark, dates: list[dt.date]) -> DataFrame:
    """The loaded raw lines with an invoice date in ``dates``, read only from the batches that carry them."""
    batches = [r.batch_id for r in wh.read(spark, "batch_invoice_dates")
               .where(in_values("invoice_date", dates)).select("batch_id").distinct().collect()]
    return (wh.read(spark, "transactions_raw").where(in_values("batch_id", batches))
            .where(in_values("to_date(invoice_ts)", dates)))


def read_dates(spark, table: str, dates: list[dt.date], column: str = "invoice_date") -> DataFrame:
    return wh.read(spark, table).where(in_values(column, dates))


class TableForDate(luigi.Task):
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
        return table_marker(self.table, self.date)

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
