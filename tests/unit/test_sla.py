"""SLA states from synthetic task-history rows, feed schedules and ready records (no services)."""

import datetime as dt

import pandas as pd
import pytest

from pipeline.transforms import sla

DAY = dt.date(2010, 12, 6)
DEADLINE = dt.datetime(2010, 12, 7, 10, 0)  # 10:00 London = 10:00 UTC in December
NO_FEEDS = pd.DataFrame(columns=["invoice_date", "feed", "window", "expected_at", "overdue_minutes"])
NO_READY = pd.DataFrame(columns=["invoice_date", "mart_group", "ready_at"])
NO_TASKS = pd.DataFrame(columns=["invoice_date", "mart_group", "task_family", "task"])


def events(*rows):
    """(task row, family, date, event, 'HH:MM:SS' on 2026-11-27)"""
    return pd.DataFrame(
        [(i, row, fam, d, ev, pd.Timestamp(f"2026-11-27 {t}")) for i, (row, fam, d, ev, t) in enumerate(rows)],
        columns=["event_id", "task_row_id", "task_family", "task_date", "event_name", "ts"])


HISTORY = events(
    (1, "FactSales", "2010-12-01", "PENDING", "08:00:00"), (1, "FactSales", "2010-12-01", "RUNNING", "08:00:10"),
    (1, "FactSales", "2010-12-01", "DONE", "08:10:10"),
    (2, "MartsReady", "2010-12-01", "PENDING", "08:00:00"), (2, "MartsReady", "2010-12-01", "RUNNING", "08:20:00"),
    (2, "MartsReady", "2010-12-01", "DONE", "08:50:00"),
)


def days():
    return pd.DataFrame([(DAY, "all_marts", DEADLINE)], columns=["invoice_date", "mart_group", "deadline_at"])


def remaining(*families):
    return pd.DataFrame([(DAY, "all_marts", f, f"{f}(date={DAY})") for f in families], columns=NO_TASKS.columns)


def state(now, ready=NO_READY, late=NO_FEEDS, todo=NO_TASKS, history=HISTORY):
    out = sla.sla_states(days(), ready, late, todo, sla.task_runs(history), now, default_task_s=60)
    assert len(out) == 1
    return out.iloc[0]


def test_luigi_reruns_of_one_task_row_are_split_by_their_events():
    history = events(
        (7, "ProductsSnapshot", "2010-12-06", "PENDING", "06:00:00"),
        (7, "ProductsSnapshot", "2010-12-06", "RUNNING", "06:00:05"),
        (7, "ProductsSnapshot", "2010-12-06", "FAILED", "06:00:35"),
        (7, "ProductsSnapshot", "2010-12-06", "PENDING", "06:05:00"),
        (7, "ProductsSnapshot", "2010-12-06", "RUNNING", "06:05:01"),
        (7, "ProductsSnapshot", "2010-12-06", "DONE", "06:06:01"),
        (8, "FactSales", "2010-12-06", "RUNNING", "06:07:00"),
    )
    runs = sla.task_runs(history)
    assert list(zip(runs["task_row_id"], runs["outcome"], runs["duration_s"].fillna(-1), strict=True)) == [
        (7, "FAILED", 30.0), (7, "DONE", 60.0), (8, "RUNNING", -1)]
    assert sla.failed_tasks(runs).empty  # its latest run succeeded
    assert sla.expected_durations(runs).set_index("task_family")["median_s"].to_dict() == {"ProductsSnapshot": 60.0}


def test_met_when_ready_before_the_deadline():
    ready = pd.DataFrame([(DAY, "all_marts", dt.datetime(2010, 12, 7, 8, 30))], columns=NO_READY.columns)
    row = state(dt.datetime(2010, 12, 7, 9, 0), ready=ready)
    assert row["state"] == "MET"
    assert row["ready_at"] == dt.datetime(2010, 12, 7, 8, 30)


def test_missed_when_ready_after_the_deadline():
    ready = pd.DataFrame([(DAY, "all_marts", dt.datetime(2010, 12, 7, 10, 5))], columns=NO_READY.columns)
    assert state(dt.datetime(2010, 12, 7, 11, 0), ready=ready)["state"] == "MISSED"


def test_missed_when_not_ready_once_the_deadline_passed():
    row = state(dt.datetime(2010, 12, 7, 10, 1), todo=remaining("MartsReady"))
    assert row["state"] == "MISSED"
    assert "not ready at 2010-12-07 10:01 UTC, deadline 2010-12-07 10:00 UTC" in row["evidence"]


def test_a_ready_time_after_now_is_not_ready_yet():
    ready = pd.DataFrame([(DAY, "all_marts", dt.datetime(2026, 11, 27, 8, 0))], columns=NO_READY.columns)
    assert state(dt.datetime(2010, 12, 7, 9, 0), ready=ready, todo=remaining("MartsReady"))["state"] == "ON_TRACK"


def test_at_risk_with_a_late_feed_names_it():
    late = pd.DataFrame([(DAY, "products", -1, dt.datetime(2010, 12, 6, 6, 0), 180)], columns=NO_FEEDS.columns)
    row = state(dt.datetime(2010, 12, 6, 9, 0), late=late, todo=remaining("FactSales", "MartsReady"))
    assert row["state"] == "AT_RISK"
    assert row["late_feeds"] == "products of 2010-12-06 due 2010-12-06 06:00 UTC, not landed (180 min overdue)"
    assert pd.isna(row["expected_finish_at"])


def test_at_risk_from_historical_durations():
    # FactSales 600 s + MartsReady 1800 s by median history: from 09:30 that is 10:10, after the deadline
    row = state(dt.datetime(2010, 12, 7, 9, 30), todo=remaining("FactSales", "MartsReady"))
    assert row["state"] == "AT_RISK"
    assert row["expected_finish_at"] == dt.datetime(2010, 12, 7, 10, 10)
    assert "2 tasks left, 2400 s by median history" in row["evidence"]


def test_on_track_when_the_expected_finish_is_before_the_deadline():
    row = state(dt.datetime(2010, 12, 7, 9, 0), todo=remaining("FactSales", "MartsReady", "NeverRun"))
    assert row["state"] == "ON_TRACK"
    assert row["expected_finish_at"] == dt.datetime(2010, 12, 7, 9, 41)  # 600 + 1800 + 60 (default) s


def test_at_risk_when_a_task_of_the_day_failed():
    history = pd.concat([HISTORY, events((9, "ProductsSnapshot", str(DAY), "RUNNING", "09:00:00"),
                                         (9, "ProductsSnapshot", str(DAY), "FAILED", "09:00:30"))])
    row = state(dt.datetime(2010, 12, 6, 12, 0), todo=remaining("ProductsSnapshot", "MartsReady"), history=history)
    assert row["state"] == "AT_RISK"
    assert row["late_tasks"] == "ProductsSnapshot(2010-12-06) failed at 2026-11-27 09:00 UTC"


@pytest.mark.parametrize("day, window_end_utc, deadline_utc", [
    (dt.date(2010, 12, 6), dt.datetime(2010, 12, 6, 4, 0), dt.datetime(2010, 12, 7, 10, 0)),  # GMT
    (dt.date(2011, 7, 4), dt.datetime(2011, 7, 4, 3, 0), dt.datetime(2011, 7, 5, 9, 0)),  # BST
])
def test_feed_times_and_deadlines_are_london_wall_clock(day, window_end_utc, deadline_utc):
    schedule = sla.feed_schedule([day], (0, 4), dt.time(6), "Europe/London")
    first = schedule[(schedule["feed"] == "transactions") & (schedule["window"] == 0)].iloc[0]
    assert first["expected_at"] == window_end_utc
    assert sla.deadline(day, dt.time(10), 1, "Europe/London") == deadline_utc
    assert len(schedule) == 4  # two windows and two masters


@pytest.mark.parametrize("landed, minutes_after_due, is_late", [
    (False, 29, False), (False, 30, True), (True, 300, False)])
def test_a_feed_is_late_after_its_tolerance(landed, minutes_after_due, is_late):
    due = dt.datetime(2010, 12, 6, 6, 0)
    expected = pd.DataFrame([(DAY, "products", -1, due, landed, 30)],
                            columns=["invoice_date", "feed", "window", "expected_at", "landed", "tolerance_minutes"])
    late = sla.late_feeds(expected, due + dt.timedelta(minutes=minutes_after_due))
    assert len(late) == int(is_late)


def test_the_history_reads_the_same_from_a_file_path_and_from_a_database_url(tmp_path, luigi_config):
    """Rows written by luigid's own history recorder (``DbTaskHistory``), read back both ways."""
    import luigi.scheduler
    from luigi.db_task_history import DbTaskHistory

    from pipeline.io import history

    db = tmp_path / "task-history.db"
    luigi_config("task_history", "db_connection", f"sqlite:///{db}")
    recorder = DbTaskHistory()
    task = luigi.scheduler.Task("MartsReady_2010_12_06", "PENDING", [], family="MartsReady",
                                params={"date": "2010-12-06"})
    recorder.task_scheduled(task)
    recorder.task_started(task, "worker-1")
    recorder.task_finished(task, successful=True)
    recorder.engine.dispose()
    since = dt.datetime(2000, 1, 1)
    from_path = history.events(history.database(str(db)), since)
    from_url = history.events(history.database(f"sqlite:///{db}"), since)
    assert from_path["event_name"].tolist() == ["PENDING", "RUNNING", "DONE"]
    assert set(from_path["task_family"]) == {"MartsReady"} and set(from_path["task_date"]) == {"2010-12-06"}
    pd.testing.assert_frame_equal(from_path, from_url)
    with pytest.raises(ValueError, match="must not carry a password"):
        history.database("postgresql://luigi:secret@postgres:5432/luigi")


NOW = dt.datetime(2010, 12, 6, 11, 30)


def status(*rows):
    """(state, state_since) of DAY's group at NOW."""
    return pd.DataFrame([{"invoice_date": DAY, "mart_group": "all_marts", "deadline_at": DEADLINE, "state": s,
                          "state_since": since, "evidence": "..."} for s, since in rows])


@pytest.mark.parametrize(("state", "since", "expected"), [
    ("AT_RISK", NOW, [("AT_RISK", "warn", ())]),
    ("AT_RISK", NOW - dt.timedelta(hours=2), [("AT_RISK", "warn", ())]),  # offered again; sent once (repeat=False)
    ("MISSED", NOW, [("MISSED", "error", ())]),
    ("ON_TRACK", NOW, [("ON_TRACK", "info", ("AT_RISK", "MISSED"))]),      # a recovery, if it was alerted on
    ("ON_TRACK", NOW - dt.timedelta(hours=2), []),                         # no change: nothing to say
    ("MET", NOW, [("MET", "info", ("AT_RISK", "MISSED"))]),
])
def test_sla_alerts_are_offered_for_bad_states_and_for_changes_back(state, since, expected):
    alerts = sla.alerts_for(status((state, since)), NOW)
    assert [(a.condition, a.severity, a.resolves) for a in alerts] == expected
    assert all(a.dedupe_key == f"sla:all_marts:{DAY}" and not a.repeat for a in alerts)


def test_state_since_is_kept_while_the_state_lasts():
    earlier = dt.datetime(2010, 12, 6, 6, 30)
    previous = status(("AT_RISK", earlier))
    assert list(sla.state_changes(status(("AT_RISK", None)), previous, NOW)["state_since"]) == [earlier]
    assert list(sla.state_changes(status(("ON_TRACK", None)), previous, NOW)["state_since"]) == [NOW]
    assert list(sla.state_changes(status(("ON_TRACK", None)), previous.iloc[0:0], NOW)["state_since"]) == [NOW]
