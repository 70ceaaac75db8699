"""What an operational run builds, and how the command line and the scheduler build it through luigid.

An operational run (``python -m pipeline run``, each scheduled run) builds the daily graph of the landed
days that are not complete, and nothing else: ``MartsReady(D)`` (with its checks and anomaly detection)
once every feed it needs has landed, otherwise the ingestion tasks whose feeds have. A complete date is
never rebuilt unless its input changed (``RefreshLateDates``) or an operator invalidated it.

Builds run in this process against luigid, with Luigi's own retries: the worker stays alive while its
tasks can still run, so a task failing on a transient error runs again ``[scheduler] retry_delay`` seconds
later, up to ``[scheduler] retry_count`` failures; luigid then disables it for the rest of the run. A
task disabled by an earlier run is re-enabled when a new run starts (a new run tries again).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

import luigi
import luigi.configuration
import luigi.rpc
from luigi.execution_summary import LuigiStatusCode

from pipeline import config
from pipeline.io import fs
from pipeline.io import warehouse as wh
from pipeline.sources import replay

log = logging.getLogger(__name__)

_build_lock = threading.Lock()


def landed_days() -> list[dt.date]:
    """Calendar days with at least one landed feed (their landing manifest exists)."""
    manifests = replay.landing_manifest_dir(config.warehouse().uri)
    return sorted(dt.date.fromisoformat(n[:10]) for n in fs.listdir(manifests) if n.endswith(".json"))


def missing_feeds(task: luigi.Task) -> list[str]:
    """The landing files the incomplete part of ``task``'s graph waits for (none: it can run now)."""
    from pipeline.tasks.ingest import FeedFile

    missing, seen, stack = [], set(), [task]
    while stack:
        t = stack.pop()
        if t.task_id in seen:
            continue
        seen.add(t.task_id)
        if t.complete():
            continue
        if isinstance(t, FeedFile):
            missing.append(t.path)
            continue
        stack.extend(luigi.task.flatten(t.requires()))
    return missing


def day_targets(day: dt.date) -> list[luigi.Task]:
    """What a run builds for ``day``: its ``MartsReady`` when everything it needs has landed, else the
    ingestion tasks that can run; nothing when the date is complete."""
    from pipeline.tasks import ingest
    from pipeline.tasks.ready import MartsReady

    ready = MartsReady(day)
    if ready.complete():
        return []
    if not missing_feeds(ready):
        return [ready]
    candidates = [ingest.ProductsSnapshot(day), ingest.CountriesSnapshot(day),
                  *(ingest.TransactionBatch(day, str(w)) for w in replay.WINDOW_HOURS)]
    return [t for t in candidates if not t.complete() and not missing_feeds(t)]


def late_batches(days: list[dt.date]) -> list[luigi.Task]:
    """Transaction batches of ``days`` recorded as MISSING or REJECTED whose file has landed since: to load
    now."""
    from pipeline.tasks import ingest

    tasks = (ingest.TransactionBatch(d, str(w)) for d in days for w in replay.WINDOW_HOURS)
    return [t for t in tasks if t.output().exists() and not t.complete()]


def targets(days: list[dt.date]) -> list[luigi.Task]:
    """The operational run's targets for ``days``: transaction batches that landed after being declared
    missing, then ``day_targets`` of each day in date order."""
    return [*late_batches(days), *(t for d in days for t in day_targets(d))]


def declare_missing(days: list[dt.date], now: dt.datetime, after_minutes: int) -> list[str]:
    """Declare missing the transaction windows of ``days`` still not landed ``after_minutes`` after they were
    due at ``now`` (naive UTC): write their notes (``ingest.missing_declaration``); returns their batch ids."""
    from pipeline.tasks import ingest
    from pipeline.transforms import sla as rules

    cfg = config.sla()
    expected = rules.feed_schedule(days, replay.WINDOW_HOURS, dt.time.fromisoformat(cfg.masters_at), cfg.timezone)
    declared = []
    for row in expected[expected["feed"] == "transactions"].itertuples():
        due_at = row.expected_at.to_pydatetime()
        if now < due_at + dt.timedelta(minutes=after_minutes):
            continue
        batch = ingest.transaction_batch(row.invoice_date, row.window)
        note = ingest.missing_declaration(row.invoice_date, row.window)
        if fs.target(batch.path).exists() or note.exists():
            continue
        fs.write_json(note, {"batch_id": batch.batch_id, "path": batch.path, "due_at": due_at,
                                  "declared_at": now})
        log.warning("transaction feed %s (due %s UTC) has not landed at %s UTC: declared missing",
                    batch.batch_id, due_at, now)
        declared.append(batch.batch_id)
    return declared


def _scheduler_url() -> str:
    ui = config.scheduler_ui()
    return f"http://{ui.host}:{ui.port}"


def reenable_disabled(url: str | None = None) -> list[str]:
    """Re-enable the tasks luigid disabled after too many failures, so this run tries them again."""
    scheduler = luigi.rpc.RemoteScheduler(url or _scheduler_url())
    try:
        disabled = scheduler.task_list(status="DISABLED", upstream_status="") or {}
    except Exception as exc:  # noqa: BLE001  (luigid down: the build reports it)
        log.warning("could not list disabled tasks in luigid: %s", exc)
        return []
    for task_id in disabled:
        scheduler.re_enable_task(task_id)
    if disabled:
        log.info("re-enabled %d tasks luigid had disabled after repeated failures: %s", len(disabled),
                 ", ".join(sorted(disabled)))
    return sorted(disabled)


def build(tasks: list[luigi.Task]) -> luigi.execution_summary.LuigiRunResult:
    """Build ``tasks`` in this process through luigid (``[scheduler_ui]``) with one worker that stays alive
    while failed tasks may be retried. Safe to call from several threads at once."""
    cfg = luigi.configuration.get_config()
    with _build_lock:
        cfg.set("core", "no_configure_logging", "true")
        cfg.set("worker", "keep_alive", "true")
        if threading.current_thread() is not threading.main_thread():
            cfg.set("worker", "no_install_shutdown_handler", "true")
    wh.forget_checks()
    ui = config.scheduler_ui()
    return luigi.build(tasks, scheduler_host=ui.host, scheduler_port=ui.port, workers=1, detailed_summary=True)


def succeeded(result) -> bool:
    return result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY)
