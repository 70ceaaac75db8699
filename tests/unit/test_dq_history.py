"""A date's data-quality history: a run repeating the latest run's outcomes is recorded once."""

import datetime as dt

import pytest

from pipeline.tasks.quality import dq_history

DAY = dt.date(2010, 12, 1)
SCHEMA = ("run_id STRING, check_name STRING, check_type STRING, table_name STRING, severity STRING, status STRING, "
          "failing_rows BIGINT, sample_keys STRING, checked_at TIMESTAMP, invoice_date DATE")


def run(run_id, *outcomes):
    at = dt.datetime(2026, 11, 27, int(run_id[-1]))
    return [(run_id, name, "unique", "t", "error", status, n, "", at, DAY) for name, status, n in outcomes]


@pytest.mark.parametrize("earlier, new, kept_runs", [
    ([], run("r1", ("a", "PASS", 0)), ["r1"]),
    (run("r1", ("a", "PASS", 0), ("b", "PASS", 0)), run("r2", ("a", "PASS", 0), ("b", "PASS", 0)), ["r2"]),
    (run("r1", ("a", "FAIL", 3), ("b", "PASS", 0)), run("r2", ("a", "PASS", 0), ("b", "PASS", 0)), ["r1", "r2"]),
    (run("r1", ("a", "FAIL", 3)) + run("r2", ("a", "FAIL", 4)), run("r3", ("a", "FAIL", 4)), ["r1", "r3"]),
    (run("r1", ("a", "PASS", 0)) + run("r2", ("a", "FAIL", 4)), run("r3", ("a", "PASS", 0)), ["r1", "r2", "r3"]),
    (run("r1", ("a", "PASS", 0)), run("r2", ("a", "PASS", 0), ("b", "PASS", 0)), ["r1", "r2"]),
])
def test_a_run_repeating_the_latest_outcome_replaces_it(spark, earlier, new, kept_runs):
    got = dq_history(spark.createDataFrame(earlier, SCHEMA), spark.createDataFrame(new, SCHEMA))
    assert sorted({r.run_id for r in got.collect()}) == kept_runs
    assert got.count() == sum(len(v) for v in (earlier, new)) - sum(
        1 for r in earlier if r[0] not in kept_runs)


def test_each_date_keeps_its_own_history_when_many_dates_are_published_together(spark):
    other = DAY + dt.timedelta(days=1)

    def on(day, rows):
        return [r[:-1] + (day,) for r in rows]

    # DAY's latest run r2 is repeated by r3, the other date's only run r1 by r4: each is replaced
    earlier = (on(DAY, run("r1", ("a", "FAIL", 3)) + run("r2", ("a", "PASS", 0)))
               + on(other, run("r1", ("a", "PASS", 0))))
    new = on(DAY, run("r3", ("a", "PASS", 0))) + on(other, run("r4", ("a", "PASS", 0)))
    got = dq_history(spark.createDataFrame(earlier, SCHEMA), spark.createDataFrame(new, SCHEMA))
    assert sorted((r.invoice_date, r.run_id) for r in got.collect()) == [
        (DAY, "r1"), (DAY, "r3"), (other, "r4")]
