"""Alert dedupe and batching (pure)."""

import datetime as dt

import pandas as pd
import pytest

from pipeline.transforms.alerting import Alert, compose, due, webhook_payload

NOW = dt.datetime(2010, 12, 6, 9, 0)
RENOTIFY = dt.timedelta(hours=4)
AT_RISK = Alert("sla", "warn", "all_marts of 2010-12-05 AT_RISK", "products not landed", "sla:all:2010-12-05",
                "AT_RISK")


def sent(*rows):
    return pd.DataFrame(rows, columns=["channel", "dedupe_key", "condition", "delivery_status", "alerted_at"])


def test_a_new_condition_is_sent():
    assert due([AT_RISK], sent(), "email", NOW, RENOTIFY) == [AT_RISK]


def test_the_same_condition_is_not_sent_again_before_the_renotify_interval():
    earlier = sent(("email", AT_RISK.dedupe_key, "AT_RISK", "SENT", NOW - dt.timedelta(minutes=5)))
    assert due([AT_RISK], earlier, "email", NOW, RENOTIFY) == []
    assert due([AT_RISK], earlier, "webhook", NOW, RENOTIFY) == [AT_RISK]  # per channel


def test_the_same_condition_is_sent_again_after_the_renotify_interval():
    earlier = sent(("email", AT_RISK.dedupe_key, "AT_RISK", "SENT", NOW - RENOTIFY))
    assert due([AT_RISK], earlier, "email", NOW, RENOTIFY) == [AT_RISK]


def test_a_changed_condition_is_sent_at_once():
    earlier = sent(("email", AT_RISK.dedupe_key, "AT_RISK", "SENT", NOW - dt.timedelta(minutes=5)))
    missed = Alert("sla", "error", "all_marts of 2010-12-05 MISSED", "", AT_RISK.dedupe_key, "MISSED")
    assert due([missed], earlier, "email", NOW, RENOTIFY) == [missed]


def test_a_failed_delivery_does_not_count_as_sent():
    earlier = sent(("email", AT_RISK.dedupe_key, "AT_RISK", "FAILED", NOW - dt.timedelta(minutes=5)))
    assert due([AT_RISK], earlier, "email", NOW, RENOTIFY) == [AT_RISK]


def test_candidates_with_one_key_alert_once():
    assert due([AT_RISK, AT_RISK], sent(), "email", NOW, RENOTIFY) == [AT_RISK]


def test_several_alerts_make_one_message_most_severe_first():
    dq = Alert("dq", "error", "data quality check x failed for 2010-12-05", "3 failing rows", "dq:x:2010-12-05",
               "FAIL")
    subject, body = compose([AT_RISK, dq], "[dw]")
    assert subject == "[dw] 2 alerts (1 error, 1 warn): data quality check x failed for 2010-12-05"
    assert body.index("ERROR data quality check x") < body.index("WARN all_marts of 2010-12-05 AT_RISK")
    assert compose([AT_RISK], "[dw]")[0] == "[dw] WARN: all_marts of 2010-12-05 AT_RISK"
    assert webhook_payload("s", "b") == {"text": "*s*\nb"}


def sla_alert(condition, repeat=False, resolves=()):
    return Alert("sla", "warn", f"all_marts of 2010-12-05 {condition}", "", "sla:all:2010-12-05", condition,
                 repeat=repeat, resolves=resolves)


def test_a_state_alert_is_not_repeated_however_long_the_state_lasts():
    earlier = sent(("email", "sla:all:2010-12-05", "AT_RISK", "SENT", NOW - dt.timedelta(days=2)))
    assert due([sla_alert("AT_RISK")], earlier, "email", NOW, RENOTIFY) == []


@pytest.mark.parametrize(("latest", "expected"), [
    (None, False),          # never alerted on: a day that stays healthy sends nothing
    ("AT_RISK", True),      # back to ON_TRACK after an AT_RISK alert: one recovery alert
    ("MISSED", True),
    ("ON_TRACK", False),    # the recovery was already sent
])
def test_a_recovery_is_sent_only_after_an_alert_it_resolves(latest, expected):
    rows = [] if latest is None else [("email", "sla:all:2010-12-05", latest, "SENT", NOW - dt.timedelta(hours=1))]
    recovery = sla_alert("ON_TRACK", resolves=("AT_RISK", "MISSED"))
    assert due([recovery], sent(*rows), "email", NOW, RENOTIFY) == ([recovery] if expected else [])
