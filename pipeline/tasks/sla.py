"""SLA monitor: will each business day's marts be ready by their deadline? Alerts before and after it.

    luigi --module pipeline.tasks.sla SlaMonitor                       # now (run it every 5 minutes)
    luigi --module pipeline.tasks.sla SlaMonitor --now 2010-12-06T0900  # a replayed clock (UTC)
    python -m pipeline sla [--now 2010-12-06T09:00]

Convention: business day D's marts of a group are due at ``deadline`` (10:00) ``days_after`` (1) days
later in ``[sla] timezone`` (Europe/London): by default every mart of D by 10:00 on D+1. A group is ready
when each of its tasks is: ``MartsReady`` by its ``ecommerce_mart.marts_ready`` record, any other task by
its marker's ``published_at``. Evidence comes from the feed landing area (freshness), Luigi's task history
(failed tasks, median durations) and the remaining tasks of the day's graph.
"""

from __future__ import annotations

import datetime as dt
import logging

import luigi
import pandas as pd

from pipeline import alerts, config, fs, history
from pipeline import warehouse as wh
from pipeline.io import crash
from pipeline.tasks import dw, ingest
from pipeline.tasks.base import write_marker, writes_warehouse
from pipeline.tasks.dw import MART, dw_spark, marker
from pipeline.tasks.quality import feeds, sla
from pipeline.transforms import sla as rules
from pipeline.transforms.alerting import Alert

log = logging.getLogger(__name__)

wh.SCHEMAS[MART]["sla_status"] = {
    "grain": "one row per business day and mart group: its latest SLA evaluation",
    "columns": """mart_group STRING, deadline_at TIMESTAMP, state STRING, state_since TIMESTAMP, ready_at TIMESTAMP,
        expected_finish_at TIMESTAMP, late_feeds STRING, late_tasks STRING, tasks_left INT, evidence STRING,
        checked_at TIMESTAMP, invoice_date DATE""",
}
STATUS_COLUMNS = ["mart_group", "deadline_at", "state", "state_since", "ready_at", "expected_finish_at", "late_feeds",
                  "late_tasks", "tasks_left", "evidence", "checked_at", "invoice_date"]


def _utc_minute() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)


TASKS = {t.__name__: t for t in (dw.MartsReady, *dw.DATE_MARTS, *dw.CUSTOMER_MARTS, dw.FactSales, dw.DimCustomer)}


def monitored_days(now: dt.datetime, cfg: sla) -> list[dt.date]:
    """Business days whose deadline of some group is ahead, or passed less than ``lookback_hours`` ago."""
    today = rules.business_date(now, cfg.timezone)
    longest = max(int(g["days_after"]) for g in cfg.groups.values())
    days = []
    for back in range(longest + 2, -1, -1):
        day = today - dt.timedelta(days=back)
        expected = ingest.is_trading_day(day) or not config.replay().enabled
        if expected and any(_deadline(day, g, cfg) >= now - dt.timedelta(hours=cfg.lookback_hours)
                            for g in cfg.groups.values()):
            days.append(day)
    return days


def _deadline(day: dt.date, group, cfg: sla) -> dt.datetime:
    return rules.deadline(day, dt.time.fromisoformat(group["deadline"]), int(group["days_after"]), cfg.timezone)


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


def ready_times(spark, days: list[dt.date], cfg: sla) -> pd.DataFrame:
    """When each group was ready for each day: the latest of its tasks' ready times (none if one is missing)."""
    marts_ready = {r.invoice_date: r.ready_at for r in dw.read_dates(spark, f"{MART}.marts_ready", days).collect()}
    rows = []
    for name, group in cfg.groups.items():
        for day in days:
            times = []
            for family in group["tasks"]:
                if family == "MartsReady":
                    times.append(marts_ready.get(day))
                else:
                    out = TASKS[family](day).output()
                    times.append(pd.Timestamp(fs.read_json(out.path).get("published_at")) if out.exists() else None)
            if all(t is not None and not pd.isna(t) for t in times):
                rows.append((day, name, max(times)))
    return pd.DataFrame(rows, columns=["invoice_date", "mart_group", "ready_at"])


def evaluate(spark, now: dt.datetime, cfg: sla) -> pd.DataFrame:
    """The SLA state of every monitored day and group at ``now``."""
    days = monitored_days(now, cfg)
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
        events = history.events(cfg.history_path, wall - dt.timedelta(days=cfg.history_days))
    except FileNotFoundError as exc:
        log.warning("%s: expected finishes use [sla] default_task_s", exc)
        events = pd.DataFrame(columns=history.COLUMNS)
    runs = rules.task_runs(events)
    return rules.sla_states(groups, ready_times(spark, days, cfg), late, remaining, runs, now, cfg.default_task_s)


def alerts_for(status: pd.DataFrame) -> list[Alert]:
    """``AT_RISK`` before the deadline and ``MISSED`` after it, once per day, group and state."""
    out = []
    for s in status.itertuples():
        if s.state not in ("AT_RISK", "MISSED"):
            continue
        out.append(Alert(kind="sla", severity="error" if s.state == "MISSED" else "warn",
                         subject=f"{s.mart_group} of {s.invoice_date} {s.state} "
                                 f"(deadline {s.deadline_at:%Y-%m-%d %H:%M} UTC)",
                         body=s.evidence, dedupe_key=f"sla:{s.mart_group}:{s.invoice_date}", condition=s.state))
    return out


class SlaMonitor(luigi.Task):
    """Evaluate the SLA of the monitored days at ``now``, record ``ecommerce_mart.sla_status``, alert.

    Meant to be called by a scheduler (cron) every few minutes: each call is a new task (``now`` defaults
    to the current minute, UTC) with its own marker, so a rerun of the same minute does nothing.
    """

    now = luigi.DateMinuteParameter(default=_utc_minute(), description="evaluation time, UTC")
    resources = {"alerts_writer": 1}

    def output(self):
        return marker("sla", f"{self.now:%Y-%m-%dT%H%M}.json")

    @writes_warehouse
    def run(self):
        cfg = sla()
        spark = dw_spark()
        status = evaluate(spark, self.now, cfg)
        table = f"{MART}.sla_status"
        previous = wh.read(spark, table).toPandas()
        if len(status):
            since = previous.set_index(["invoice_date", "mart_group"])[["state", "state_since"]] \
                if len(previous) else pd.DataFrame(columns=["state", "state_since"])
            status["state_since"] = [
                since.loc[(r.invoice_date, r.mart_group), "state_since"]
                if (r.invoice_date, r.mart_group) in since.index
                and since.loc[(r.invoice_date, r.mart_group), "state"] == r.state else self.now
                for r in status.itertuples()]
            keep = wh.read(spark, table).where(~dw._dates_col("invoice_date", list(status["invoice_date"].unique())))
            new = spark.createDataFrame(status[STATUS_COLUMNS].astype({"tasks_left": "int32"}),
                                        wh.SCHEMAS[MART]["sla_status"]["columns"])
            rows = keep.unionByName(new).cache()
            rows.count()
            wh.replace_table(spark, rows.coalesce(1), table)
            rows.unpersist()
        crash.point("sla.published")
        for s in status.itertuples():
            log.info("SLA %s %s: %s (%s)", s.mart_group, s.invoice_date, s.state, s.evidence)
        sent = alerts.notify(spark, alerts_for(status), self.now)
        write_marker(self.output(), {
            "now": self.now, "states": {f"{s.mart_group} {s.invoice_date}": s.state for s in status.itertuples()},
            "alerts_sent": len([r for r in sent if r["delivery_status"] == "SENT"])})

