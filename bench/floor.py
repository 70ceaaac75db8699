"""The stack's fixed cost: what a task costs when it does almost nothing, against the one-day and demo targets.

    python -m bench.floor [--tasks 22] [--chains 3] [--queries 40]

On a fresh bench stack (metastore, HiveServer2, luigid on the bench ports), in one process as ``python -m
pipeline run`` builds, with the pipeline's warm Spark session:

- **luigid:** a chain of ``--tasks`` tasks that only write their marker, built through luigid with one
  worker (``operate.build``): seconds per task for scheduling, completion checks and the marker.
- **a minimal table task:** the same chain, each task doing the least a daily table does: under the
  warehouse lock, one Spark aggregation over the previous date's partition of a one-row table, that
  date's row published from the driver (``arrow_tables.publish_collected``: Arrow collect, Parquet file,
  metastore swap, refresh), then its marker.
- **the same Spark work alone**, in a loop without Luigi.
- **HiveServer2:** one point query on that one-row table over PyHive, median and p95 of ``--queries``.

``--tasks`` defaults to the task runs of one day's graph that touch the warehouse: 26 tasks in
``MartsReady``'s graph, less the two wrappers (``IngestDay``, ``ReplayDay``) and with the six transaction
windows run as two batches. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import statistics
import time

import luigi
from pyspark.sql import functions as F

from bench.stack import bench_stack
from pipeline.tasks.base import write_marker, writes_warehouse

TABLE = "bench_floor.one_row"
SPEC = {"one_row": {"columns": "value BIGINT", "partition": "invoice_date DATE",
                    "grain": "one row per date (the floor benchmark's table)"}}
FIRST_DATE = dt.date(2001, 1, 1)
DAYS_IN_DEMO = 7
TARGETS_S = {"one day": 10.0, "make run": 60.0}
HS2_TARGET_MS = 200.0


def _date(chain: str, n: int) -> dt.date:
    return FIRST_DATE + dt.timedelta(days=1000 * int(chain.rsplit("-", 1)[1]) + n)


def publish_next(spark, day: dt.date) -> None:
    """The least a daily table does: one aggregation over the previous date, the date's row published from the
    driver."""
    from pipeline.io import arrow_tables

    previous = spark.table(TABLE).where(F.col("invoice_date") == F.lit(day - dt.timedelta(days=1)))
    row = previous.agg((F.coalesce(F.max("value"), F.lit(0)) + 1).alias("value")).withColumn(
        "invoice_date", F.lit(day))
    arrow_tables.publish_collected(spark, row, TABLE, [str(day)])


class MarkerOnly(luigi.Task):
    """Link ``n`` of a chain of tasks that only write their marker."""

    chain = luigi.Parameter()
    n = luigi.IntParameter()

    def requires(self):
        return [self.clone(n=self.n - 1)] if self.n > 0 else []

    def output(self):
        from pipeline.tasks.base import marker

        return marker("bench_floor", self.chain, f"{self.n}.json")

    def run(self):
        write_marker(self.output(), {"n": self.n})


class MinimalTable(MarkerOnly):
    """Link ``n`` of a chain of tasks that each publish one date of a one-row table (``publish_next``)."""

    @writes_warehouse
    def run(self):
        from pipeline.tasks.base import dw_spark

        publish_next(dw_spark(), _date(self.chain, self.n))
        write_marker(self.output(), {"n": self.n})


def _build_chain(cls: type[MarkerOnly], chain: str, tasks: int) -> float:
    """Seconds per task of a chain of ``tasks`` built through luigid."""
    from pipeline.runtime import operate

    t0 = time.monotonic()
    result = operate.build([cls(chain=chain, n=tasks - 1)])
    elapsed = time.monotonic() - t0
    if not operate.succeeded(result):
        raise SystemExit(f"the {cls.__name__} chain failed:\n{result.summary_text}")
    return elapsed / tasks


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(tasks: int, chains: int, queries: int) -> dict:
    from pipeline.io import hs2
    from pipeline.io import warehouse as wh
    from pipeline.tasks.base import dw_spark

    spark = dw_spark()
    wh.SCHEMAS.setdefault("bench_floor", SPEC)
    wh.ensure_schema(spark, "bench_floor")
    publish_next(spark, FIRST_DATE)
    marker_only = [_build_chain(MarkerOnly, f"marker-{i}", tasks) for i in range(chains)]
    minimal = [_build_chain(MinimalTable, f"table-{i + 1}", tasks) for i in range(chains)]
    alone = []
    for i in range(tasks):
        t0 = time.monotonic()
        publish_next(spark, _date(f"alone-{chains + 1}", i))
        alone.append(time.monotonic() - t0)
    sql = f"SELECT value FROM {TABLE} WHERE invoice_date = DATE '{_date('table-1', tasks - 1)}'"
    hs2.query(sql)
    point_ms = []
    for _ in range(queries):
        t0 = time.monotonic()
        hs2.query(sql)
        point_ms.append((time.monotonic() - t0) * 1000)
    per_task = statistics.median(minimal[1:] or minimal)
    return {
        "tasks_per_day": tasks,
        "marker_only_s_per_task": [round(x, 3) for x in marker_only],
        "minimal_table_s_per_task": [round(x, 3) for x in minimal],
        "spark_alone_s_median": round(statistics.median(alone), 3),
        "one_day_floor_s": round(per_task * tasks, 1),
        "demo_floor_s": round(per_task * tasks * DAYS_IN_DEMO, 1),
        "hs2_point_query_ms": {"median": round(statistics.median(point_ms)),
                               "p95": round(_percentile(point_ms, 0.95))},
    }


def report(m: dict) -> list[str]:
    day, demo = m["one_day_floor_s"], m["demo_floor_s"]
    hs2_ms = m["hs2_point_query_ms"]
    return [
        "| figure | measured | target |",
        "|---|---|---|",
        f"| luigid, a task that only writes its marker (s per task, each chain) | "
        f"{', '.join(map(str, m['marker_only_s_per_task']))} | - |",
        f"| a minimal table task through luigid (s per task, each chain) | "
        f"{', '.join(map(str, m['minimal_table_s_per_task']))} | - |",
        f"| its Spark work alone, no Luigi (median s) | {m['spark_alone_s_median']} | - |",
        f"| one day's {m['tasks_per_day']} task runs at that floor | {day} s | <= {TARGETS_S['one day']:g} s |",
        f"| the demo's {DAYS_IN_DEMO} days at that floor | {demo} s | <= {TARGETS_S['make run']:g} s |",
        f"| HiveServer2 point query on a one-row table | median {hs2_ms['median']} ms, p95 {hs2_ms['p95']} ms "
        f"| p95 <= {HS2_TARGET_MS:g} ms |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=22, help="task runs in one chain (one day's graph: 22)")
    parser.add_argument("--chains", type=int, default=3, help="chains of each kind (the first one warms up)")
    parser.add_argument("--queries", type=int, default=40, help="HiveServer2 point queries")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with bench_stack(replay=False):
        m = measure(args.tasks, args.chains, args.queries)
    print("\n".join(report(m)))
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
