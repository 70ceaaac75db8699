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
import statistics
import time

from bench.stack import Stack, bench_stack, luigi_cmd, run_measured, succeeded

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


def _timed(stack: Stack, module: str, *task: str) -> float:
    wall, _, proc = run_measured(luigi_cmd(module, *task), stack.env)
    if not succeeded(proc):
        raise SystemExit(f"{' '.join(task)} failed:\n{proc.stderr[-3000:]}")
    return wall


def build_layouts() -> None:
    """The scratch copies of the purchase history the published layout is compared with."""
    from pyspark.sql import functions as F

    from pipeline import warehouse as wh
    from pipeline.spark import get_spark

    spark = get_spark()
    spark.sql(f"CREATE DATABASE IF NOT EXISTS bench_layout LOCATION '{wh.db_location('bench_layout')}'")
    history = spark.table(HISTORY).drop("invoice_month", "customer_bucket")
    (history.repartition("invoice_date").sortWithinPartitions("invoice_date", "customer_id", "invoice_ts")
     .write.mode("overwrite").partitionBy("invoice_date").saveAsTable("bench_layout.history_by_date"))
    (history.withColumn("customer_bucket", F.pmod("customer_id", F.lit(64)))
     .repartition("customer_bucket").sortWithinPartitions("customer_id", "invoice_ts")
     .write.mode("overwrite").partitionBy("customer_bucket").saveAsTable("bench_layout.history_by_bucket"))


def read_latency(table: str, buckets: int | None, customers: list[int]) -> dict:
    from pipeline import hs2

    where = "customer_id = %(c)s" + (f" AND customer_bucket = pmod(%(c)s, {buckets})" if buckets else "")
    sql = f"SELECT invoice_no, invoice_ts, stock_code, quantity, line_amount FROM {table} WHERE {where} " \
          "ORDER BY invoice_ts"
    hs2.query(sql, {"c": customers[0]})
    times, rows = [], 0
    for c in customers:
        t0 = time.monotonic()
        rows += len(hs2.query(sql, {"c": c}))
        times.append(time.monotonic() - t0)
    return {"median_ms": round(statistics.median(times) * 1000), "max_ms": round(max(times) * 1000), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-12-01")
    parser.add_argument("--end", default="2011-12-09")
    parser.add_argument("--customers", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="keep the state dir and services")
    args = parser.parse_args(argv)
    with bench_stack(keep=args.keep) as stack:
        return _measure(args, stack)


def _measure(args: argparse.Namespace, stack: Stack) -> int:
    from pipeline import hs2
    from pipeline.tasks.ingest import source_days

    days = [d for d in source_days() if str(d) >= args.start and str(d) <= args.end]
    first, second, before_last, last = days[0], days[1], days[-2], days[-1]
    ingest_s = _timed(stack, "pipeline.tasks.ingest", "IngestBackfill", "--start", args.start, "--end", args.end)
    first_empty = _timed(stack, "pipeline.tasks.dw", "MartsReady", "--date", str(first))
    backfill_s = _timed(stack, "pipeline.tasks.dw", "MartsBackfill", "--start", str(second),
                        "--end", str(before_last))
    last_full = _timed(stack, "pipeline.tasks.dw", "MartsReady", "--date", str(last))
    markers = stack.state / "warehouse" / "_markers"
    for db, table in FIRST_DAY_TABLES:
        (markers / db / table / f"{first}.json").unlink(missing_ok=True)
    first_full = _timed(stack, "pipeline.tasks.dw", "MartsReady", "--date", str(first))
    lines = dict(hs2.query("SELECT invoice_date, count(*) FROM ecommerce_dw.fact_sales "
                           "WHERE invoice_date IN (%(a)s, %(b)s) GROUP BY invoice_date",
                           {"a": str(first), "b": str(last)}))
    (fact_rows,), = hs2.query("SELECT count(*) FROM ecommerce_dw.fact_sales")
    customers = [r[0] for r in hs2.query(
        f"SELECT customer_id FROM {HISTORY} GROUP BY customer_id ORDER BY pmod(customer_id * 7919, 1009) "
        "LIMIT %(n)s", {"n": args.customers})]
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
          f"{backfill_s:.1f} s; {fact_rows:,} fact rows")
    print(f"one day's marts through luigid: {first} on an empty mart {first_empty:.1f} s, the same day rerun "
          f"after the year {first_full:.1f} s ({first_full / first_empty:.2f}x); {last} at the end "
          f"{last_full:.1f} s; lines {lines}")
    for name, r in reads.items():
        print(f"purchase history of one customer over HiveServer2, {name}: median {r['median_ms']} ms, "
              f"max {r['max_ms']} ms ({len(customers)} customers, {r['rows']} rows)")
    print(f"real-data check, 23166 on 2011-01-18 (date, units, gross, returned units, returns): {bulk}; "
          f"guest lines: {guests[0][0]} GBP in the fact, {guests[0][1]} rows in the purchase history")
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
