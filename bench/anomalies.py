"""Anomaly rules over the real year: how many lines each rule flags, and whether the bulk orders are among them.

    python -m bench.anomalies [--start 2010-12-01 --end 2011-12-09] [--keep]

On a fresh stack (bench ports): ingest the range (``IngestBackfill``) and publish ``fact_sales``, then run
the detection (``pipeline.tasks.quality.detect``, the code ``DetectAnomalies`` runs) for every day at
once with each rule, on a cached copy of the fact. Prints per rule: flagged lines, rows per metric and
baseline scope, the two famous bulk orders' scores, seconds. Last line: one JSON summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

from bench.stack import bench_stack, run_task
from pipeline import config

FAMOUS = {("541431", "23166"): "74,215 x 23166 on 2011-01-18", ("581483", "23843"): "80,995 x 23843 on 2011-12-09"}


def scan(rule: str, days: list[dt.date]) -> dict:
    """Run the detection with ``rule`` for every day on a cached fact; flagged lines and seconds."""
    from pyspark.sql import functions as F

    from pipeline.io import warehouse as wh
    from pipeline.tasks import quality
    from pipeline.tasks.base import DW, dw_spark

    spark = dw_spark()
    fact = wh.read(spark, f"{DW}.fact_sales").cache()
    fact.count()
    cfg = config.anomaly(rule=rule)
    t0 = time.monotonic()
    rows = quality.detect(spark, days, cfg, fact).select(
        "line_id", "invoice_no", "stock_code", "metric", "baseline_scope", F.col("score").cast("double")).collect()
    fact.unpersist()
    famous = {label: {r.metric: r.score for r in rows if (r.invoice_no, r.stock_code) == key}
              for key, label in FAMOUS.items()}
    by = {}
    for r in rows:
        by[f"{r.metric}/{r.baseline_scope}"] = by.get(f"{r.metric}/{r.baseline_scope}", 0) + 1
    return {"rule": rule, "threshold": cfg.threshold, "min_history": cfg.min_history,
            "baseline_days": cfg.baseline_days, "flagged_lines": len({r.line_id for r in rows}),
            "rows_by_metric_scope": dict(sorted(by.items())), "famous": famous,
            "seconds": round(time.monotonic() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    """Command line: ingest the range on a fresh bench stack, publish the fact, scan it with both rules."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-12-01")
    parser.add_argument("--end", default="2011-12-09")
    parser.add_argument("--keep", action="store_true", help="keep the bench stack and its state dir")
    args = parser.parse_args(argv)
    with bench_stack(keep=args.keep) as stack:
        wall = run_task(stack, "pipeline.tasks.ingest", "IngestBackfill", "--start", args.start,
                        "--end", args.end).wall_s
        print(f"IngestBackfill: {wall:.1f} s", flush=True)
        from pipeline.tasks.base import dw_spark
        from pipeline.tasks.ingest import source_days
        from pipeline.tasks.star import DimProduct, FactSales

        start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
        days = [d for d in source_days() if start <= d <= end]
        spark = dw_spark()
        t0 = time.monotonic()
        DimProduct(days[-1]).publish(spark, [days[-1]])
        FactSales(days[-1]).publish(spark, days)
        print(f"fact_sales for {len(days)} days: {time.monotonic() - t0:.1f} s", flush=True)
        results = [scan(rule, days) for rule in ("stddev", "mad")]
        for r in results:
            print(f"{r['rule']} (threshold {r['threshold']}, min history {r['min_history']} lines in "
                  f"{r['baseline_days']} days): {r['flagged_lines']} lines flagged in {r['seconds']} s; "
                  f"rows {r['rows_by_metric_scope']}; famous {r['famous']}")
        print(json.dumps({"days": len(days), "ingest_s": round(wall, 1), "rules": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
