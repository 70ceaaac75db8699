"""Full-year backfill benchmark: Spark pipeline through luigid vs a DuckDB reference, one run, same files.

    python -m bench.backfill [--start 2010-12-01 --end 2011-12-09] [--mode backfill|tasks] [--keep]

Starts its own metastore / HiveServer2 / luigid on spare ports with a fresh state dir, replays the real
data, runs the ingestion, and prints wall time, tasks, rows per second and peak memory (RSS of the whole
process tree, sampled), then a DuckDB single-process run of the equivalent transforms on the same landed
files (parse, per-batch dedupe, foreign-key checks, SCD2 versions). Incrementality: the first day's six
batches and quarantine retry are timed on the empty warehouse and again (forced rerun) after the whole
range is loaded. Last line: one JSON summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stack import ROOT, Stack, bench_stack, luigi_cmd, run_measured, succeeded


def duckdb_reference(landing: Path) -> dict:
    """The same transforms in one DuckDB process, for a side-by-side figure."""
    import duckdb

    t0 = time.monotonic()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"""
        CREATE TABLE lines AS
        SELECT regexp_extract(filename, '(tx_[0-9]{{8}}_[0-9]{{2}})', 1) AS batch_id, * EXCLUDE (filename)
        FROM read_csv('{landing}/transactions/*/*.csv', header=true, all_varchar=true, quote='"', escape='"',
                      filename=true)""")
    con.execute("""
        CREATE TABLE products_snap AS
        SELECT CAST(regexp_extract(filename, '([0-9]{8})', 1) AS VARCHAR) AS d, stock_code, description,
               TRY_CAST(unit_price AS DECIMAL(12,3)) AS unit_price
        FROM read_csv('""" + str(landing) + """/products/*.csv', header=true, all_varchar=true, filename=true)""")
    con.execute("""
        CREATE TABLE countries AS SELECT DISTINCT source_country_name, country_code
        FROM read_csv('""" + str(landing) + """/countries/*.csv', header=true, all_varchar=true)""")
    con.execute("""
        CREATE TABLE classified AS
        WITH d AS (SELECT *, row_number() OVER (PARTITION BY batch_id, InvoiceNo, StockCode, Description, Quantity,
                                                InvoiceDate, UnitPrice, CustomerID, Country) > 1 AS is_dup
                   FROM lines),
        t AS (SELECT *, trim(StockCode) AS stock_code, TRY_CAST(Quantity AS INTEGER) AS quantity,
                     coalesce(try_strptime(InvoiceDate, '%Y-%m-%d %H:%M:%S'),
                              try_strptime(InvoiceDate, '%m/%d/%Y %H:%M')) AS invoice_ts,
                     TRY_CAST(UnitPrice AS DECIMAL(12,3)) AS unit_price, trim(Country) AS country,
                     TRY_CAST(TRY_CAST(CustomerID AS DOUBLE) AS INTEGER) AS customer_id FROM d)
        SELECT t.*, CASE WHEN is_dup THEN 'duplicate'
                         WHEN quantity IS NULL OR invoice_ts IS NULL OR unit_price IS NULL
                              OR c.country_code IS NULL OR k.stock_code IS NULL THEN 'quarantined'
                         ELSE 'loaded' END AS outcome
        FROM t LEFT JOIN countries c ON t.country = c.source_country_name
        LEFT JOIN (SELECT DISTINCT stock_code FROM products_snap) k ON t.stock_code = k.stock_code""")
    con.execute("""
        CREATE TABLE products_scd2 AS
        WITH s AS (SELECT *, md5(concat_ws('|', description, unit_price)) AS sig FROM products_snap),
        e AS (SELECT *, lag(sig) OVER (PARTITION BY stock_code ORDER BY d) AS prev FROM s)
        SELECT stock_code, description, unit_price, d AS valid_from,
               lead(d) OVER (PARTITION BY stock_code ORDER BY d) AS valid_to
        FROM e WHERE prev IS DISTINCT FROM sig""")
    out = Path(tempfile.mkdtemp(prefix="duckdb-bench-"))
    con.execute(f"COPY (SELECT * FROM classified WHERE outcome = 'loaded') TO '{out}/tx' "
                "(FORMAT parquet, PARTITION_BY (batch_id))")
    counts = dict(con.execute("SELECT outcome, count(*) FROM classified GROUP BY 1").fetchall())
    versions = con.execute("SELECT count(*) FROM products_scd2").fetchone()[0]
    shutil.rmtree(out)
    return {"wall_s": round(time.monotonic() - t0, 2), "outcomes": counts, "product_versions": versions}


def _luigi(task: list[str], env: dict) -> None:
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline.tasks.ingest", *task]
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-12-01")
    parser.add_argument("--end", default="2011-12-09")
    parser.add_argument("--mode", choices=["backfill", "tasks"], default="backfill")
    parser.add_argument("--keep", action="store_true", help="keep the state dir and services")
    args = parser.parse_args(argv)
    with bench_stack(keep=args.keep) as stack:
        return _measure(args, stack)


def _measure(args: argparse.Namespace, stack: Stack) -> int:
    from pipeline import hs2

    state, env, services_s = stack.state, stack.env, stack.services_start_s
    first_day = args.start
    day_cmd = [sys.executable, "-m", "luigi", "--module", "pipeline.tasks.ingest", "IngestDay", "--date", first_day]
    for master in ("ProductsSnapshot", "CountriesSnapshot"):
        _luigi([master, "--date", first_day], env)
    day_small, _, _ = run_measured(day_cmd, env)
    if args.mode == "backfill":
        task = ["IngestBackfill", "--start", args.start, "--end", args.end]
    else:
        stop = (dt.date.fromisoformat(args.end) + dt.timedelta(days=1)).isoformat()
        task = ["RangeDaily", "--of", "IngestDay", "--start", args.start, "--stop", stop]
    wall, peak_kib, proc = run_measured(luigi_cmd("pipeline.tasks.ingest", *task), env)
    ok = succeeded(proc)
    received, loaded, quarantined, dups, batches = hs2.query(
        "SELECT sum(rows_received), sum(rows_loaded), sum(rows_quarantined), sum(rows_duplicate), count(*) "
        "FROM ecommerce_db.batch_audit WHERE feed = 'transactions'")[0]
    markers = sum(1 for p in (state / "warehouse" / "_markers").rglob("*.json"))
    luigi_tasks = proc.stderr.count(" done      ")
    compact = first_day.replace("-", "")
    for marker in (state / "warehouse" / "_markers").rglob("*.json"):
        if marker.parent.name in ("transactions", "quarantine_retry") and (compact in marker.name
                                                                         or first_day in marker.name):
            marker.unlink()
    day_large, _, _ = run_measured(day_cmd, env)
    reference = duckdb_reference(state / "warehouse" / "landing")
    summary = {
        "ok": ok, "mode": args.mode, "range": [args.start, args.end],
        "services_start_s": round(services_s, 1), "pipeline_wall_s": round(wall, 1),
        "luigi_tasks_run": luigi_tasks, "markers_written": markers, "transaction_batches": batches,
        "rows_received": received, "rows_loaded": loaded, "rows_quarantined": quarantined, "rows_duplicate": dups,
        "rows_per_s": round(received / wall) if wall else None, "peak_rss_mib": round(peak_kib / 1024),
        "duckdb_reference": reference,
        "first_day_batches_s": {"empty_history": round(day_small, 1), "full_history": round(day_large, 1),
                                "ratio": round(day_large / day_small, 2)},
        "spark_vs_duckdb_wall_ratio": round(wall / reference["wall_s"], 1) if reference["wall_s"] else None,
    }
    print(f"pipeline ({args.mode}, through luigid): {wall:.1f} s wall, {luigi_tasks} Luigi tasks, "
          f"{markers} markers, {received:,} rows received ({summary['rows_per_s']:,} rows/s), "
          f"peak RSS {summary['peak_rss_mib']} MiB")
    print(f"duckdb reference (same transforms, one process): {reference['wall_s']} s, {reference['outcomes']}")
    print(f"incremental: the 6 batches + retry of {first_day}: {day_small:.1f} s on an empty warehouse, "
          f"{day_large:.1f} s rerun after the whole range ({day_large / day_small:.2f}x)")
    print(json.dumps(summary))
    if not ok:
        print(proc.stderr[-3000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
