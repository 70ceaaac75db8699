"""One benchmark command: every workload measured in one run, printed as one table and one JSON line.

    python -m bench [--only ROW,...] [--scale 1m-day,10m-month] [--all] [--start DAY --end DAY]
                    [--customers 40] [--loads 3]

Rows (``--only`` takes their keys): make-run, one-day, year-ingest, year-marts, anomalies, sla, review,
dashboard-first, dashboard-cached, purchase-history (the default set), scale-1m-day, scale-10m-month (only
with ``--scale`` or ``--all``: they generate and process 1M and 10M synthetic lines).

Each group of rows shares one fresh bench stack (``bench.stack``, its own ports and state dir):

- demo: ``python -m pipeline run`` of the demo window (make-run); then the next trading day's ingestion
  (not timed) and its ``MartsReady`` (one-day); ``python -m pipeline sla --now`` the morning after it (sla);
  ``python -m pipeline anomaly LINE_ID ACKNOWLEDGED --by bench`` on each of the three highest-scored new flagged
  lines, one command each, median (review).
  Without make-run the first two trading days are built first, not timed.
- year: ``IngestBackfill`` of the real year (year-ingest), then ``MartsBackfill`` (year-marts: both together);
  anomaly detection is that backfill's ``DetectAnomalies`` step, timed from its markers (anomalies); the
  storefront's purchase-history read over HiveServer2 (purchase-history); HiveServer2 restarted, the dashboard
  in headless chromium (dashboard-first: the first page after login; dashboard-cached: the slowest page's
  median cached open). The DuckDB reference (``bench.reference``) runs on the same landed files in between.
- scale: synthetic feeds (``python -m pipeline synth``, not timed) on a stack whose calendar is the landed
  feeds only, then ``IngestBackfill`` + ``MartsBackfill`` measured with the peak RSS of their process trees,
  and the DuckDB reference on the same files.

A row that cannot be measured says why (not run, or failed with the error's first line). Progress goes to
stderr; stdout ends with the table and, last, one JSON object with every row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from bench import report
from bench.report import Row
from bench.stack import BenchFailure, Stack, bench_stack, reason, run_pipeline, run_task

log = logging.getLogger(__name__)

YEAR = ("2010-12-01", "2011-12-09")
DEMO_KEYS = ("make-run", "one-day", "sla", "review")
YEAR_KEYS = ("year-ingest", "year-marts", "anomalies", "purchase-history", "dashboard-first", "dashboard-cached")
REFERENCE_KEYS = ("year-ingest", "year-marts", "anomalies")
SCALES = {
    "1m-day": ("scale-1m-day", dt.date(2011, 3, 1), dt.date(2011, 3, 1), 1_000_000),
    "10m-month": ("scale-10m-month", dt.date(2011, 4, 1), dt.date(2011, 4, 30), 333_334),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--only`` and ``--scale`` checked against the known rows."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated rows: {', '.join(report.KEYS)}")
    parser.add_argument("--scale", default="", help=f"also the scale rows: {', '.join(SCALES)} (comma-separated)")
    parser.add_argument("--all", action="store_true", help="every row, the scale rows included")
    parser.add_argument("--start", default=YEAR[0], help="first day of the year rows (default: the real year's)")
    parser.add_argument("--end", default=YEAR[1], help="last day of the year rows")
    parser.add_argument("--customers", type=int, default=40, help="customers sampled for the purchase history")
    parser.add_argument("--loads", type=int, default=3, help="cached opens of each dashboard page")
    args = parser.parse_args(argv)
    args.only_keys = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else []
    args.scales = [s.strip() for s in args.scale.split(",") if s.strip()]
    unknown = [k for k in args.only_keys if k not in report.KEYS] + [s for s in args.scales if s not in SCALES]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}: use {', '.join(report.KEYS)} (--only) or "
                     f"{', '.join(SCALES)} (--scale)")
    return args


def selected(args: argparse.Namespace) -> list[str]:
    """The rows this run measures, in the catalogue's order."""
    if args.all:
        return list(report.KEYS)
    keys = set(args.only_keys or report.DEFAULT_KEYS) | {SCALES[s][0] for s in args.scales}
    return [k for k in report.KEYS if k in keys]


def _attempt(rows: dict[str, Row], key: str, measure: Callable[[], None]) -> None:
    """Measure one row; a failure marks it failed (error in the log) and the run goes on."""
    try:
        measure()
    except Exception as exc:  # noqa: BLE001  (one row's failure must not lose the next rows' figures)
        log.exception("%s failed", key)
        report.failed(rows, [key], exc)


def _trading_days() -> list[dt.date]:
    """The real data's trading days."""
    from pipeline import config
    from pipeline.sources import replay

    return list(replay.trading_days(config.replay().source_path))


def measure_demo(rows: dict[str, Row], keys: list[str], stack: Stack, args: argparse.Namespace) -> None:
    """The demo window, one more day's marts, one SLA evaluation and one anomaly review on one stack."""
    from bench.simulate import demo_run
    from pipeline import config
    from pipeline.io import hs2

    days = _trading_days()
    if "make-run" in keys:
        demo_end = config.replay().demo_end
        window = [d for d in days if config.replay().demo_start <= d <= demo_end]
        run = demo_run(stack)
        inner = re.search(r"pipeline (?:finished|FAILED) in ([0-9.]+) s", run.proc.stdout)
        rows["make-run"].pipeline_s = run.wall_s
        rows["make-run"].notes = (f"{len(window)} days {window[0]} .. {window[-1]}, services already up; the run's "
                                  f"own figure {inner.group(1) if inner else '?'} s; peak RSS "
                                  f"{run.peak_mib / 1024:.1f} GiB")
        rows["make-run"].detail = {"command_wall_s": round(run.wall_s, 1),
                                   "pipeline_s": float(inner.group(1)) if inner else None,
                                   "peak_rss_mib": run.peak_mib, "days": [str(window[0]), str(window[-1])]}
        built = window[-1]
    else:
        built = days[1]
        log.info("demo rows without make-run: building %s .. %s first (not timed)", days[0], built)
        demo_run(stack, "--start", str(days[0]), "--end", str(built))
    if "one-day" in keys:
        day = next(d for d in days if d > built)

        def one_day() -> None:
            """Ingest the day (not timed), then time its MartsReady."""
            ingest = run_task(stack, "pipeline.tasks.ingest", "IngestDay", "--date", str(day))
            marts = run_task(stack, "pipeline.tasks.ready", "MartsReady", "--date", str(day))
            rows["one-day"].pipeline_s = marts.wall_s
            rows["one-day"].notes = (f"{day}, after {built} was published; its ingestion ({ingest.wall_s:.0f} s) "
                                     "not counted")
            rows["one-day"].detail = {"day": str(day), "ingest_s": round(ingest.wall_s, 1)}

        _attempt(rows, "one-day", one_day)
        built = day if rows["one-day"].pipeline_s is not None else built
    if "sla" in keys:
        now = f"{built + dt.timedelta(days=1)}T09:00"

        def sla() -> None:
            """Time one SLA evaluation."""
            run = run_pipeline(stack, "sla", "--now", now)
            rows["sla"].pipeline_s = run.wall_s
            first = (run.proc.stdout.strip().splitlines() or [""])[0]
            rows["sla"].notes = f"--now {now}: {first.split(': ', 1)[-1]}"

        _attempt(rows, "sla", sla)
    if "review" in keys:
        def review() -> None:
            """Time acknowledging the three highest-scored new flagged lines, one command each (median)."""
            found = hs2.query("SELECT line_id, max(score) AS top FROM ecommerce_mart.anomalies WHERE status = 'NEW' "
                              "GROUP BY line_id ORDER BY top DESC, line_id LIMIT 3")
            if not found:
                rows["review"].status = "not measured: no flagged line in ecommerce_mart.anomalies"
                return
            runs = [run_pipeline(stack, "anomaly", line_id, "ACKNOWLEDGED", "--by", "bench") for line_id, _ in found]
            walls = [r.wall_s for r in runs]
            rows["review"].pipeline_s = statistics.median(walls)
            rows["review"].notes = (f"median of {len(runs)} lines ({', '.join(f'{w:.2f}' for w in walls)} s); "
                                    f"{runs[0].proc.stdout.strip().split(': ', 1)[-1]}")
            rows["review"].detail = {"walls_s": [round(w, 3) for w in walls]}

        _attempt(rows, "review", review)


def measure_year(rows: dict[str, Row], keys: list[str], stack: Stack, args: argparse.Namespace) -> None:
    """The year's ingestion and marts, the DuckDB reference, the storefront read and the dashboard."""
    from bench.backfill import ingest_backfill
    from bench.marts import HISTORY, read_latency, sample_customers
    from bench.reference import reference_measured

    span = "the real year" if (args.start, args.end) == YEAR else f"{args.start} .. {args.end} (not the full year)"
    ingest = ingest_backfill(stack, args.start, args.end)
    if not ingest["ok"]:
        tail = ingest["stderr_tail"]
        raise BenchFailure(f"IngestBackfill: {reason(subprocess.CompletedProcess([], 1, '', tail))}\n{tail}")
    ref = (reference_measured(stack.env, stack.state / "warehouse" / "landing")
           if set(keys) & set(REFERENCE_KEYS) else None)
    seconds = (ref or {}).get("seconds", {})
    received = ingest["rows_received"]
    row = rows["year-ingest"]
    row.pipeline_s, row.duckdb_s = ingest["wall_s"], seconds.get("ingest")
    row.notes = (f"{span}: {received:,} lines, {ingest['transaction_batches']:,} batches, "
                 f"{received / ingest['wall_s']:,.0f} rows/s, peak RSS {ingest['peak_rss_mib'] / 1024:.1f} GiB; "
                 f"loaded/duplicate: pipeline {ingest['rows_loaded']:,}/{ingest['rows_duplicate']:,}")
    if ref:
        outcomes = ref["outcomes"]
        row.notes += (f", DuckDB {outcomes.get('loaded', 0):,}/{outcomes.get('duplicate', 0):,} "
                      f"(DuckDB peak RSS {ref['peak_rss_mib'] / 1024:.1f} GiB)")
    row.detail = {k: v for k, v in ingest.items() if k != "stderr_tail"} | {"duckdb": ref}
    rows["year-marts"].duckdb_s = ref["wall_s"] if ref else None
    rows["anomalies"].duckdb_s = seconds.get("anomalies")
    if set(keys) <= {"year-ingest"}:
        return  # every other year row needs the marts
    t0 = time.monotonic()
    try:
        marts = run_task(stack, "pipeline.tasks.ready", "MartsBackfill", "--start", args.start, "--end", args.end)
    except BenchFailure as exc:
        _marts_failed(rows, stack, exc, time.monotonic() - t0)
        marts = None
    if marts is not None:
        _marts_measured(rows, stack, ingest, marts, ref)
    if "purchase-history" in keys:
        def purchase_history() -> None:
            """Time the storefront's read for a sample of customers: p95 over them."""
            customers = sample_customers(args.customers)
            read = read_latency(HISTORY, 32, customers)
            rows["purchase-history"].pipeline_s = read["p95_ms"] / 1000
            rows["purchase-history"].notes += (f"published layout, {len(customers)} customers after one warm-up: "
                                              f"median {read['median_ms']} ms, max {read['max_ms']} ms")
            rows["purchase-history"].detail = read

        _attempt(rows, "purchase-history", purchase_history)
    if {"dashboard-first", "dashboard-cached"} & set(keys):
        try:
            _dashboard(rows, stack, args)
        except BenchFailure as exc:
            log.error("dashboard failed: %s", exc)
            report.failed(rows, ["dashboard-first", "dashboard-cached"], exc)


def _marts_measured(rows: dict[str, Row], stack: Stack, ingest: dict, marts, ref: dict | None) -> None:
    """The year-marts and anomalies rows from a finished ``MartsBackfill`` and its markers."""
    from bench.marts import backfill_steps
    from pipeline.io import hs2

    steps = backfill_steps(stack.state)
    checks = steps.get("dq_results", 0) + steps.get("marts_ready", 0)
    row = rows["year-marts"]
    row.pipeline_s = ingest["wall_s"] + marts.wall_s
    row.notes = (f"IngestBackfill {ingest['wall_s']:.0f} s + MartsBackfill {marts.wall_s:.0f} s (anomalies "
                 f"{steps.get('anomalies', 0):.0f} s, checks and reconciliation {checks:.0f} s), peak RSS "
                 f"{max(ingest['peak_rss_mib'], marts.peak_mib) / 1024:.1f} GiB; DuckDB: ingestion, star, marts "
                 "and anomalies, no checks")
    row.detail = {"ingest_s": round(ingest["wall_s"], 1), "marts_backfill_s": round(marts.wall_s, 1),
                  "marts_backfill_steps_s": steps, "marts_peak_rss_mib": marts.peak_mib,
                  "duckdb_seconds": (ref or {}).get("seconds")}
    (flagged,), = hs2.query("SELECT count(DISTINCT line_id) FROM ecommerce_mart.anomalies")
    row = rows["anomalies"]
    row.pipeline_s = steps.get("anomalies")
    row.notes = (f"the DetectAnomalies step of MartsBackfill (one Spark pass over the year, timed from its "
                 f"markers); flagged lines: pipeline {flagged:,}"
                 + (f", DuckDB {ref['flagged_lines']:,} (rule {ref['anomaly_rule']})" if ref else ""))


def _marts_failed(rows: dict[str, Row], stack: Stack, exc: BenchFailure, wall_s: float) -> None:
    """``MartsBackfill`` failed: the year-marts and anomalies rows say where and after how long; the rows
    after them are still measured on the tables it had published."""
    from bench.marts import BACKFILL_STEPS, backfill_steps

    log.error("MartsBackfill failed: %s", exc)
    steps = backfill_steps(stack.state)
    done = [table for _, table in BACKFILL_STEPS if table in steps]
    failed_in = next((table for _, table in BACKFILL_STEPS if table not in steps), "?")
    step_s = wall_s - sum(steps.values())
    report.failed(rows, ["year-marts", "anomalies"], exc)
    where = (f"MartsBackfill failed after {wall_s:.0f} s, in its {failed_in} step ({step_s:.0f} s into it); "
             f"published before: {', '.join(done) or 'nothing'}")
    for key in ("year-marts", "anomalies"):
        rows[key].notes = where
        rows[key].detail = {"marts_backfill_failed_after_s": round(wall_s, 1), "failed_step": failed_in,
                            "marts_backfill_steps_s": steps}
    for key in ("purchase-history", "dashboard-first", "dashboard-cached"):
        rows[key].notes = "MartsBackfill failed: measured on the tables it had published; "


def _dashboard(rows: dict[str, Row], stack: Stack, args: argparse.Namespace) -> None:
    """The SLA monitor once (its page needs it), then every page timed after HiveServer2 restarts."""
    from bench.dashboard import PAGES, medians, page_times

    try:
        run_task(stack, "pipeline.tasks.sla", "SlaMonitor", "--now", f"{args.end}T0900")
    except BenchFailure as exc:
        log.error("the SLA monitor failed (its page shows no evaluation): %s", exc)
        for key in ("dashboard-first", "dashboard-cached"):
            rows[key].notes += f"SLA monitor failed: {str(exc).splitlines()[0]}; "
    med = medians(page_times(stack, args.loads))
    cold = ", ".join(f"{p} {med[p]['cold']}" for p in PAGES[1:])
    rows["dashboard-first"].pipeline_s = med["Overview"]["cold"]
    rows["dashboard-first"].notes += (f"Overview, the first page after login, HiveServer2 and the app just "
                                     f"started; the other pages' first opens (s): {cold}")
    cached = {p: med[p]["cached"] for p in PAGES if med[p]["cached"] is not None}
    slowest = max(cached, key=cached.get)
    rows["dashboard-cached"].pipeline_s = cached[slowest]
    rows["dashboard-cached"].notes += (f"the slowest page, {slowest} (median of {args.loads}); all (s): "
                                      + ", ".join(f"{p} {v}" for p, v in cached.items()))
    rows["dashboard-first"].detail = rows["dashboard-cached"].detail = {"pages_s": med}


def measure_scale(rows: dict[str, Row], scale: str, stack: Stack) -> float:
    """Land a synthetic range, ingest and publish it measured, run the DuckDB reference on the same files;
    returns the pipeline's seconds."""
    from bench.reference import reference_measured
    from pipeline.io import hs2

    key, start, end, per_day = SCALES[scale]
    gen = run_pipeline(stack, "synth", "--start", str(start), "--end", str(end), "--lines-per-day", str(per_day))
    ingest = run_task(stack, "pipeline.tasks.ingest", "IngestBackfill", "--start", str(start), "--end", str(end))
    marts = run_task(stack, "pipeline.tasks.ready", "MartsBackfill", "--start", str(start), "--end", str(end))
    (received, loaded), = hs2.query("SELECT sum(rows_received), sum(rows_loaded) FROM ecommerce_db.batch_audit "
                                    "WHERE feed = 'transactions'")
    ref = reference_measured(stack.env, stack.state / "warehouse" / "landing")
    row = rows[key]
    row.pipeline_s = ingest.wall_s + marts.wall_s
    row.duckdb_s = ref["wall_s"]
    row.peak_rss_mib = max(ingest.peak_mib, marts.peak_mib)
    days = (end - start).days + 1
    row.notes = (f"{received:,} lines in {days} day{'s' if days != 1 else ''}: "
                 f"{received / row.pipeline_s:,.0f} rows/s (DuckDB "
                 f"{received / ref['wall_s']:,.0f} rows/s, peak RSS {ref['peak_rss_mib'] / 1024:.1f} GiB); "
                 f"IngestBackfill {ingest.wall_s:.0f} s + MartsBackfill {marts.wall_s:.0f} s (with checks and "
                 f"anomalies; DuckDB with anomalies); generating the feeds ({gen.wall_s:.0f} s) not counted")
    row.detail = {"lines": received, "loaded": loaded, "days": days, "ingest_s": round(ingest.wall_s, 1),
                  "marts_backfill_s": round(marts.wall_s, 1), "ingest_peak_rss_mib": ingest.peak_mib,
                  "marts_peak_rss_mib": marts.peak_mib, "generate_s": round(gen.wall_s, 1),
                  "marts_backfill_steps_s": _steps(stack), "duckdb": ref,
                  "rows_per_s": round(received / row.pipeline_s)}
    return row.pipeline_s


def _steps(stack: Stack) -> dict[str, float]:
    """The last MartsBackfill's per-table seconds on ``stack``."""
    from bench.marts import backfill_steps

    return backfill_steps(stack.state)


def growth(rows: dict[str, Row]) -> None:
    """When both scale rows ran: how the cost grew from 1x to 10x the lines, on the 10M row."""
    small, large = rows["scale-1m-day"], rows["scale-10m-month"]
    if small.pipeline_s is None or large.pipeline_s is None:
        return
    lines = large.detail["lines"] / small.detail["lines"]
    pipeline = large.pipeline_s / small.pipeline_s
    duck = large.duckdb_s / small.duckdb_s if small.duckdb_s and large.duckdb_s else None
    large.notes += (f"; cost growth from 1x to {lines:.0f}x the lines: pipeline x{pipeline:.1f}"
                    + (f", DuckDB x{duck:.1f}" if duck else ""))
    large.detail["growth_1x_to_10x"] = {"lines": round(lines, 2), "pipeline": round(pipeline, 2),
                                        "duckdb": None if duck is None else round(duck, 2)}


def _group(rows: dict[str, Row], name: str, keys: list[str], replay: bool, measure: Callable[[Stack], None],
           services: dict[str, float]) -> None:
    """Run one group of rows on a fresh stack; any failure marks its rows without a figure as failed."""
    log.info("== %s: %s", name, ", ".join(keys))
    try:
        with bench_stack(replay=replay) as stack:
            services[name] = round(stack.services_start_s, 1)
            log.info("stack %s up in %.0f s", stack.state, stack.services_start_s)
            measure(stack)
    except Exception as exc:  # noqa: BLE001  (one group's failure must not lose the other groups' figures)
        log.exception("%s failed", name)
        report.failed(rows, keys, exc)


def main(argv: list[str] | None = None) -> int:
    """Run the selected rows group by group, then print the table and, last, the JSON line."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("pyhive").setLevel(logging.WARNING)
    keys = selected(args)
    rows = report.new_rows()
    for scale, (key, _, _, _) in SCALES.items():
        if key not in keys:
            report.not_run(rows, [key], f'ARGS="--scale {scale}"')
    report.not_run(rows, [k for k in report.KEYS if k not in keys and k not in report.SCALE_KEYS],
                   "not in --only")
    started, t0, load_start = dt.datetime.now(dt.UTC), time.monotonic(), os.getloadavg()
    services: dict[str, float] = {}
    demo = [k for k in DEMO_KEYS if k in keys]
    if demo:
        _group(rows, "demo", demo, True, lambda stack: measure_demo(rows, demo, stack, args), services)
    year = [k for k in YEAR_KEYS if k in keys]
    if year:
        _group(rows, "year", year, True, lambda stack: measure_year(rows, year, stack, args), services)
    for scale, (key, _, _, _) in SCALES.items():
        if key in keys:
            _group(rows, key, [key], False, lambda stack, s=scale: measure_scale(rows, s, stack), services)
    growth(rows)
    for key in report.KEYS:
        if key not in keys:  # measured on the way to a selected row: not part of this run's table
            rows[key].pipeline_s = rows[key].duckdb_s = rows[key].peak_rss_mib = None
            rows[key].notes, rows[key].detail = "", {}
    wall = time.monotonic() - t0
    run = {"started_at": f"{started:%Y-%m-%d %H:%M:%S} UTC", "wall_s": round(wall, 1), "cpus": os.cpu_count(),
           "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "rows": keys, "year": [args.start, args.end], "services_start_s": services, "argv": sys.argv[1:]}
    print(f"{' '.join(['python -m bench', *sys.argv[1:]])}: started {run['started_at']}, {wall:.0f} s wall, "
          f"{run['cpus']} CPUs, load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    ordered = list(rows.values())
    for line in report.table(ordered):
        print(line)
    print(report.summary_json(ordered, run), flush=True)
    return 1 if any(r.status.startswith("failed") for r in ordered) else 0
