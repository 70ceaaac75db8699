"""SLA monitor: will each business day's marts be ready by their deadline? Alerts before and after it.

    luigi --module pipeline.tasks.sla SlaMonitor                       # now (run it every 5 minutes)
    luigi --module pipeline.tasks.sla SlaMonitor --now 2010-12-06T0900  # a replayed clock (UTC)
    python -m pipeline sla [--now 2010-12-06T09:00]

Convention: business day D's marts of a group are due at ``deadline`` (10:00) ``days_after`` (1) days
later in ``[sla] timezone`` (Europe/London): by default every mart of D by 10:00 on D+1. A group is ready
when each of its tasks is: ``MartsReady`` by the ``first_ready_at`` of its ``ecommerce_mart.marts_ready`` record
(a later republication does not move it), any other task by
its marker's ``published_at``. Evidence comes from the feed landing area (freshness), Luigi's task history
(failed tasks, median durations) and the remaining tasks of the day's graph.
"""

from __future__ import annotations

import datetime as dt
import logging

import luigi
import pandas as pd

from pipeline import clock, config, schemas
from pipeline.io import alerts, arrow_tables, crash, fs, history
from pipeline.io import warehouse as wh
from pipeline.tasks import ingest
from pipeline.tasks.base import DW, MART, dw_spark, marker, write_marker, writes_warehouse
from pipeline.tasks.quality import feeds
from pipeline.tasks.ready import CUSTOMER_MARTS, DATE_MARTS, DimCustomer, MartsReady
from pipeline.tasks.star import FactSales
from pipeline.transforms import sla as rules

log = logging.getLogger(__name__)

STATUS_TABLE, HISTORY_TABLE = f"{MART}.sla_status", f"{MART}.sla_history"
HISTORY_COLUMNS, STATUS_COLUMNS = schemas.column_names(HISTORY_TABLE), schemas.column_names(STATUS_TABLE)


def _utc_minute() -> dt.datetime:
    return clock.minute()


TASKS = {t.__name__: t for t in (MartsReady, *DATE_MARTS, *CUSTOMER_MARTS, FactSales, DimCustomer)}


def monitored_days(now: dt.datetime, cfg: config.sla, first_day: dt.date | None = None,
                   last_day: dt.date | None = None) -> list[dt.date]:
    """Business days whose deadline of some group is ahead, or passed less than ``lookback_hours`` ago; with
    ``first_day``, every business day from it too; with ``last_day``, none after it."""
    today = rules.business_date(now, cfg.timezone)
    longest = max(int(g["days_after"]) for g in cfg.groups.values())
    back_to = max(longest + 2, (today - first_day).days if first_day else 0)
    days = []
    for back in range(back_to, -1, -1):
        day = today - dt.timedelta(days=back)
        expected = ingest.is_trading_day(day) or not config.replay().enabled
        watched = (first_day is not None and day >= first_day) or any(
            _deadline(day, g, cfg) >= now - dt.timedelta(hours=cfg.lookback_hours) for g in cfg.groups.values())
        if expected and watched and (last_day is None or day <= last_day):
            days.append(day)
    return days


def _deadline(day: dt.date, group, cfg: config.sla) -> dt.datetime:
    return rules.deadline(day, dt.time.fromisoformat(group["deadline"]), int(group["days_after"]), cfg.timezone)


def last_deadline(day: dt.date) -> dt.datetime:
    """The latest deadline of ``day`` over the mart groups (naive UTC)."""
    cfg = config.sla()
    return max(_deadline(day, g, cfg) for g in cfg.groups.values())


def remaining_tasks(day: dt.date, families) -> list[luigi.Task]:
    """The incomplete tasks of ``day`` in the graph of the group's tasks (other days' tasks are not walked)."""
    todo, seen = [], set()
    stack = [TASKS[f](day) for f in families]
    while stack:
        task = stack.pop()
        if task.task_id in seen or getattr(task, "date", day) != day:
            continue
        seen.add(task.task_id)
        if task.complete():
            continue
        todo.append(task)
        stack.extend(luigi.task.flatten(task.requires()))
    return todo


def ready_times(days: list[dt.date], cfg: config.sla) -> pd.DataFrame:
    """When each group was ready for each day: the latest of its tasks' ready times (none if one is missing)."""
    records = arrow_tables.read(f"{MART}.marts_ready", columns=["invoice_date", "first_ready_at", "ready_at"])
    records = records[records["invoice_date"].isin(days)]
    first = records["first_ready_at"].fillna(records["ready_at"])
    marts_ready = first.groupby(records["invoice_date"]).min().to_dict()
    rows = []
    for name, group in cfg.groups.items():
        for day in days:
            times = []
            for family in group["tasks"]:
                if family == "MartsReady":
                    times.append(marts_ready.get(day))
                else:
                    out = TASKS[family](day).output()
                    times.append(pd.Timestamp(fs.read_json(out).get("published_at")) if out.exists() else None)
            if all(t is not None and not pd.isna(t) for t in times):
                rows.append((day, name, max(times)))
    return pd.DataFrame(rows, columns=["invoice_date", "mart_group", "ready_at"])


def evaluate(now: dt.datetime, cfg: config.sla, first_day: dt.date | None = None,
             last_day: dt.date | None = None) -> pd.DataFrame:
    """The SLA state of every monitored day and group at ``now`` (``monitored_days``)."""
    days = monitored_days(now, cfg, first_day, last_day)
    if not days:
        return rules.sla_states(pd.DataFrame(columns=["invoice_date", "mart_group", "deadline_at"]),
                                pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), now, 0)
    groups = pd.DataFrame([(d, name, _deadline(d, g, cfg)) for d in days for name, g in cfg.groups.items()],
                          columns=["invoice_date", "mart_group", "deadline_at"])
    late = rules.late_feeds(feeds(days, cfg), now)
    remaining = pd.DataFrame([(d, name, t.task_family, str(t)) for d in days for name, g in cfg.groups.items()
                              for t in remaining_tasks(d, g["tasks"])],
                             columns=["invoice_date", "mart_group", "task_family", "task"])
    wall = dt.datetime.now()
    try:
        events = history.events(history.database(cfg.task_history_db), wall - dt.timedelta(days=cfg.history_days))
    except FileNotFoundError as exc:
        log.warning("%s: expected finishes use [sla] default_task_s", exc)
        events = pd.DataFrame(columns=history.COLUMNS)
    runs = rules.task_runs(events)
    return rules.sla_states(groups, ready_times(days, cfg), late, remaining, runs, now, cfg.default_task_s)


def ensure_tables() -> None:
    """Start Spark only when the catalog lacks a table of the star schema or the marts (a new warehouse):
    ``dw_spark`` creates them, or refuses a catalog that lost published tables."""
    wanted = [f"{db}.{t}" for db in (DW, MART) for t in wh.SCHEMAS[db]]
    absent = arrow_tables.missing(wanted)
    if absent:
        log.info("%s not in the catalog yet: creating the warehouse's tables with Spark", ", ".join(absent))
        dw_spark()


def entered_states(status: pd.DataFrame, earlier: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """The ``sla_history`` rows of the states ``status`` entered at ``now`` that ``earlier`` (the recorded
    history) does not hold yet (a rerun of the same evaluation adds nothing)."""
    changed = status[status["state_since"] == now].rename(columns={"state_since": "since"})[HISTORY_COLUMNS]

    def keys(rows: pd.DataFrame):
        return zip(rows["invoice_date"], rows["mart_group"], rows["state"], pd.to_datetime(rows["since"]), strict=True)

    recorded = set(keys(earlier))
    return changed.loc[[k not in recorded for k in keys(changed)]]


class SlaMonitor(luigi.Task):
    """Evaluate the SLA of the monitored days at ``now``, record ``ecommerce_mart.sla_status`` and each state a
    day enters in ``ecommerce_mart.sla_history``, alert on changes; without a Spark session
    (``pipeline.io.arrow_tables``), except once on a warehouse whose tables do not exist yet.

    Meant to be called by a scheduler every few minutes: each call is a new task (``now`` defaults to the
    current minute, UTC) with its own marker, so a rerun of the same minute does nothing. ``first_day`` and
    ``last_day`` widen or bound the watched business days (the demo run evaluates its whole window).
    """

    now = luigi.DateMinuteParameter(default=_utc_minute(), description="evaluation time, UTC")
    first_day = luigi.OptionalStrParameter(default=None, description="also watch every business day from this one")
    last_day = luigi.OptionalStrParameter(default=None, description="watch no business day after this one")
    resources = {"alerts_writer": 1}

    def output(self):
        window = "".join(f"_{d}" for d in (self.first_day, self.last_day) if d)
        return marker("sla", f"{self.now:%Y-%m-%dT%H%M}{window}.json")

    @writes_warehouse
    def run(self):
        cfg = config.sla()
        ensure_tables()
        first, last = (dt.date.fromisoformat(d) if d else None for d in (self.first_day, self.last_day))
        status = evaluate(self.now, cfg, first, last)
        if len(status):
            previous = arrow_tables.read(STATUS_TABLE)
            status = rules.state_changes(status, previous, self.now)
            earlier = arrow_tables.read(HISTORY_TABLE)
            entered = entered_states(status, earlier, self.now)
            if len(entered):
                arrow_tables.append(entered, HISTORY_TABLE)
            keep = previous[~previous["invoice_date"].isin(set(status["invoice_date"]))]
            frames = [f[STATUS_COLUMNS] for f in (keep, status) if len(f)]
            arrow_tables.replace_table(pd.concat(frames, ignore_index=True), STATUS_TABLE)
        crash.point("sla.published")
        for s in status.itertuples():
            log.info("SLA %s %s: %s (%s)", s.mart_group, s.invoice_date, s.state, s.evidence)
        sent = alerts.notify(None, rules.alerts_for(status, self.now) if len(status) else [], self.now)
        write_marker(self.output(), {
            "now": self.now, "states": {f"{s.mart_group} {s.invoice_date}": s.state for s in status.itertuples()},
            "alerts_sent": len([r for r in sent if r["delivery_status"] == "SENT"])})
