"""Marts benchmark: one day's marts at the start of the year vs at its end, and the storefront's read.

    python -m bench.marts [--start 2010-12-01 --end 2011-12-09] [--customers 25] [--keep]

On a fresh stack (bench ports): ingest the range (``IngestBackfill``), then time through luigid

- ``MartsReady`` of the first day with no marts published yet,
- ``MartsBackfill`` of the days in between (one Spark pass per table),
- ``MartsReady`` of the last day, with a year of history behind it,
- ``MartsReady`` of the first day again (its markers removed) with the full history: same volume.

Then the storefront read: one customer's purchase history over HiveServer2, for a sample of customers,
on the published layout (partitions by invoice month and ``pmod(customer_id, 32)``, files sorted by
customer) and on two scratch copies (date partitions sorted by customer, the first layout; 64 buckets
over the whole history, which a daily run could not publish without rewriting it). Last line: one JSON
summary.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from bench.stack import Stack, bench_stack, run_task

FIRST_DAY_TABLES = (("dw", "fact_sales"), ("dw", "customer_sales_daily"), ("dw", "dim_customer"),
                    ("dw", "late_refresh"), ("mart", "mart_daily_sales"), ("mart", "mart_hourly_sales"),
                    ("mart", "mart_product_performance"), ("mart", "mart_customer_purchase_history"),
                    ("mart", "mart_customer_rfm"), ("mart", "mart_cohort_retention"), ("mart", "marts_ready"))
HISTORY = "ecommerce_mart.mart_customer_purchase_history"
LAYOUTS = {
    "published (month x 32 customer buckets, sorted)": (HISTORY, 32),
    "date partitions, sorted by customer": ("bench_layout.history_by_date", None),
    "64 customer buckets over all history, sorted": ("bench_layout.history_by_bucket", 64),
}


# The tables MartsBackfill publishes, in its order, by marker directory (after the dimensions it requires).
BACKFILL_STEPS = (("dw", "fact_sales"), ("dw", "customer_sales_daily"), ("dw", "dim_customer"),
                  ("mart", "mart_daily_sales"), ("mart", "mart_hourly_sales"), ("mart", "mart_product_performance"),
                  ("mart", "mart_customer_purchase_history"), ("mart", "mart_customer_rfm"),
                  ("mart", "mart_cohort_retention"), ("mart", "anomalies"), ("dw", "late_refresh"),
                  ("mart", "dq_results"), ("mart", "marts_ready"))


def _timed(stack: Stack, module: str, *task: str) -> float:
    """Wall seconds of one Luigi task through luigid (``BenchFailure`` if it fails)."""
    return run_task(stack, module, *task).wall_s


def _last_write(directory: Path) -> float | None:
    """The newest modification time of the markers in ``directory`` (plans left out), or None."""
    times = [p.stat().st_mtime for p in directory.glob("*.json") if not p.name.endswith(".plan.json")]
    return max(times) if times else None


def backfill_steps(state: Path) -> dict[str, float]:
    """Seconds of each table of the last ``MartsBackfill`` on a bench state dir, from its markers: a table's
    markers are written right after it is published, so each step lasts from the previous table's last
    marker to its own (the first from the dimensions' markers). Steps with no markers are left out."""
    markers = state / "warehouse" / "_markers"
    dims = [t for t in (_last_write(markers / "dw" / "dim_product"), _last_write(markers / "dw" / "dim_country"),
                        _last_write(markers / "dw")) if t is not None]
    previous = max(dims) if dims else None
    steps: dict[str, float] = {}
    for area, table in BACKFILL_STEPS:
        last = _last_write(markers / area / table)
        if last is None:
            continue
        if previous is not None:
            steps[table] = round(max(0.0, last - previous), 1)
        previous = last
    return steps


def sample_customers(n: int) -> list[int]:
    """``n`` customers of the purchase history, spread over the ids in a fixed pseudo-random order."""
    from pipeline.io import hs2

    return [r[0] for r in hs2.query(
        f"SELECT customer_id FROM {HISTORY} GROUP BY customer_id ORDER BY pmod(customer_id * 7919, 1009) "
        "LIMIT %(n)s", {"n": n})]


def build_layouts() -> None:
    """The scratch copies of the purchase history the published layout is compared with."""
    from pyspark.sql import functions as F

    from pipeline.engine.spark import get_spark
    from pipeline.io import catalog

    spark = get_spark()
    spark.sql(f"CREATE DATABASE IF NOT EXISTS bench_layout LOCATION '{catalog.db_location('bench_layout')}'")
    history = spark.table(HISTORY).drop("invoice_month", "customer_bucket")
    (history.repartition("invoice_date").sortWithinPartitions("invoice_date", "customer_id", "invoice_ts")
     .write.mode("overwrite").partitionBy("invoice_date").saveAsTable("bench_layout.history_by_date"))
    (history.withColumn("customer_bucket", F.pmod("customer_id", F.lit(64)))
     .repartition("customer_bucket").sortWithinPartitions("customer_id", "invoice_ts")
     .write.mode("overwrite").partitionBy("customer_bucket").saveAsTable("bench_layout.history_by_bucket"))


def read_latency(table: str, buckets: int | None, customers: list[int]) -> dict:
    """The storefront's read of one customer's history over HiveServer2, per customer after one warm-up
    query: median, 95th percentile (nearest rank) and maximum milliseconds, and the rows read."""
    from pipeline.io import hs2

    where = "customer_id = %(c)s" + (f" AND customer_bucket = pmod(%(c)s, {buckets})" if buckets else "")
    sql = f"SELECT invoice_no, invoice_ts, stock_code, quantity, line_amount FROM {table} WHERE {where} " \
          "ORDER BY invoice_ts"
    hs2.query(sql, {"c": customers[0]})
    times, rows = [], 0
    for c in customers:
        t0 = time.monotonic()
        rows += len(hs2.query(sql, {"c": c}))
        times.append(time.monotonic() - t0)
    p95 = sorted(times)[max(0, math.ceil(0.95 * len(times)) - 1)]
    return {"median_ms": round(statistics.median(times) * 1000), "p95_ms": round(p95 * 1000),
            "max_ms": round(max(times) * 1000), "rows": rows, "customers": len(customers)}


def main(argv: list[str] | None = None) -> int:
    """Command line: the marts benchmark on a fresh bench stack."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-12-01")
    parser.add_argument("--end", default="2011-12-09")
    parser.add_argument("--customers", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="keep the state dir and services")
    args = parser.parse_args(argv)
    with bench_stack(keep=args.keep) as stack:
        return _measure(args, stack)


def _measure(args: argparse.Namespace, stack: Stack) -> int:
    """Time the day's marts before and after the year, the backfill and the storefront read; print them."""
    from pipeline.io import hs2
    from pipeline.tasks.ingest import source_days

    days = [d for d in source_days() if str(d) >= args.start and str(d) <= args.end]
    first, second, before_last, last = days[0], days[1], days[-2], days[-1]
    ingest_s = _timed(stack, "pipeline.tasks.ingest", "IngestBackfill", "--start", args.start, "--end", args.end)
    first_empty = _timed(stack, "pipeline.tasks.ready", "MartsReady", "--date", str(first))
    backfill_s = _timed(stack, "pipeline.tasks.ready", "MartsBackfill", "--start", str(second),
                        "--end", str(before_last))
    steps = backfill_steps(stack.state)
    last_full = _timed(stack, "pipeline.tasks.ready", "MartsReady", "--date", str(last))
    markers = stack.state / "warehouse" / "_markers"
    for db, table in FIRST_DAY_TABLES:
        (markers / db / table / f"{first}.json").unlink(missing_ok=True)
    first_full = _timed(stack, "pipeline.tasks.ready", "MartsReady", "--date", str(first))
    lines = dict(hs2.query("SELECT invoice_date, count(*) FROM ecommerce_dw.fact_sales "
                           "WHERE invoice_date IN (%(a)s, %(b)s) GROUP BY invoice_date",
                           {"a": str(first), "b": str(last)}))
    (fact_rows,), = hs2.query("SELECT count(*) FROM ecommerce_dw.fact_sales")
    customers = sample_customers(args.customers)
    bulk = hs2.query(
        "SELECT invoice_date, units, gross_revenue, returned_units, returns_amount "
        "FROM ecommerce_mart.mart_product_performance WHERE stock_code = '23166' AND invoice_date = '2011-01-18'")
    guests = hs2.query(
        "SELECT (SELECT sum(line_amount) FROM ecommerce_dw.fact_sales WHERE customer_key = -1), "
        "(SELECT count(*) FROM ecommerce_mart.mart_customer_purchase_history WHERE customer_id IS NULL)")
    t0 = time.monotonic()
    build_layouts()
    layouts_s = time.monotonic() - t0
    reads = {name: read_latency(table, buckets, customers) for name, (table, buckets) in LAYOUTS.items()}
    summary = {
        "range": [args.start, args.end], "days": len(days), "fact_rows": fact_rows,
        "ingest_backfill_s": round(ingest_s, 1), "marts_backfill_s": round(backfill_s, 1),
        "marts_backfill_steps_s": steps,
        "one_day_marts_s": {f"first day {first}, empty": round(first_empty, 1),
                            f"first day {first}, rerun after the year": round(first_full, 1),
                            f"last day {last}, after the year": round(last_full, 1)},
        "lines": {str(first): lines.get(str(first)), str(last): lines.get(str(last))},
        "first_day_full_vs_empty_ratio": round(first_full / first_empty, 2),
        "purchase_history_read": reads, "customers_sampled": len(customers),
        "layout_copies_s": round(layouts_s, 1),
        "stock_23166_on_2011_01_18": [list(map(str, r)) for r in bulk],
        "guest_line_amount_in_fact": str(guests[0][0]), "guest_rows_in_purchase_history": guests[0][1],
    }
    print(f"ingestion of {len(days)} days: {ingest_s:.1f} s; marts backfill of {len(days) - 2} days: "
          f"{backfill_s:.1f} s ({', '.join(f'{k} {v} s' for k, v in steps.items())}); {fact_rows:,} fact rows")
    print(f"one day's marts through luigid: {first} on an empty mart {first_empty:.1f} s, the same day rerun "
          f"after the year {first_full:.1f} s ({first_full / first_empty:.2f}x); {last} at the end "
          f"{last_full:.1f} s; lines {lines}")
    for name, r in reads.items():
        print(f"purchase history of one customer over HiveServer2, {name}: median {r['median_ms']} ms, "
              f"p95 {r['p95_ms']} ms, max {r['max_ms']} ms ({len(customers)} customers, {r['rows']} rows)")
    print(f"real-data check, 23166 on 2011-01-18 (date, units, gross, returned units, returns): {bulk}; "
          f"guest lines: {guests[0][0]} GBP in the fact, {guests[0][1]} rows in the purchase history")
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
