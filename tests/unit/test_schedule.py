"""When the scheduler runs the pipeline and the SLA monitor (pure logic of ``pipeline.runtime.schedule``)."""

import datetime as dt

import pytest

from pipeline.runtime import schedule

RUN_AT = schedule.parse_times("00:15,04:15,06:15,08:15,12:15,16:15,20:15")


def at(day, hh_mm):
    return dt.datetime.combine(dt.date(2026, 11, day), dt.time.fromisoformat(hh_mm))


@pytest.mark.parametrize(("previous", "now", "sla_every", "expected"), [
    (at(27, "06:14"), at(27, "06:14:30"), 15, []),                 # nothing due within the minute
    (at(27, "06:14:40"), at(27, "06:15:10"), 15, ["run", "sla"]),  # the masters' run, and an SLA slot
    (at(27, "06:14:40"), at(27, "06:15:10"), 60, ["run"]),         # the SLA monitor hourly: not at :15
    (at(27, "06:15"), at(27, "06:15:30"), 15, []),                 # a time is due once: (previous, now]
    (at(27, "08:29:50"), at(27, "08:30:20"), 15, ["sla"]),         # the SLA monitor every 15 minutes
    (at(27, "08:59:50"), at(27, "09:00:20"), 60, ["sla"]),
    (at(27, "23:59:50"), at(28, "00:15:20"), 15, ["run", "sla"]),  # over midnight (a slow tick)
    (at(27, "13:00"), at(27, "16:20"), 15, ["run", "sla"]),        # a long pause runs each job once
])
def test_jobs_due_between_two_ticks(previous, now, sla_every, expected):
    assert schedule.due(previous, now, RUN_AT, sla_every) == expected


def test_a_bad_timetable_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[schedule\] run_at: '6:15am' is not"):
        schedule.parse_times("6:15am")


BACKUP_AT = schedule.parse_times("05:30", "[backup] daily_at")


@pytest.mark.parametrize(("previous", "now", "expected"), [
    (at(27, "05:29:50"), at(27, "05:30:20"), ["backup", "sla"]),     # the daily backup, before anything else
    (at(27, "05:30"), at(27, "05:30:30"), []),                       # once a day: (previous, now]
    (at(27, "06:14:40"), at(27, "06:15:10"), ["run", "sla"]),        # not at the runs' times
    (at(26, "23:00"), at(27, "06:20"), ["backup", "run", "sla"]),    # a long pause: the backup first, once
    (at(27, "05:31"), at(28, "05:29"), ["run", "sla"]),              # a whole day minus the minute: no backup
])
def test_the_catalog_backup_is_due_once_a_day(previous, now, expected):
    assert schedule.due(previous, now, RUN_AT, 15, BACKUP_AT) == expected


def test_a_bad_backup_time_names_its_setting():
    with pytest.raises(ValueError, match=r"\[backup\] daily_at: '5h30' is not"):
        schedule.parse_times("5h30", "[backup] daily_at")


@pytest.mark.parametrize(("now", "expected"), [
    (at(27, "06:14"), at(27, "06:15")),    # the masters' run (and an SLA slot)
    (at(27, "06:15"), at(27, "06:30")),    # the next SLA slot
    (at(27, "23:50"), at(28, "00:00")),    # over midnight
])
def test_the_next_moment_a_job_falls_due(now, expected):
    assert schedule.next_due(now, RUN_AT, 15) == expected


def test_a_job_due_while_the_previous_one_of_its_kind_runs_is_skipped_not_queued():
    import threading

    release, calls = threading.Event(), []

    def slow_run():
        calls.append("run")
        return release.wait(10)

    clock = [dt.datetime(2026, 11, 27, 6, 15)]
    scheduler = schedule.Scheduler({"run": slow_run, "sla": lambda: calls.append("sla") or True},
                                   lambda: clock[0], dt.UTC, RUN_AT, 15)
    scheduler.start("run")
    clock[0] = dt.datetime(2026, 11, 27, 8, 15)
    scheduler.tick(at(27, "08:14"), at(27, "08:15"))  # the 08:15 run is due while the 06:15 one goes on
    release.set()
    scheduler.join()
    assert calls.count("run") == 1 and calls.count("sla") == 1  # the SLA monitor ran meanwhile
    assert [(s["job"], s["running_since"]) for s in scheduler.skipped] == [("run", dt.datetime(2026, 11, 27, 6, 15))]
    assert sorted(f["job"] for f in scheduler.finished) == ["run", "sla"]


def test_a_failing_job_is_recorded_and_does_not_stop_the_scheduler():
    def broken():
        raise RuntimeError("metastore down")

    scheduler = schedule.Scheduler({"run": broken}, lambda: dt.datetime(2026, 11, 27), dt.UTC, RUN_AT, 15)
    scheduler.start("run")
    scheduler.join()
    assert [(f["job"], f["ok"]) for f in scheduler.finished] == [("run", False)]
