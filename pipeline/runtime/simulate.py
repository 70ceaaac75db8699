"""``python -m pipeline simulate``: days of operation on a replay clock, as users run the warehouse.

The simulator plays the source system: each feed of each day lands at its real time on the replay clock
(a transaction window at its end, the masters at ``[sla] masters_at``), late or never when asked
(``--late products@2011-03-05=11:30``, ``--missing transactions@2011-03-08T12``). The scheduler's own loop
(``pipeline.runtime.schedule.Scheduler``) runs on that clock through luigid: operational runs at ``[schedule]
run_at``, the SLA monitor every ``sla_every_minutes``, alerts through the configured channels. While a
job runs the clock advances ``speed`` times faster than the wall clock; when nothing runs it jumps to the
next landing or due job. Days before the first simulated day that are not complete are landed and built
first (a catch-up, outside the simulated time).

It ends with one row per simulated business day: its feeds (on time, late, missing), when its marts were
first ready, its SLA state and the states it went through, and the alerts, data-quality results and
anomaly flags recorded for it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import dataclass

import luigi.configuration

from pipeline import config
from pipeline.io import fs
from pipeline.runtime import schedule as sched
from pipeline.sources import replay

log = logging.getLogger(__name__)

FEEDS = ("transactions", "products", "countries")


class InvalidFeedSpec(ValueError):
    """A --late or --missing argument that does not name a feed of a simulated day."""


@dataclass(frozen=True)
class Landing:
    """One feed file of one day: when it is due and when the simulated source lands it (None: never)."""

    day: dt.date
    feed: str
    window: int
    due_at: dt.datetime
    lands_at: dt.datetime | None

    @property
    def name(self) -> str:
        return f"{self.feed}@{self.day}" + (f"T{self.window:02d}" if self.window >= 0 else "")


_SPEC = re.compile(r"^(?P<feed>[a-z]+)@(?P<day>\d{4}-\d{2}-\d{2})(?:T(?P<window>\d{1,2}))?$")


def parse_feed(text: str) -> tuple[str, dt.date, int]:
    """``transactions@2011-03-08T12`` or ``products@2011-03-05`` as (feed, day, window; -1 for masters)."""
    m = _SPEC.match(text.strip())
    if not m or m["feed"] not in FEEDS:
        raise InvalidFeedSpec(f"{text!r}: expected FEED@YYYY-MM-DD (products, countries) or "
                              "transactions@YYYY-MM-DDTHH (HH a window start: 0, 4, 8, 12, 16, 20)")
    window = -1 if m["window"] is None else int(m["window"])
    if (m["feed"] == "transactions") != (window >= 0) or (window >= 0 and window not in replay.WINDOW_HOURS):
        raise InvalidFeedSpec(f"{text!r}: a transaction feed names its window (T0, T4 ... T20); a master feed none")
    return m["feed"], dt.date.fromisoformat(m["day"]), window


def parse_late(text: str) -> tuple[tuple[str, dt.date, int], str]:
    """``products@2011-03-05=11:30`` (local time on the feed's day) or ``...=2011-03-06T02:00``."""
    feed, _, at = text.partition("=")
    if not at:
        raise InvalidFeedSpec(f"{text!r}: expected FEED@DAY[THH]=HH:MM or =YYYY-MM-DDTHH:MM (when it lands)")
    return parse_feed(feed), at.strip()


def _landing_time(day: dt.date, at: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(at) if "-" in at else dt.datetime.combine(day, dt.time.fromisoformat(at))
    except ValueError as exc:
        raise InvalidFeedSpec(f"{at!r}: a landing time is HH:MM or YYYY-MM-DDTHH:MM (local)") from exc


def landing_plan(days: list[dt.date], masters_at: dt.time, tz: str, late: dict | None = None,
                 missing: set | None = None) -> list[Landing]:
    """When each feed of ``days`` is due and lands (naive UTC): on time unless ``late`` ((feed, day, window) ->
    local landing time text) or ``missing`` says otherwise. A late or missing feed outside ``days`` is refused."""
    from pipeline.transforms import sla as rules

    late, missing = dict(late or {}), set(missing or ())
    expected = rules.feed_schedule(days, replay.WINDOW_HOURS, masters_at, tz)
    plan = []
    for row in expected.itertuples():
        key = (row.feed, row.invoice_date, int(row.window))
        due_at = row.expected_at.to_pydatetime()
        lands_at = (None if key in missing else
                    rules.to_utc(_landing_time(row.invoice_date, late.pop(key)), tz) if key in late else due_at)
        missing.discard(key)
        plan.append(Landing(row.invoice_date, row.feed, int(row.window), due_at, lands_at))
    unknown = [k for k in (*late, *missing)]
    if unknown:
        raise InvalidFeedSpec(f"not a feed of a simulated business day ({days[0]} .. {days[-1]}): "
                              + ", ".join(f"{f}@{d}" + (f"T{w}" if w >= 0 else "") for f, d, w in unknown))
    return sorted(plan, key=lambda landing: (landing.lands_at or dt.datetime.max, landing.name))


def _staged_path(root: str, landing: Landing) -> str:
    paths = replay.landing_paths(root, landing.day)
    return paths["transactions"][landing.window] if landing.feed == "transactions" else paths[landing.feed]


class Source:
    """The simulated source system: the simulated days prepared in a staging area, landed one file at a time."""

    def __init__(self, days: list[dt.date], staging: str, root: str):
        self.staging, self.root = staging, root
        self.days = days
        self._manifests: set[dt.date] = set()

    def prepare(self) -> None:
        """Replay the simulated days into the staging area from the master state of the last landed day."""
        cfg = config.replay()
        all_days = replay.trading_days(cfg.source_path)
        before = [d for d in all_days if d < self.days[0]]
        state = replay.read_state(self.root, before[-1]) if before else replay.MasterState()
        aliases = replay.load_country_aliases(config.resolve_path(config.reference().country_aliases))
        for day in self.days:
            state = replay.replay_day(cfg.source_path, self.staging, day, state, aliases)

    def land(self, landing: Landing) -> None:
        """Land one file atomically; the day's manifest with it when it is the day's first file."""
        fs.write_text(_staged_path(self.root, landing), fs.read_text(_staged_path(self.staging, landing)))
        if landing.day not in self._manifests:
            staged = replay.landing_paths(self.staging, landing.day)["manifest"]
            text = fs.read_text(staged).replace(fs.join(self.staging, "landing"), fs.join(self.root, "landing"))
            fs.write_text(replay.landing_paths(self.root, landing.day)["manifest"], text)
            self._manifests.add(landing.day)
        log.info("landed %s", landing.name)


def catch_up(first_day: dt.date) -> list[dt.date]:
    """Land and build the trading days before ``first_day`` that are not complete (outside simulated time)."""
    from pipeline.runtime import operate
    from pipeline.tasks import ingest
    from pipeline.tasks.ready import MartsBackfill, MartsReady

    cfg = config.replay()
    todo = [d for d in replay.trading_days(cfg.source_path) if d < first_day and not MartsReady(d).complete()]
    if not todo:
        return []
    to_land = [d for d in todo if not ingest.ReplayDay(d).complete()]
    if to_land:
        log.info("catch-up: landing %d days %s .. %s", len(to_land), to_land[0], to_land[-1])
        replay.replay_days(cfg.source_path, config.warehouse().uri, to_land,
                           config.resolve_path(config.reference().country_aliases))
    ingest.source_days.cache_clear()
    log.info("catch-up: building %d days %s .. %s", len(todo), todo[0], todo[-1])
    tasks = operate.targets(todo) if len(todo) <= 3 else [MartsBackfill(start=todo[0], end=todo[-1])]
    result = operate.build(tasks)
    if not operate.succeeded(result):
        raise RuntimeError(f"catch-up of {todo[0]} .. {todo[-1]} failed: {result.one_line_summary}")
    return todo


def simulate(start: dt.date, n_days: int, speed: float = 60.0, late: list[str] = (), missing: list[str] = ()) -> dict:
    """Simulate ``n_days`` calendar days from ``start``; returns the report (``report`` rows and run facts)."""
    from pipeline import clock
    from pipeline.runtime import operate
    from pipeline.tasks.sla import SlaMonitor, last_deadline

    cfg_sla, cfg_sched = config.sla(), config.schedule()
    tz = sched.zone()
    late_at = dict(parse_late(s) for s in late)
    missing_keys = {parse_feed(s) for s in missing}
    trading = set(replay.trading_days(config.replay().source_path))
    days = [start + dt.timedelta(days=i) for i in range(n_days) if start + dt.timedelta(days=i) in trading]
    if not days:
        raise InvalidFeedSpec(f"no business day of the source between {start} and {start + dt.timedelta(n_days - 1)}")
    plan = landing_plan(days, dt.time.fromisoformat(cfg_sla.masters_at), cfg_sla.timezone, late_at, missing_keys)
    luigi.configuration.get_config().set("replay", "lands_feeds", "false")
    root = config.warehouse().uri
    source = Source(days, fs.join(str(config.state().path.as_uri()), "simulation", "staging"), root)

    begin = sched.to_utc(dt.datetime.combine(start, dt.time()), tz)
    end = last_deadline(days[-1]) + dt.timedelta(minutes=cfg_sched.sla_every_minutes)
    wall0 = time.monotonic()
    with clock.use(clock.ReplayClock(begin - dt.timedelta(hours=1))):
        sched.prepare()
        caught_up = catch_up(days[0])
        source.prepare()
    replay_clock = clock.ReplayClock(begin, speed)
    with clock.use(replay_clock):
        jobs = {"run": sched.run_job,
                "sla": lambda: operate.succeeded(operate.build([SlaMonitor(now=clock.minute(),
                                                                           last_day=str(days[-1]))]))}
        scheduler = sched.Scheduler(jobs, replay_clock.now, tz, sched.parse_times(cfg_sched.run_at),
                                    cfg_sched.sla_every_minutes)
        pending = [p for p in plan if p.lands_at is not None]
        wall_sim = time.monotonic()
        previous = scheduler.local_now()
        while True:
            now = replay_clock.now()
            while pending and pending[0].lands_at <= now:
                source.land(pending.pop(0))
            now_local = sched.to_local(now, tz)
            scheduler.tick(previous, now_local)
            previous = now_local
            if scheduler.busy():
                time.sleep(0.1)
                continue
            if now >= end:
                break
            upcoming = [sched.to_utc(sched.next_due(now_local, scheduler.run_at, scheduler.sla_every_minutes), tz),
                        end]
            if pending:
                upcoming.append(pending[0].lands_at)
            replay_clock.jump(min(upcoming))
        scheduler.join()
    simulated_s = time.monotonic() - wall_sim
    rows = report_rows(days, plan)
    return {"start": start, "days": n_days, "business_days": len(days), "speed": speed,
            "late": list(late), "missing": list(missing), "caught_up_days": len(caught_up),
            "wall_s": round(time.monotonic() - wall0, 1), "simulated_wall_s": round(simulated_s, 1),
            "jobs": _job_counts(scheduler), "report": rows}


def _job_counts(scheduler: sched.Scheduler) -> dict:
    out: dict[str, dict] = {}
    for f in scheduler.finished:
        c = out.setdefault(f["job"], {"runs": 0, "failed": 0, "seconds": 0.0, "skipped": 0})
        c["runs"] += 1
        c["failed"] += 0 if f["ok"] else 1
        c["seconds"] = round(c["seconds"] + f["seconds"], 1)
    for s in scheduler.skipped:
        out.setdefault(s["job"], {"runs": 0, "failed": 0, "seconds": 0.0, "skipped": 0})["skipped"] += 1
    return out


def _fmt(ts, tz) -> str:
    if ts is None:
        return ""
    local = sched.to_local(ts, tz)
    return f"{local:%m-%d %H:%M}"


def report_rows(days: list[dt.date], plan: list[Landing]) -> list[dict]:
    """One row per simulated day from the published tables: feeds, first ready, SLA states, alerts, checks."""
    from pyspark.sql import functions as F

    from pipeline.io import warehouse as wh
    from pipeline.tasks.base import MART, dw_spark, read_dates

    spark = dw_spark()
    tz = sched.zone()
    mart = MART
    ready = {r.invoice_date: r for r in read_dates(spark, f"{mart}.marts_ready", days).groupBy("invoice_date")
             .agg(F.min(F.coalesce("first_ready_at", "ready_at")).alias("first_ready_at"),
                  F.max(F.coalesce("revision", F.lit(0))).alias("revision")).collect()}
    status = {r.invoice_date: r.state for r in read_dates(spark, f"{mart}.sla_status", days).collect()}
    history: dict[dt.date, list] = {}
    for r in read_dates(spark, f"{mart}.sla_history", days).orderBy("since").collect():
        history.setdefault(r.invoice_date, []).append(f"{r.state} {_fmt(r.since, tz)}")
    alerts = wh.read(spark, f"{mart}.alerts").where(F.col("delivery_status") == "SENT") \
        .select("dedupe_key", "alert_condition", "created_at").distinct().collect()
    dq = {r.invoice_date: (r.results, r.failed) for r in read_dates(spark, f"{mart}.dq_results", days)
          .groupBy("invoice_date").agg(F.count(F.lit(1)).alias("results"),
                                       F.sum(F.when(F.col("status") == "FAIL", 1).otherwise(0)).alias("failed"))
          .collect()}
    flagged = dict(read_dates(spark, f"{mart}.anomalies", days).groupBy("invoice_date").count().collect())
    rows = []
    for day in days:
        feeds = [p for p in plan if p.day == day]
        off = [f"{p.name} missing" if p.lands_at is None else f"{p.name} late {_fmt(p.lands_at, tz)}"
               for p in feeds if p.lands_at != p.due_at]
        stamp = f"{day:%Y%m%d}"
        sent = sorted((a for a in alerts if a.dedupe_key.endswith(f":{day}") or f"_{stamp}_" in a.dedupe_key),
                      key=lambda a: a.created_at)
        r = ready.get(day)
        rows.append({
            "day": str(day), "feeds": "; ".join(off) or "on time",
            "first_ready_at": _fmt(r.first_ready_at, tz) if r else "", "revisions": r.revision if r else 0,
            "sla": status.get(day, ""), "sla_history": " > ".join(history.get(day, [])),
            "alerts": [f"{a.alert_condition} {a.dedupe_key.split(':')[0]} {_fmt(a.created_at, tz)}" for a in sent],
            "dq_results": dq.get(day, (0, 0))[0], "dq_failed": dq.get(day, (0, 0))[1],
            "anomalies": flagged.get(day, 0)})
    return rows


def format_report(result: dict) -> list[str]:
    """The report as text lines: one row per day, times local (``[sla] timezone``)."""
    lines = [f"simulated {result['business_days']} business days from {result['start']} ({result['days']} calendar "
             f"days) at speed {result['speed']:g}: {result['simulated_wall_s']:.0f} s wall clock "
             f"({result['wall_s']:.0f} s with catch-up of {result['caught_up_days']} days and preparation)",
             "jobs: " + ", ".join(f"{k} {v['runs']} ({v['failed']} failed, {v['skipped']} skipped, "
                                  f"{v['seconds']:.0f} s)" for k, v in result["jobs"].items()),
             f"{'day':<11} {'feeds':<34} {'first ready':<12} {'SLA':<9} {'dq':>7} {'anom':>5}  states / alerts"]
    for r in result["report"]:
        lines.append(f"{r['day']:<11} {r['feeds'][:34]:<34} {r['first_ready_at'] or '-':<12} {r['sla'] or '-':<9} "
                     f"{r['dq_results']:>4}/{r['dq_failed']:<2} {r['anomalies']:>5}  {r['sla_history']}")
        if r["alerts"]:
            lines.append(f"{'':<11} alerts: {', '.join(r['alerts'])}")
    return lines


def write_report(result: dict) -> str:
    out = config.state().path / "simulations" / f"{result['start']}_{result['days']}d.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "report": result["report"]}, indent=1, default=str))
    return str(out)

