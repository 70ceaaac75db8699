"""Command line: ``python -m pipeline services start|stop|status``, ``python -m pipeline run ...``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time

from pipeline import config
from pipeline.engine import services

log = logging.getLogger(__name__)


def _services(args: argparse.Namespace) -> int:
    if args.action == "run":
        by_name = {svc.name: svc for svc in services.all_services()}
        if args.name not in by_name:
            print(f"services run: name one of {', '.join(by_name)}", file=sys.stderr)
            return 2
        by_name[args.name].run_foreground()  # does not return
    if args.action == "start":
        services.start_all()
    elif args.action == "stop":
        services.stop_all()
    ok = True
    for st in services.status_all():
        state = "healthy" if st["healthy"] else ("running, not answering" if st["running"] else "stopped")
        ok &= st["healthy"]
        print(f"{st['service']:<12} {st['address']:<18} {state:<24} pid={st['pid'] or '-':<8} log={st['log']}")
    return 0 if ok or args.action == "stop" else 1


def setup_logging() -> None:
    """Progress lines to the terminal; everything else (Luigi, py4j, pipeline debug) to a log file."""
    config.load_profile()
    log_dir = config.state().path / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_handler = logging.FileHandler(log_dir / "pipeline.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    for name in ("pipeline.runtime.progress", "pipeline.runtime.cli", "pipeline.engine.services",
                 "pipeline.runtime.schedule", "pipeline.runtime.recovery"):
        logging.getLogger(name).addHandler(console)
        logging.getLogger(name).propagate = True
    logging.getLogger("py4j").setLevel(logging.WARNING)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _run(args: argparse.Namespace) -> int:
    from pipeline import clock
    from pipeline.io import hs2
    from pipeline.runtime import operate, progress, recovery
    from pipeline.tasks import ingest
    from pipeline.tasks.base import dw_spark
    from pipeline.tasks.ready import MartsBackfill

    rp = config.replay()
    days_all = list(ingest.source_days())
    if args.landed:
        days = operate.landed_days()
    else:
        start, end = ((days_all[0], days_all[-1]) if args.all
                      else (args.start or rp.demo_start, args.end or rp.demo_end))
        if start > end:
            raise SystemExit(f"error: --start {start} is after --end {end}")
        days = [d for d in days_all if start <= d <= end]
    if not days:
        raise SystemExit("error: no landed days" if args.landed else
                         f"error: no trading days in the source data between {start} and {end}")
    log.info("starting embedded services (logs under %s)", config.state().path / "logs")
    services.start_all()
    replayed = rp.enabled and not args.landed and not clock.replaying()
    log.info("%s %d days %s .. %s through luigid (%s)%s; details in %s",
             "ingesting" if not args.landed else "completing the landed", len(days), days[0], days[-1],
             "one Spark pass per table" if args.mode == "backfill" else "the daily graph of each day not complete",
             ", on the replay clock: day D is built at the first scheduled run after its last feed"
             if replayed else "", config.state().path / "logs" / "pipeline.log")
    printer = progress.ProgressPrinter(days)
    printer.register()
    ui = config.scheduler_ui()
    recovery.recover(f"http://{ui.host}:{ui.port}")
    operate.reenable_disabled()
    dw_spark()  # the worker's session: a catalog that lost published tables is refused before any task
    t0 = time.monotonic()
    if args.mode == "backfill":
        results = [operate.build([MartsBackfill(start=days[0], end=days[-1])])]
    elif replayed:
        results = _replay_days(days)
    else:
        todo = operate.targets(days)
        results = [operate.build(todo)] if todo else []
        for r in results:
            log.info("%s", r.one_line_summary)
    elapsed = time.monotonic() - t0
    failed = [r for r in results if not operate.succeeded(r)]
    for r in results:
        log.debug("\n%s", r.summary_text)
    if results:
        log.info("\n%s", results[-1].summary_text if not failed else failed[0].summary_text)
    log.info("pipeline %s in %.1f s", "FAILED" if failed else "finished", elapsed)
    for r in failed:
        for line in recovery.explain(r):
            log.error("  %s", line)
    for line in progress.summary(days[0], days[-1]):
        log.info(line)
    log.info("")
    log.info("luigid visualizer: %s  (Prometheus metrics at /metrics)", ui.url)
    log.info("HiveServer2:       %s", hs2.url())
    log.info("dashboard:         make dashboard  (then http://127.0.0.1:8501/)")
    return 1 if failed else 0


def _replay_days(days: list[dt.date]) -> list:
    """Build replayed days one by one on a replay clock, each at the first scheduled run after its last feed
    landed, then evaluate the SLA of the window at the deadline after the last day."""
    from pipeline import clock
    from pipeline.runtime import operate, schedule
    from pipeline.tasks.sla import SlaMonitor, last_deadline

    replay_clock = clock.ReplayClock(schedule.first_run_after(days[0] + dt.timedelta(days=1)))
    results = []
    with clock.use(replay_clock):
        for day in days:
            replay_clock.jump(schedule.first_run_after(day + dt.timedelta(days=1)))
            todo = operate.targets([day])
            if todo:
                results.append(operate.build(todo))
                log.info("%s: %s", day, results[-1].one_line_summary)
                if not operate.succeeded(results[-1]):
                    return results
        now = last_deadline(days[-1]).replace(second=0, microsecond=0)
        replay_clock.jump(now)
        log.info("SLA of %s .. %s evaluated at %s UTC (the deadline after the last day)", days[0], days[-1], now)
        results.append(operate.build([SlaMonitor(now=now, first_day=str(days[0]), last_day=str(days[-1]))]))
    return results


def _synth(args: argparse.Namespace) -> int:
    from pipeline.sources import synthetic

    catalogue = synthetic.catalogue_from_warehouse() if args.from_warehouse else None
    spec = synthetic.SyntheticSpec(args.start, args.end, lines_per_day=args.lines_per_day,
                                   bad_row_share=args.bad_share, late_line_share=args.late_share, seed=args.seed)
    totals = synthetic.generate(spec, config.warehouse().uri, catalogue)
    log.info("synthetic feeds landed under %s/landing: %s", config.warehouse().uri, totals)
    return 0


def _anomaly(args: argparse.Namespace) -> int:
    from pipeline.io import anomaly_review
    from pipeline.io.metastore_client import MetastoreUnavailable, TableMissing
    from pipeline.transforms.anomaly_status import InvalidTransition

    try:
        change = anomaly_review.set_status(args.line_id, args.status, args.by, args.note)
    except (InvalidTransition, anomaly_review.UnknownAnomaly, MetastoreUnavailable, TableMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(anomaly_review.describe_change(change))
    return 0


def _sla(args: argparse.Namespace) -> int:
    from pipeline import clock
    from pipeline.io import arrow_tables
    from pipeline.runtime import operate, recovery
    from pipeline.tasks.sla import SlaMonitor

    now = (args.now or clock.now()).replace(second=0, microsecond=0)
    ui = config.scheduler_ui()
    recovery.recover(f"http://{ui.host}:{ui.port}", resources=set(SlaMonitor.resources))
    result = operate.build([SlaMonitor(now=now)])
    if not operate.succeeded(result):
        print(f"error: the SLA monitor failed; see {config.state().path / 'logs' / 'pipeline.log'}", file=sys.stderr)
        for line in recovery.explain(result):
            print(f"  {line}", file=sys.stderr)
        return 1
    status = arrow_tables.read("ecommerce_mart.sla_status", columns=["invoice_date", "mart_group", "state",
                                                                      "evidence", "checked_at"])
    rows = status[status["checked_at"] == now].sort_values(["invoice_date", "mart_group"])
    print(f"SLA at {now:%Y-%m-%d %H:%M} UTC: {len(rows)} business days watched")
    for r in rows.itertuples():
        print(f"  {r.invoice_date} {r.mart_group:<12} {r.state:<9} {r.evidence}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from pipeline.runtime import simulate

    try:
        result = simulate.simulate(args.start, args.days, args.speed, args.late or [], args.missing or [])
    except simulate.InvalidFeedSpec as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in simulate.format_report(result):
        print(line)
    print(f"report: {simulate.write_report(result)}")
    return 0


def _purchases_link(args: argparse.Namespace) -> int:
    import os

    from dashboard import auth

    try:
        max_age_s = auth.link_max_age_s()
        url, expires = auth.issue_link(args.customer_id, args.base_url, max_age_s)
    except auth.InvalidLink as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(url)  # the result on stdout; hints on stderr
    print(f"expires {expires:%Y-%m-%d %H:%M:%S} UTC ([dashboard] link_max_age_hours = {max_age_s / 3600:g})",
          file=sys.stderr)
    if os.environ.get(auth.PREVIOUS_SECRET_ENV):
        print(f"note: links signed with ${auth.PREVIOUS_SECRET_ENV} are still accepted; unset it to revoke them",
              file=sys.stderr)
    return 0


def _dashboard_user(args: argparse.Namespace) -> int:
    import getpass
    import json

    from dashboard import auth

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
    if len(password) < 8:
        print("error: use a password of at least 8 characters", file=sys.stderr)
        return 2
    if len(password.encode()) > auth.MAX_PASSWORD_BYTES:
        print(f"error: use a password of at most {auth.MAX_PASSWORD_BYTES} bytes (bcrypt's limit)", file=sys.stderr)
        return 2
    entry = json.dumps({args.name: auth.hash_password(password)})
    print(entry)  # the result on stdout, so that `export VAR=$(...)` takes it whole; hints on stderr
    print(f"add it to ${auth.USERS_ENV} (a JSON object of users) or to [dashboard] users", file=sys.stderr)
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from pipeline.runtime import schedule

    schedule.loop()
    return 0


def _recovery(action, what: str) -> int:
    """Run a catalog recovery command: its result as JSON on stdout; a failure as one line on stderr (exit 2),
    with the details in the log file only."""
    import contextlib
    import json

    from pipeline.io.catalog import CatalogLost
    from pipeline.io.lock import WarehouseLockTimeout
    from pipeline.io.metastore_client import MetastoreUnavailable
    from pipeline.runtime.backup import BackupError

    details = logging.getLogger("pipeline.runtime.backup")
    out = sys.stdout
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    consoles = [h for lg in loggers for h in lg.handlers if isinstance(h, logging.StreamHandler) and h.stream is out]
    try:
        for handler in consoles:  # progress lines go to stderr: stdout carries the JSON result only
            handler.setStream(sys.stderr)
        with contextlib.redirect_stdout(sys.stderr):
            result = action()
    except (BackupError, CatalogLost, MetastoreUnavailable, WarehouseLockTimeout, services.ServiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001  (a command line prints one line, never a stack trace)
        details.exception("%s failed", what)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"error: {what} failed: {type(exc).__name__}: {first}; details in "
              f"{config.state().path / 'logs' / 'pipeline.log'}", file=sys.stderr)
        return 2
    finally:
        for handler in consoles:
            handler.setStream(out)
    print(json.dumps(result, indent=1, sort_keys=True, default=str), file=out)
    return 0


def _backup(args: argparse.Namespace) -> int:
    from pipeline.runtime import backup

    return _recovery(backup.create, "backup")


def _restore(args: argparse.Namespace) -> int:
    from pipeline.runtime import backup

    return _recovery(lambda: backup.restore(args.backup, rebuild=not args.no_rebuild), "restore")


def _catalog(args: argparse.Namespace) -> int:
    from pipeline.engine.spark import get_spark
    from pipeline.io import catalog

    if args.action == "rebuild":
        return _recovery(lambda: catalog.rebuild(get_spark("catalog-rebuild")), "catalog rebuild")
    return _recovery(lambda: {"status": "ok", "tables": catalog.check(get_spark("catalog-check"))},
                     "catalog check")


def _invalidate(args: argparse.Namespace) -> int:
    """Invalidate one date from a task on: print the tasks the next run rebuilds, confirm, note the invalidation
    and remove their markers. A refusal or failure is one line on stderr (exit 2), details in the log file."""
    from pipeline.io.lock import WarehouseLockTimeout
    from pipeline.runtime import invalidate

    def failed(exc: Exception) -> int:
        if isinstance(exc, (invalidate.Refused, WarehouseLockTimeout)):
            print(f"error: {exc}", file=sys.stderr)
        else:
            invalidate.log.exception("invalidate %s failed", args.date)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            print(f"error: invalidate failed: {type(exc).__name__}: {first}; details in "
                  f"{config.state().path / 'logs' / 'pipeline.log'}", file=sys.stderr)
        return 2

    try:
        inv = invalidate.prepare(args.date, args.from_task or invalidate.DEFAULT_FROM)
    except Exception as exc:  # noqa: BLE001  (a command line prints one line, never a stack trace)
        return failed(exc)
    if inv.resumed:
        print(f"{inv.day}: finishing the invalidation from {inv.from_family} noted at {inv.note['invalidated_at']} "
              f"by {inv.note.get('by', '?')}; {len(inv.tasks)} markers left to remove:")
    else:
        print(f"{inv.day}: invalidating from {inv.from_family}; the next run rebuilds {len(inv.tasks)} tasks:")
    for task in inv.tasks:
        print(f"  {task.task_family:<28} {task.table}")
    sys.stdout.flush()
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: nothing invalidated: stdin is not a terminal; re-run with --yes to confirm", file=sys.stderr)
            return 1
        print("proceed? [y/N] ", end="", file=sys.stderr, flush=True)  # the prompt is not part of the result
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing invalidated", file=sys.stderr)
            return 1
    try:
        note, removed = invalidate.apply(inv, args.reason or "")
    except Exception as exc:  # noqa: BLE001
        return failed(exc)
    if not inv.resumed:
        print(f"noted {invalidate.invalidation_marker(inv.day).path}: {note['reason']}")
    for task in removed:
        print(f"removed {task.task_family:<28} {task.output().path}")
    print(f"rebuild with: python -m pipeline run --start {inv.day} --end {inv.day}", file=sys.stderr)
    return 0


def _architecture(args: argparse.Namespace) -> int:
    from pipeline.runtime import architecture

    if args.write:
        changed = architecture.update(config.PROJECT_ROOT / "README.md", config.PROJECT_ROOT)
        print("README.md updated" if changed else "README.md already up to date", file=sys.stderr)
    else:
        print(architecture.table(config.PROJECT_ROOT))
    return 0


def _gc(args: argparse.Namespace) -> int:
    """Delete table and partition versions the metastore does not point at, older than the retention."""
    import json

    from pipeline.engine.spark import get_spark
    from pipeline.io import lock
    from pipeline.io import warehouse as wh

    retention_s = config.warehouse().gc_retention_s if args.retention_s is None else args.retention_s
    with lock.warehouse_lock("python -m pipeline gc"):
        removed = wh.collect_garbage(get_spark(), retention_s)
    print(json.dumps({"retention_s": retention_s, "removed": removed}, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("services", help="start, stop or show the embedded services")
    sp.add_argument("action", choices=["start", "stop", "status", "run"],
                    help="run NAME: one service in the foreground (a container's command)")
    sp.add_argument("name", nargs="?", help="with run: metastore, hiveserver2 or luigid")
    sp.set_defaults(func=_services)
    rp = sub.add_parser("run", help="start the services, ingest a window of the real data and publish its marts "
                                    "through luigid")
    rp.add_argument("--start", type=_date, help="first day (default [replay] demo_start, 2010-12-01)")
    rp.add_argument("--end", type=_date, help="last day, inclusive (default [replay] demo_end, 2010-12-08)")
    rp.add_argument("--all", action="store_true", help="every day of the calendar (the replayed year: "
                    "2010-12-01 .. 2011-12-09; add --mode backfill to build it in one pass)")
    rp.add_argument("--landed", action="store_true",
                    help="every landed day that is not complete, whatever its date (the scheduled run)")
    rp.add_argument("--mode", choices=["tasks", "backfill"], default="tasks",
                    help="tasks (default): the daily graph of each day not complete, checks and anomaly detection "
                         "included; backfill: the incomplete days of the range in one Spark pass per table")
    rp.set_defaults(func=_run)
    syn = sub.add_parser("synth", help="land synthetic feeds (Faker) for a date range")
    syn.add_argument("--start", type=_date, required=True)
    syn.add_argument("--end", type=_date, required=True)
    syn.add_argument("--lines-per-day", type=int, default=2000)
    syn.add_argument("--bad-share", type=float, default=0.01, help="share of bad rows (default 0.01)")
    syn.add_argument("--late-share", type=float, default=0.02, help="share of lines delivered a day late")
    syn.add_argument("--seed", type=int, default=42)
    syn.add_argument("--from-warehouse", action="store_true",
                     help="start from the warehouse's current products and countries (over HiveServer2)")
    syn.set_defaults(func=_synth)
    an = sub.add_parser("anomaly", help="change the status of a flagged line (NEW -> ACKNOWLEDGED -> RESOLVED, "
                                        "or FALSE_POSITIVE)")
    an.add_argument("line_id")
    an.add_argument("status", choices=["ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE"])
    an.add_argument("--by", required=True, help="who makes the change")
    an.add_argument("--note", default="", help="why")
    an.set_defaults(func=_anomaly)
    sl = sub.add_parser("sla", help="evaluate the marts' deadlines now (or at --now), record sla_status and alert")
    sl.add_argument("--now", type=dt.datetime.fromisoformat, help="evaluation time, UTC (default: now)")
    sl.set_defaults(func=_sla)
    sch = sub.add_parser("schedule", help="run the ingestion and marts at [schedule] run_at and the SLA monitor "
                         "every [schedule] sla_every_minutes, until stopped (the cluster's scheduler container)")
    sch.set_defaults(func=_schedule)
    sim = sub.add_parser("simulate", help="operate the warehouse over simulated days on a replay clock: feeds land "
                                          "at their times (late or missing on request), the scheduler runs and the "
                                          "SLA monitor alerts; ends with one row per day")
    sim.add_argument("--start", type=_date, required=True, help="first simulated day")
    sim.add_argument("--days", type=int, default=14, help="calendar days to simulate (default 14)")
    sim.add_argument("--speed", type=float, default=60.0,
                     help="simulated seconds per wall second while a job runs (default 60); idle time is skipped")
    sim.add_argument("--late", action="append", metavar="FEED@DAY[THH]=HH:MM",
                     help="land a feed late, e.g. products@2011-03-05=11:30 (local time; repeatable)")
    sim.add_argument("--missing", action="append", metavar="FEED@DAY[THH]",
                     help="never land a feed, e.g. transactions@2011-03-08T12 (repeatable)")
    sim.set_defaults(func=_simulate)
    pl = sub.add_parser("purchases-link", help="print a signed link to one customer's purchase history (expires "
                                               "after [dashboard] link_max_age_hours, printed on stderr; needs "
                                               "$ECOM_DASHBOARD_SECRET of at least 32 bytes)")
    pl.add_argument("customer_id", type=int)
    pl.add_argument("--base-url", default="http://127.0.0.1:8501")
    pl.set_defaults(func=_purchases_link)
    du = sub.add_parser("dashboard-user", help="print a dashboard user entry with a bcrypt hash of a password")
    du.add_argument("name")
    du.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    du.set_defaults(func=_dashboard_user)
    bk = sub.add_parser("backup", help="back up the catalog (metastore database) and luigid's task history into "
                                       "<state dir>/backups/<UTC time>/, keeping the newest [backup] keep")
    bk.set_defaults(func=_backup)
    rs = sub.add_parser("restore", help="stop the services, put a backup's catalog and task history in place, "
                                        "start them, re-point the tables at the warehouse's live versions")
    rs.add_argument("backup", help="a backup directory, or its name under the backups directory")
    rs.add_argument("--no-rebuild", action="store_true",
                    help="leave the restored catalog as backed up (do not re-point it at the live versions)")
    rs.set_defaults(func=_restore)
    cat = sub.add_parser("catalog", help="check: refuse a catalog that lost tables the warehouse has published; "
                                         "rebuild: register every table and partition at its live version")
    cat.add_argument("action", choices=["check", "rebuild"])
    cat.set_defaults(func=_catalog)
    inv = sub.add_parser("invalidate", help="clear one published date from a task on: remove the markers of the "
                                            "date's tasks built from it, so the next run rebuilds exactly those")
    inv.add_argument("--date", type=_date, required=True, help="the invoice date (its marts must be ready)")
    inv.add_argument("--from", dest="from_task", metavar="TASK",
                     help="the first task to rebuild (default FactSales: the fact and every table built from it); "
                          "a star, mart or quality task, not ingestion")
    inv.add_argument("--reason", help="why, appended to the reason recorded in ecommerce_mart.marts_ready")
    inv.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    inv.set_defaults(func=_invalidate)
    gc = sub.add_parser("gc", help="delete replaced table versions the metastore does not point at (older than "
                                   "[warehouse] gc_retention_s) and staging leftovers of crashed writes")
    gc.add_argument("--retention-s", type=float, help="keep versions younger than this (default: the config)")
    gc.set_defaults(func=_gc)
    arch = sub.add_parser("architecture", help="print the README's architecture table, generated from the modules' "
                                               "docstrings (--write: put it in README.md)")
    arch.add_argument("--write", action="store_true", help="update README.md between its markers")
    arch.set_defaults(func=_architecture)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    from pipeline.io.catalog import CatalogLost
    from pipeline.io.lock import WarehouseLockTimeout

    try:
        return args.func(args)
    except (services.ServiceError, CatalogLost, WarehouseLockTimeout) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
