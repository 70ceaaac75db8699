"""SLA states of each business day's marts from the feed schedule, Luigi's task history and the ready record.

Pure pandas transforms (the inputs are small: a few days, a few thousand history events). Times are naive
UTC; the business time zone only places the deadlines and feed arrivals.

States: ``MET`` (ready by the deadline), ``MISSED`` (ready after it, or not ready when it passed),
``AT_RISK`` (not ready, deadline ahead, and a feed is overdue, a task of the day failed, or the expected
finish from historical task durations is after the deadline), ``ON_TRACK`` (not ready, nothing says it
will be late).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from pipeline.transforms.alerting import Alert

RUN_ENDS = ("DONE", "FAILED")


def to_utc(local: dt.datetime, tz: str) -> dt.datetime:
    """A naive wall-clock time of ``tz`` as naive UTC."""
    return local.replace(tzinfo=ZoneInfo(tz)).astimezone(dt.UTC).replace(tzinfo=None)


def business_date(now_utc: dt.datetime, tz: str) -> dt.date:
    return now_utc.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz)).date()


def deadline(day: dt.date, at: dt.time, days_after: int, tz: str) -> dt.datetime:
    """Naive UTC deadline of business day ``day``: ``at`` local time, ``days_after`` days later."""
    return to_utc(dt.datetime.combine(day + dt.timedelta(days=days_after), at), tz)


def feed_schedule(days: list[dt.date], window_hours: tuple[int, ...], masters_at: dt.time, tz: str) -> pd.DataFrame:
    """When each feed of each day is due: a transaction window ``[h, h+4)`` at its end, the product and country
    snapshots at ``masters_at`` (06:00). Columns: invoice_date, feed, window, expected_at."""
    rows = []
    for day in days:
        for h in window_hours:
            end = dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=h + 4)
            rows.append((day, "transactions", h, to_utc(end, tz)))
        for feed in ("products", "countries"):
            rows.append((day, feed, -1, to_utc(dt.datetime.combine(day, masters_at), tz)))
    return pd.DataFrame(rows, columns=["invoice_date", "feed", "window", "expected_at"])


def late_feeds(expected: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """Feeds not landed although due for longer than their tolerance.

    ``expected``: invoice_date, feed, window, expected_at, landed (bool), tolerance_minutes.
    Adds ``overdue_minutes`` (since ``expected_at``).
    """
    due = expected["expected_at"] + pd.to_timedelta(expected["tolerance_minutes"], unit="m")
    late = expected[~expected["landed"].astype(bool) & (due <= now)].copy()
    late["overdue_minutes"] = ((now - late["expected_at"]).dt.total_seconds() // 60).astype(int)
    return late.reset_index(drop=True)


def task_runs(events: pd.DataFrame) -> pd.DataFrame:
    """Split Luigi task history into runs: a ``RUNNING`` event and the ``DONE``/``FAILED`` event that ends it.

    luigid keeps one ``tasks`` row per task id and appends events to it on every rerun, so one row holds
    several runs. ``events``: task_row_id, task_family, task_date, event_name, ts (and event_id to order
    ties). A run still open has outcome ``RUNNING``; one followed by another kind of event (the worker
    died, the scheduler reset it) has outcome ``LOST``.
    """
    order = ["task_row_id", "ts"] + (["event_id"] if "event_id" in events else [])
    ev = events.sort_values(order).reset_index(drop=True)
    nxt = ev.groupby("task_row_id")[["event_name", "ts"]].shift(-1)
    starts = ev["event_name"] == "RUNNING"
    runs = ev.loc[starts, ["task_row_id", "task_family", "task_date"]].copy()
    runs["started_at"] = ev.loc[starts, "ts"]
    ended = nxt.loc[starts, "event_name"]
    runs["outcome"] = ended.where(ended.isin(RUN_ENDS), ended.notna().map({True: "LOST", False: "RUNNING"}))
    runs["finished_at"] = nxt.loc[starts, "ts"].where(ended.isin(RUN_ENDS))
    runs["duration_s"] = (runs["finished_at"] - runs["started_at"]).dt.total_seconds()
    return runs.reset_index(drop=True)


def expected_durations(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task family, the median duration of its successful runs: task_family, median_s, runs."""
    done = runs[runs["outcome"] == "DONE"]
    return done.groupby("task_family")["duration_s"].agg(median_s="median", runs="count").reset_index()


def failed_tasks(runs: pd.DataFrame) -> pd.DataFrame:
    """Tasks whose latest run failed: task_family, task_date, failed_at."""
    latest = runs.sort_values("started_at").groupby(["task_family", "task_date"]).tail(1)
    failed = latest[latest["outcome"] == "FAILED"]
    return failed.rename(columns={"finished_at": "failed_at"})[["task_family", "task_date", "failed_at"]]


def _fmt(ts) -> str:
    return "" if ts is None or pd.isna(ts) else f"{pd.Timestamp(ts):%Y-%m-%d %H:%M} UTC"


def sla_states(days: pd.DataFrame, ready: pd.DataFrame, late: pd.DataFrame, remaining: pd.DataFrame,
               runs: pd.DataFrame, now: dt.datetime, default_task_s: float) -> pd.DataFrame:
    """One row per business day and mart group with its state and the evidence for it.

    ``days``: invoice_date, mart_group, deadline_at. ``ready``: invoice_date, mart_group, ready_at (a time
    after ``now`` counts as not ready yet, so a replayed clock sees the past as it was). ``late``:
    ``late_feeds`` rows. ``remaining``: invoice_date, mart_group, task_family, task (name) of the group's
    tasks for the day that are not complete. ``runs``: ``task_runs`` of the history.
    The expected finish is ``now`` plus the median historical duration of every remaining task
    (``default_task_s`` for a task family never run); with an overdue feed it is unknown.
    """
    durations = expected_durations(runs).set_index("task_family")["median_s"] if len(runs) else pd.Series()
    failures = failed_tasks(runs) if len(runs) else pd.DataFrame(columns=["task_family", "task_date", "failed_at"])
    out = []
    for d in days.itertuples(index=False):
        r = ready[(ready["invoice_date"] == d.invoice_date) & (ready["mart_group"] == d.mart_group)]
        ready_at = r["ready_at"].max() if len(r) else None
        if ready_at is not None and (pd.isna(ready_at) or ready_at > now):
            ready_at = None
        feeds = late[late["invoice_date"] == d.invoice_date]
        todo = remaining[(remaining["invoice_date"] == d.invoice_date) & (remaining["mart_group"] == d.mart_group)]
        failed = failures[(failures["task_date"] == str(d.invoice_date))
                          & failures["task_family"].isin(set(todo["task_family"]))]
        left_s = float(sum(durations.get(f, default_task_s) for f in todo["task_family"]))
        finish = None if len(feeds) or ready_at is not None else now + dt.timedelta(seconds=left_s)
        late_feed_text = "; ".join(
            f"{f.feed}{'' if f.window < 0 else f' {f.window:02d}-{f.window + 4:02d}h'} of {f.invoice_date} due "
            f"{_fmt(f.expected_at)}, not landed ({f.overdue_minutes} min overdue)" for f in feeds.itertuples())
        late_task_text = "; ".join(f"{f.task_family}({f.task_date}) failed at {_fmt(f.failed_at)}"
                                   for f in failed.itertuples())
        if ready_at is not None:
            state = "MET" if ready_at <= d.deadline_at else "MISSED"
            evidence = f"ready at {_fmt(ready_at)}, deadline {_fmt(d.deadline_at)}"
        else:
            if now > d.deadline_at:
                state = "MISSED"
            elif len(feeds) or len(failed) or finish > d.deadline_at:
                state = "AT_RISK"
            else:
                state = "ON_TRACK"
            parts = [f"not ready at {_fmt(now)}, deadline {_fmt(d.deadline_at)}", late_feed_text, late_task_text]
            if finish is not None:
                parts.append(f"{len(todo)} tasks left, {left_s:.0f} s by median history: expected finish "
                             f"{_fmt(finish)}")
            evidence = "; ".join(p for p in parts if p)
        out.append({"invoice_date": d.invoice_date, "mart_group": d.mart_group, "deadline_at": d.deadline_at,
                    "state": state, "ready_at": ready_at, "expected_finish_at": finish,
                    "late_feeds": late_feed_text, "late_tasks": late_task_text, "tasks_left": len(todo),
                    "evidence": evidence, "checked_at": now})
    return pd.DataFrame(out, columns=["invoice_date", "mart_group", "deadline_at", "state", "ready_at",
                                      "expected_finish_at", "late_feeds", "late_tasks", "tasks_left", "evidence",
                                      "checked_at"])


def alerts_for(status: pd.DataFrame, now: dt.datetime) -> list[Alert]:
    """One alert per state change: ``AT_RISK`` before the deadline, ``MISSED`` after it (offered at every
    evaluation while the state lasts, so a failed delivery is tried again; sent once), and the return to
    ``ON_TRACK``/``MET`` of a day that was alerted on (offered when the state changes, at ``now``)."""
    out = []
    for s in status.itertuples():
        subject = f"{s.mart_group} of {s.invoice_date} {s.state} (deadline {s.deadline_at:%Y-%m-%d %H:%M} UTC)"
        key = f"sla:{s.mart_group}:{s.invoice_date}"
        if s.state in ("AT_RISK", "MISSED"):
            out.append(Alert(kind="sla", severity="error" if s.state == "MISSED" else "warn", subject=subject,
                             body=s.evidence, dedupe_key=key, condition=s.state, repeat=False))
        elif s.state_since == now:
            out.append(Alert(kind="sla", severity="info", subject=subject, body=s.evidence, dedupe_key=key,
                             condition=s.state, repeat=False, resolves=("AT_RISK", "MISSED")))
    return out


def state_changes(status: pd.DataFrame, previous: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """``status`` with ``state_since``: kept from ``previous`` (the recorded statuses) while the state is the
    same, ``now`` when it changed."""
    since = previous.set_index(["invoice_date", "mart_group"])[["state", "state_since"]] \
        if len(previous) else pd.DataFrame(columns=["state", "state_since"])
    out = status.copy()
    out["state_since"] = [
        since.loc[(r.invoice_date, r.mart_group), "state_since"]
        if (r.invoice_date, r.mart_group) in since.index
        and since.loc[(r.invoice_date, r.mart_group), "state"] == r.state else now
        for r in status.itertuples()]
    return out
