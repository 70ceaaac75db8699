"""The scheduler's loop (``python -m pipeline schedule``, the cluster's scheduler container, and ``simulate``).

At each ``[schedule] run_at`` time (local time of ``[sla] timezone``) it starts an operational run: the
daily graph of every landed day that is not complete (``pipeline.runtime.operate``). Every
``sla_every_minutes`` it starts the SLA monitor; daily at ``[backup] daily_at`` a catalog backup. Jobs run
in threads of this process, each through luigid, so the SLA monitor keeps its cadence while a long run goes
on. A job due while the previous one of its kind is still running is skipped with a log line, never queued.
A failed job is logged; the loop never stops on it. The loop reads time from ``pipeline.clock``, so
the same loop runs on the wall clock or on a replay clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from pipeline import config

log = logging.getLogger(__name__)


def parse_times(text: str, setting: str = "[schedule] run_at") -> list[dt.time]:
    """A timetable setting (comma-separated local HH:MM times) as sorted times; a clear error otherwise."""
    try:
        return sorted(dt.time.fromisoformat(t.strip()) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise ValueError(f"{setting}: {text!r} is not a comma-separated list of HH:MM times") from exc


def zone() -> ZoneInfo:
    return ZoneInfo(config.sla().timezone)


def to_local(utc: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return utc.replace(tzinfo=dt.UTC).astimezone(tz).replace(tzinfo=None)


def to_utc(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return local.replace(tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)


def first_run_after(day: dt.date) -> dt.datetime:
    """The first scheduled run on ``day`` (local), as naive UTC: when a day's last feed (landed at midnight)
    is first picked up."""
    return to_utc(dt.datetime.combine(day, parse_times(config.schedule().run_at)[0]), zone())


def _crossed(previous: dt.datetime, now: dt.datetime, times: list[dt.time]) -> bool:
    """Whether one of the daily ``times`` falls in ``(previous, now]``, on any day between them."""
    day = previous.date()
    while day <= now.date():
        if any(previous < dt.datetime.combine(day, t) <= now for t in times):
            return True
        day += dt.timedelta(days=1)
    return False


def due(previous: dt.datetime, now: dt.datetime, run_at: list[dt.time], sla_every_minutes: int,
        backup_at: list[dt.time] = ()) -> list[str]:
    """Jobs whose time came in ``(previous, now]`` (both local, naive), in the order they start: ``backup`` (the
    catalog as it was before the run), ``run`` and/or ``sla``."""
    jobs = []
    if _crossed(previous, now, list(backup_at)):
        jobs.append("backup")
    if _crossed(previous, now, run_at):
        jobs.append("run")
    period = dt.timedelta(minutes=sla_every_minutes)
    epoch = dt.datetime(2000, 1, 1)
    if (now - epoch) // period > (previous - epoch) // period:
        jobs.append("sla")
    return jobs


def next_due(now: dt.datetime, run_at: list[dt.time], sla_every_minutes: int,
             backup_at: list[dt.time] = ()) -> dt.datetime:
    """The first moment after ``now`` (local, naive) at which some job falls due."""
    epoch = dt.datetime(2000, 1, 1)
    period = dt.timedelta(minutes=sla_every_minutes)
    candidates = [epoch + ((now - epoch) // period + 1) * period]
    for day in (now.date(), now.date() + dt.timedelta(days=1)):
        candidates += [dt.datetime.combine(day, t) for t in (*run_at, *backup_at)
                       if dt.datetime.combine(day, t) > now]
    return min(candidates)


class Scheduler:
    """Starts due jobs in threads, at most one of each kind at a time.

    ``jobs``: name -> callable returning True on success. ``now``: the current time, naive UTC.
    """

    def __init__(self, jobs: dict[str, Callable[[], bool]], now: Callable[[], dt.datetime], tz: ZoneInfo,
                 run_at: list[dt.time], sla_every_minutes: int, backup_at: list[dt.time] = ()):
        self.jobs, self.now, self.tz = jobs, now, tz
        self.run_at, self.sla_every_minutes, self.backup_at = run_at, sla_every_minutes, list(backup_at)
        self.running: dict[str, tuple[threading.Thread, dt.datetime]] = {}
        self.finished: list[dict] = []
        self.skipped: list[dict] = []
        self._lock = threading.Lock()

    def local_now(self) -> dt.datetime:
        return to_local(self.now(), self.tz)

    def busy(self) -> bool:
        with self._lock:
            return any(thread.is_alive() for thread, _ in self.running.values())

    def start(self, name: str) -> None:
        at = self.now()
        with self._lock:
            current = self.running.get(name)
            if current and current[0].is_alive():
                log.info("%s due at %s UTC skipped: the %s started at %s UTC is still running", name, at, name,
                         current[1])
                self.skipped.append({"job": name, "at": at, "running_since": current[1]})
                return
            thread = threading.Thread(target=self._job, args=(name, at), name=f"job-{name}", daemon=True)
            self.running[name] = (thread, at)
        thread.start()

    def _job(self, name: str, at: dt.datetime) -> None:
        t0 = time.monotonic()
        try:
            ok = bool(self.jobs[name]())
        except Exception:  # noqa: BLE001  (a failed job is logged, the loop goes on)
            log.exception("%s started at %s UTC failed", name, at)
            ok = False
        elapsed = time.monotonic() - t0
        log.info("%s started at %s UTC %s in %.1f s", name, at, "finished" if ok else "FAILED", elapsed)
        with self._lock:
            self.finished.append({"job": name, "at": at, "ok": ok, "seconds": elapsed})

    def tick(self, previous_local: dt.datetime, now_local: dt.datetime) -> None:
        for name in due(previous_local, now_local, self.run_at, self.sla_every_minutes, self.backup_at):
            if name in self.jobs:
                self.start(name)

    def join(self) -> None:
        for thread, _ in list(self.running.values()):
            thread.join()


def run_job() -> bool:
    """An operational run: the daily graph of every landed day that is not complete."""
    from pipeline import clock
    from pipeline.runtime import operate
    from pipeline.tasks import ingest
    from pipeline.tasks.ready import MartsReady

    ingest.source_days.cache_clear()
    days = operate.landed_days()
    operate.declare_missing([d for d in days if not MartsReady(d).complete()], clock.now(),
                            config.schedule().declare_missing_after_minutes)
    todo = operate.targets(days)
    if not todo:
        log.info("run: nothing to do (no landed day is incomplete)")
        return True
    log.info("run: %d targets: %s", len(todo), ", ".join(map(str, todo[:8])) + (" ..." if len(todo) > 8 else ""))
    return operate.succeeded(operate.build(todo))


def sla_job() -> bool:
    """One SLA evaluation at the current minute of the clock."""
    from pipeline import clock
    from pipeline.runtime import operate
    from pipeline.tasks.sla import SlaMonitor

    return operate.succeeded(operate.build([SlaMonitor(now=clock.minute())]))


def backup_job() -> bool:
    from pipeline.runtime import backup

    backup.create()
    return True


JOBS = {"run": run_job, "sla": sla_job, "backup": backup_job}


def prepare() -> None:
    """Before the first job: the services (embedded), dead workers' tasks taken over, the catalog checked."""
    from pipeline.engine import services
    from pipeline.runtime import operate, recovery
    from pipeline.tasks.base import dw_spark

    services.start_all()
    ui = config.scheduler_ui()
    recovery.recover(f"http://{ui.host}:{ui.port}")
    operate.reenable_disabled()
    dw_spark()


def loop() -> None:
    """Run the jobs as they fall due on the wall clock, forever (the scheduler container's main process)."""
    from pipeline import clock

    config.load_profile()
    cfg = config.schedule()
    run_at = parse_times(cfg.run_at)
    backup_at = parse_times(config.backup().daily_at, "[backup] daily_at")
    tz = zone()
    log.info("schedule: run at %s (%s), SLA monitor every %d min, catalog backup at %s",
             ", ".join(f"{t:%H:%M}" for t in run_at), tz, cfg.sla_every_minutes,
             ", ".join(f"{t:%H:%M}" for t in backup_at) or "never")
    prepare()
    scheduler = Scheduler(JOBS, clock.now, tz, run_at, cfg.sla_every_minutes, backup_at)
    for name in ("run", "sla"):
        scheduler.start(name)
    previous = scheduler.local_now()
    while True:
        time.sleep(cfg.tick_s)
        now = scheduler.local_now()
        scheduler.tick(previous, now)
        previous = now
