"""The scheduler's loop (``python -m pipeline schedule``, the cluster's scheduler container).

At each ``[schedule] run_at`` time (local time of ``[sla] timezone``) it runs ``python -m pipeline run --all``
through luigid: every landed day's ingestion and marts, where work already done is skipped, so a missed
tick is caught up by the next one. Every ``sla_every_minutes`` it runs the SLA monitor (``pipeline sla``).
Both run once at start. Daily at ``[backup] daily_at`` it backs up the catalog and the task history
(``pipeline backup``). A failed run is logged and retried at the next tick; the loop never stops on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import time
from zoneinfo import ZoneInfo

import luigi
import luigi.configuration

from pipeline import config

log = logging.getLogger(__name__)


class schedule(luigi.Config):
    run_at = luigi.Parameter(default="00:15,04:15,06:15,08:15,12:15,16:15,20:15",
                             description="local times of the ingestion and marts run (comma-separated HH:MM)")
    sla_every_minutes = luigi.IntParameter(default=15)
    tick_s = luigi.FloatParameter(default=30.0)


def parse_times(text: str, setting: str = "[schedule] run_at") -> list[dt.time]:
    """A timetable setting (comma-separated local HH:MM times) as sorted times; a clear error otherwise."""
    try:
        return sorted(dt.time.fromisoformat(t.strip()) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise ValueError(f"{setting}: {text!r} is not a comma-separated list of HH:MM times") from exc


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
    """Jobs whose time came in ``(previous, now]`` (both local, naive), in the order they run: ``backup`` (the
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


COMMANDS = {"run": ["run", "--all"], "sla": ["sla"], "backup": ["backup"]}


def _job(name: str) -> None:
    """Run one job as its own command line, so that a failure is logged and the loop goes on."""
    argv = [sys.executable, "-m", "pipeline", *COMMANDS[name]]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=config.PROJECT_ROOT)
    log.info("%s finished with exit code %s in %.0f s", " ".join(argv[2:]), proc.returncode, time.monotonic() - t0)


def loop() -> None:
    """Run the jobs as they fall due, forever (the scheduler container's main process)."""
    from pipeline.runtime import backup

    config.load_profile()
    cfg = schedule()
    run_at = parse_times(cfg.run_at)
    backup_at = parse_times(backup.backup().daily_at, "[backup] daily_at")
    zone = ZoneInfo(luigi.configuration.get_config().get("sla", "timezone", "UTC"))
    log.info("schedule: run at %s (%s), SLA monitor every %d min, catalog backup at %s",
             ", ".join(f"{t:%H:%M}" for t in run_at), zone, cfg.sla_every_minutes,
             ", ".join(f"{t:%H:%M}" for t in backup_at) or "never")
    for name in ("run", "sla"):
        _job(name)
    previous = dt.datetime.now(zone).replace(tzinfo=None)
    while True:
        time.sleep(cfg.tick_s)
        now = dt.datetime.now(zone).replace(tzinfo=None)
        for name in due(previous, now, run_at, cfg.sla_every_minutes, backup_at):
            _job(name)
        previous = now
