"""Full-year backfill benchmark: Spark pipeline through luigid vs a DuckDB reference, one run, same files.

    python -m bench.backfill [--start 2010-12-01 --end 2011-12-09] [--mode backfill|tasks] [--keep]

Starts its own metastore / HiveServer2 / luigid on spare ports with a fresh state dir, replays the real
data, runs the ingestion, and prints wall time, tasks, rows per second and peak memory (RSS of the whole
process tree, sampled), then a DuckDB single-process run of the equivalent transforms on the same landed
files (``bench.reference``'s ingestion stage: parse, per-batch dedupe, foreign-key checks, SCD2 versions).
Incrementality: the first day's six batches and quarantine retry are timed on the empty warehouse and
again (forced rerun) after the whole range is loaded. Last line: one JSON summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from bench.reference import reference_measured
from bench.stack import Stack, bench_stack, luigi_cmd, run_measured, run_task, succeeded


def ingest_backfill(stack: Stack, start: str, end: str, mode: str = "backfill") -> dict:
    """Ingest ``start .. end`` through luigid (``IngestBackfill``, or ``RangeDaily`` of ``IngestDay`` with
    ``mode="tasks"``), measured: wall seconds, peak RSS, Luigi tasks, markers and the batch audit's counts."""
    from pipeline.io import hs2

    if mode == "backfill":
        task = ["IngestBackfill", "--start", start, "--end", end]
    else:
        stop = (dt.date.fromisoformat(end) + dt.timedelta(days=1)).isoformat()
        task = ["RangeDaily", "--of", "IngestDay", "--start", start, "--stop", stop]
    wall, peak_kib, proc = run_measured(luigi_cmd("pipeline.tasks.ingest", *task), stack.env)
    received, loaded, quarantined, dups, batches = hs2.query(
        "SELECT sum(rows_received), sum(rows_loaded), sum(rows_quarantined), sum(rows_duplicate), count(*) "
        "FROM ecommerce_db.batch_audit WHERE feed = 'transactions'")[0]
    return {"ok": succeeded(proc), "wall_s": wall, "peak_rss_mib": round(peak_kib / 1024),
            "luigi_tasks_run": proc.stderr.count(" done      "),
            "markers_written": sum(1 for _ in (stack.state / "warehouse" / "_markers").rglob("*.json")),
            "transaction_batches": batches, "rows_received": received, "rows_loaded": loaded,
            "rows_quarantined": quarantined, "rows_duplicate": dups, "stderr_tail": proc.stderr[-3000:]}


def main(argv: list[str] | None = None) -> int:
    """Command line: the backfill benchmark on a fresh bench stack."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-12-01")
    parser.add_argument("--end", default="2011-12-09")
    parser.add_argument("--mode", choices=["backfill", "tasks"], default="backfill")
    parser.add_argument("--keep", action="store_true", help="keep the state dir and services")
    args = parser.parse_args(argv)
    with bench_stack(keep=args.keep) as stack:
        return _measure(args, stack)


def _measure(args: argparse.Namespace, stack: Stack) -> int:
    """Time the first day's batches, the range, the same day again, and the DuckDB reference; print them."""
    state, env, services_s = stack.state, stack.env, stack.services_start_s
    first_day = args.start
    day_cmd = [sys.executable, "-m", "luigi", "--module", "pipeline.tasks.ingest", "IngestDay", "--date", first_day]
    for master in ("ProductsSnapshot", "CountriesSnapshot"):
        run_task(stack, "pipeline.tasks.ingest", master, "--date", first_day)
    day_small, _, _ = run_measured(day_cmd, env)
    ingest = ingest_backfill(stack, args.start, args.end, args.mode)
    ok, wall, received = ingest["ok"], ingest["wall_s"], ingest["rows_received"]
    luigi_tasks, markers = ingest["luigi_tasks_run"], ingest["markers_written"]
    compact = first_day.replace("-", "")
    for marker in (state / "warehouse" / "_markers").rglob("*.json"):
        if marker.parent.name in ("transactions", "quarantine_retry") and (compact in marker.name
                                                                         or first_day in marker.name):
            marker.unlink()
    day_large, _, _ = run_measured(day_cmd, env)
    reference = reference_measured(env, state / "warehouse" / "landing", ("ingest",))
    summary = {
        "ok": ok, "mode": args.mode, "range": [args.start, args.end],
        "services_start_s": round(services_s, 1), "pipeline_wall_s": round(wall, 1),
        **{k: ingest[k] for k in ("luigi_tasks_run", "markers_written", "transaction_batches", "rows_received",
                                  "rows_loaded", "rows_quarantined", "rows_duplicate", "peak_rss_mib")},
        "rows_per_s": round(received / wall) if wall else None,
        "duckdb_reference": reference,
        "first_day_batches_s": {"empty_history": round(day_small, 1), "full_history": round(day_large, 1),
                                "ratio": round(day_large / day_small, 2)},
        "spark_vs_duckdb_wall_ratio": round(wall / reference["wall_s"], 1) if reference["wall_s"] else None,
    }
    print(f"pipeline ({args.mode}, through luigid): {wall:.1f} s wall, {luigi_tasks} Luigi tasks, "
          f"{markers} markers, {received:,} rows received ({summary['rows_per_s']:,} rows/s), "
          f"peak RSS {summary['peak_rss_mib']} MiB")
    print(f"duckdb reference (same ingestion, one process): {reference['wall_s']} s, {reference['outcomes']}, "
          f"{reference['product_versions']} product versions, peak RSS {reference['peak_rss_mib']} MiB")
    print(f"incremental: the 6 batches + retry of {first_day}: {day_small:.1f} s on an empty warehouse, "
          f"{day_large:.1f} s rerun after the whole range ({day_large / day_small:.2f}x)")
    print(json.dumps(summary))
    if not ok:
        print(ingest["stderr_tail"], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
