"""The anomaly review without Spark: the lifecycle rule on pandas rows, and ``anomaly_review.set_status`` against an
in-memory metastore on a ``file://`` warehouse (log appended, the date's partition republished, under the lock)."""

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from pipeline.io import anomaly_review, arrow_tables, lock
from pipeline.transforms import anomaly_status as lifecycle
from tests.unit import fake_services

DAY = dt.date(2011, 1, 18)
T = dt.datetime(2011, 1, 19, 9)
ANOMALIES, LOG = "ecommerce_mart.anomalies", "ecommerce_mart.anomaly_status_log"
LOG_COLUMNS = ["line_id", "invoice_date", "status", "changed_by", "changed_at", "note"]


def status_log(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=LOG_COLUMNS)


@pytest.mark.parametrize("current, new, allowed", [
    ("NEW", "ACKNOWLEDGED", True), ("NEW", "FALSE_POSITIVE", True), ("NEW", "RESOLVED", True),
    ("ACKNOWLEDGED", "RESOLVED", True), ("ACKNOWLEDGED", "FALSE_POSITIVE", True),
    ("ACKNOWLEDGED", "NEW", False), ("RESOLVED", "ACKNOWLEDGED", False), ("FALSE_POSITIVE", "RESOLVED", False),
    ("NEW", "CLOSED", False),
])
def test_status_lifecycle(current, new, allowed):
    if allowed:
        lifecycle.check_transition(current, new)
    else:
        with pytest.raises(lifecycle.InvalidTransition, match=new):
            lifecycle.check_transition(current, new)


def test_the_latest_change_wins_a_tie_goes_to_the_later_log_row_and_unreviewed_lines_are_new():
    log = status_log(("a", DAY, "ACKNOWLEDGED", "alice", T, ""),
                     ("a", DAY, "FALSE_POSITIVE", "bob", T + dt.timedelta(hours=1), "wholesale"),
                     ("b", DAY, "ACKNOWLEDGED", "alice", T, ""), ("b", DAY, "RESOLVED", "carol", T, "same second"))
    flags = pd.DataFrame({"line_id": ["a", "b", "c", "a"], "metric": ["quantity"] * 3 + ["line_amount"],
                          "status": ["NEW"] * 4})
    out = lifecycle.apply_status(flags, log)
    shown = out[["line_id", "metric", "status", "status_changed_by"]].fillna("-").values.tolist()
    assert shown == [
        ["a", "quantity", "FALSE_POSITIVE", "bob"], ["b", "quantity", "RESOLVED", "carol"],
        ["c", "quantity", "NEW", "-"], ["a", "line_amount", "FALSE_POSITIVE", "bob"]]
    assert pd.isna(out["status_changed_at"][2]) and out["status_changed_at"][0] == T + dt.timedelta(hours=1)
    assert sorted(lifecycle.latest_changes(log)["note"]) == ["same second", "wholesale"]
    assert lifecycle.apply_status(flags, status_log())["status"].tolist() == ["NEW"] * 4


def flag(line_id: str, metric: str) -> dict:
    return {"line_id": line_id, "invoice_no": "536365", "stock_code": "85123A", "invoice_ts": T.replace(day=18),
            "customer_key": 17850, "quantity": 600, "unit_price_paid": Decimal("2.550"),
            "line_amount": Decimal("1530.000"), "metric": metric, "value": 600.0, "baseline_lines": 12,
            "baseline_median": 6.0, "baseline_spread": 1.0, "rule": "mad", "threshold": 3.5, "score": 594.0,
            "detected_at": T, "baseline_scope": "product"}


@pytest.fixture
def flagged(tmp_path, monkeypatch):
    """Two flagged lines of one date (the first on both metrics), nobody has reviewed them yet."""
    fake = fake_services.install(monkeypatch, tmp_path / "warehouse", [ANOMALIES, LOG])
    rows = pd.DataFrame([flag("a", "quantity"), flag("a", "line_amount"), flag("b", "quantity")])
    arrow_tables.replace_partition(lifecycle.apply_status(rows, status_log()), ANOMALIES, str(DAY))
    fake.calls.clear()
    return fake


def statuses() -> list:
    rows = arrow_tables.read(ANOMALIES, [str(DAY)])
    return rows[["line_id", "metric", "status", "status_changed_by"]].values.tolist()


def test_a_review_is_logged_then_its_date_republished_under_the_warehouse_lock(flagged, monkeypatch):
    held = []
    append = arrow_tables.append
    monkeypatch.setattr(arrow_tables, "append", lambda *a: held.append(lock._depth) or append(*a))
    change = anomaly_review.set_status("a", "ACKNOWLEDGED", "alice", "called the customer", invoice_date=DAY)
    assert held == [1]
    assert (change["from"], change["to"], change["invoice_date"]) == ("NEW", "ACKNOWLEDGED", str(DAY))
    steps = [c[0] if c[0] != "crash" else c[1] for c in flagged.calls]
    assert steps == ["publish.written", "alter_table", "publish.swapped", "anomaly.log_published",
                     "publish.written", "alter_partitions", "publish.swapped"]
    assert statuses() == [["a", "quantity", "ACKNOWLEDGED", "alice"], ["a", "line_amount", "ACKNOWLEDGED", "alice"],
                          ["b", "quantity", "NEW", None]]
    logged = arrow_tables.read(LOG)
    assert logged[["line_id", "invoice_date", "status", "changed_by", "note"]].values.tolist() == [
        ["a", DAY, "ACKNOWLEDGED", "alice", "called the customer"]]
    assert anomaly_review.describe_change(change) == (f"anomaly a ({DAY}): NEW -> ACKNOWLEDGED by alice at "
                                                      f"{change['at']} UTC")


def test_the_line_is_found_without_its_date(flagged):
    assert anomaly_review.set_status("b", "FALSE_POSITIVE", "bob")["invoice_date"] == str(DAY)
    assert statuses()[2] == ["b", "quantity", "FALSE_POSITIVE", "bob"]


class Died(Exception):
    pass


def test_a_change_logged_by_a_call_that_died_before_republishing_is_not_logged_twice(flagged, monkeypatch):
    def die_after_the_log(name):
        if name == "anomaly.log_published":
            raise Died(name)

    monkeypatch.setattr("pipeline.io.crash.point", die_after_the_log)
    with pytest.raises(Died):
        anomaly_review.set_status("a", "RESOLVED", "carol", "refunded", invoice_date=DAY)
    assert statuses()[0][2] == "NEW"
    first_at = arrow_tables.read(LOG)["changed_at"][0]
    change = anomaly_review.set_status("a", "RESOLVED", "carol", "refunded", invoice_date=DAY)
    assert len(arrow_tables.read(LOG)) == 1 and change["at"] == f"{first_at:%Y-%m-%d %H:%M:%S}"
    assert statuses()[0] == ["a", "quantity", "RESOLVED", "carol"]


def test_unknown_lines_and_forbidden_changes_are_clear_errors(flagged):
    unknown = anomaly_review.UnknownAnomaly
    with pytest.raises(unknown, match="no flagged line with id 'zzz' in ecommerce_mart.anomalies"):
        anomaly_review.set_status("zzz", "ACKNOWLEDGED", "alice")
    with pytest.raises(unknown, match=f"no flagged line with id 'b' .* on {DAY + dt.timedelta(1)}"):
        anomaly_review.set_status("b", "ACKNOWLEDGED", "alice", invoice_date=DAY + dt.timedelta(1))
    anomaly_review.set_status("b", "RESOLVED", "alice")
    with pytest.raises(lifecycle.InvalidTransition, match="an anomaly in status RESOLVED cannot become ACKNOWLEDGED"):
        anomaly_review.set_status("b", "ACKNOWLEDGED", "alice")
    with pytest.raises(lifecycle.InvalidTransition, match="say who changes the status"):
        anomaly_review.set_status("a", "ACKNOWLEDGED", " ")
    assert len(arrow_tables.read(LOG)) == 1
