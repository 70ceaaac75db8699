"""The transaction window parameter: one window, or several windows of a date."""

import datetime as dt

import pytest

from pipeline.tasks.ingest import TransactionBatch

DAY = dt.date(2010, 12, 2)


@pytest.mark.parametrize("given, hours", [
    ("8", [8]),
    ("20,4,8", [4, 8, 20]),
    ("4,4", [4]),
])
def test_windows_are_kept_in_the_order_of_the_day(given, hours):
    assert TransactionBatch(DAY, given).window_hours == hours


def test_a_single_window_keeps_its_task_id_and_marker():
    task = TransactionBatch(DAY, "8")
    assert task.task_id.startswith("TransactionBatch_2010_12_02_8_")
    assert task.output().path.endswith("/_markers/transactions/tx_20101202_08.json")


def test_several_windows_have_one_marker_per_window():
    batch = TransactionBatch.from_str_params({"date": "2010-12-02", "window": "12,4,8"})
    assert batch.window == "4,8,12"
    assert [t.path.rsplit("/", 1)[1] for t in batch.output()] == [
        "tx_20101202_04.json", "tx_20101202_08.json", "tx_20101202_12.json"]


@pytest.mark.parametrize("given", ["5", "", "4,24", "night"])
def test_a_window_that_is_not_a_feed_window_is_refused(given):
    with pytest.raises(ValueError, match="window must be one or more of 0, 4, 8, 12, 16, 20"):
        TransactionBatch(DAY, given)
