"""The warehouse operated unattended on a replay clock, against real services (metastore, HiveServer2, luigid,
an aiosmtpd SMTP server for the alerts).

``python -m pipeline simulate`` lands each feed at its time, runs the scheduler's own loop through luigid and
the SLA monitor every 15 simulated minutes. A products file landing at 11:30 instead of 06:00 makes its day
AT_RISK, then ON_TRACK again, then MET, with one alert per state change; the next simulated day is MET and its
runs leave the earlier day's partitions and first ready time as they were. Then a run whose HiveServer2 is down
when its marts are declared ready succeeds through Luigi's retries once HiveServer2 is back.
"""

import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from pipeline import config
from tests.integration.conftest import ROOT, separate_stack, smtp_server

pytestmark = pytest.mark.integration

PORTS = {"metastore": 22083, "hiveserver2": 22000, "luigid": 22082}
LATE_DAY, NEXT_DAY, RETRY_DAY = "2010-12-02", "2010-12-03", "2010-12-05"
PARTITIONED = ["ecommerce_dw.fact_sales", "ecommerce_dw.customer_sales_daily", "ecommerce_mart.mart_daily_sales",
               "ecommerce_mart.mart_hourly_sales", "ecommerce_mart.mart_product_performance",
               "ecommerce_mart.dq_results", "ecommerce_mart.anomalies"]


@pytest.fixture(scope="module")
def operated(tmp_path_factory):
    with smtp_server() as (inbox, smtp_port):
        overlay = (f"[smtp]\nhost = 127.0.0.1\nport = {smtp_port}\nno_tls = true\n"
                   "[email]\nreceiver = ops@example.com\nsender = dw@example.com\n"
                   "[alerts]\nretry_delay_s = 0.2\n"
                   "[scheduler]\nretry_delay = 10\nretry_count = 12\n")
        with separate_stack(tmp_path_factory, "operated", PORTS, overlay) as stack:
            yield stack, inbox


def pipeline(stack, *args, env=None, timeout=2400) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env or stack.env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"pipeline {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def simulate(stack, *args) -> dict:
    proc = pipeline(stack, "simulate", *args)
    report = proc.stdout.strip().splitlines()[-1].removeprefix("report: ")
    with open(report) as fh:
        return {row["day"]: row for row in json.load(fh)["report"]}


def day_snapshot(stack, day: str) -> dict:
    """The day's partition locations and rows in every date-partitioned table, and its marts_ready records."""
    out = {}
    for table in PARTITIONED:
        described = stack.query(f"DESCRIBE FORMATTED {table} PARTITION (invoice_date = '{day}')")
        location = [r[1] for r in described if r[0] and r[0].strip() == "Location"]
        out[table] = (location, Counter(stack.query(f"SELECT * FROM {table} WHERE invoice_date = '{day}'")))
    out["marts_ready"] = sorted(stack.query(f"SELECT * FROM ecommerce_mart.marts_ready WHERE invoice_date = '{day}'"))
    return out


def subjects(inbox, day: str) -> list[str]:
    return [m["Subject"] for _, m in inbox.messages if f"all_marts of {day}" in m["Subject"]]


@pytest.fixture(scope="module")
def late_day(operated):
    stack, inbox = operated
    report = simulate(stack, "--start", LATE_DAY, "--days", "1", "--late", f"products@{LATE_DAY}=11:30")
    return report, day_snapshot(stack, LATE_DAY)


def test_a_late_products_file_is_at_risk_then_on_track_then_met(late_day):
    report, _ = late_day
    row = report[LATE_DAY]
    assert row["feeds"] == f"products@{LATE_DAY} late 12-02 11:30"
    states = [s.split(" ", 1) for s in row["sla_history"].split(" > ")]
    assert [s for s, _ in states] == ["ON_TRACK", "AT_RISK", "ON_TRACK", "MET"]
    assert "12-02 06:30" <= states[1][1] <= "12-02 07:00"  # products due 06:00, 30 minutes' tolerance
    assert states[2][1] == "12-02 11:30"                    # seen by the evaluation of the minute it landed
    assert row["sla"] == "MET" and "12-03 00:15" < row["first_ready_at"] < "12-03 10:00"
    assert row["revisions"] == 0
    assert row["dq_results"] > 0 and row["dq_failed"] == 0 and row["anomalies"] > 0


def test_one_alert_per_state_change(late_day, operated):
    report, _ = late_day
    stack, inbox = operated
    assert [a.split(" ")[0] for a in report[LATE_DAY]["alerts"]] == ["AT_RISK", "ON_TRACK"]
    mails = subjects(inbox, LATE_DAY)
    assert len(mails) == 2, mails
    assert "WARN" in mails[0] and "AT_RISK" in mails[0]
    assert "INFO" in mails[1] and "ON_TRACK" in mails[1]
    recorded = stack.query("SELECT alert_condition, delivery_status FROM ecommerce_mart.alerts "
                           f"WHERE dedupe_key = 'sla:all_marts:{LATE_DAY}' ORDER BY created_at")
    assert [tuple(r) for r in recorded] == [("AT_RISK", "SENT"), ("ON_TRACK", "SENT")]


def test_the_next_day_is_met_and_leaves_the_earlier_day_untouched(late_day, operated):
    _, before = late_day
    stack, inbox = operated
    report = simulate(stack, "--start", NEXT_DAY, "--days", "1")
    row = report[NEXT_DAY]
    assert row["feeds"] == "on time"
    assert row["sla_history"].split(" > ")[0].startswith("ON_TRACK")
    assert row["sla"] == "MET" and row["alerts"] == [] and not subjects(inbox, NEXT_DAY)
    assert row["dq_results"] > 0 and row["anomalies"] > 0
    after = day_snapshot(stack, LATE_DAY)
    for table, published in before.items():
        assert after[table] == published, f"{table} of {LATE_DAY} changed"


def test_a_task_failing_while_hiveserver2_restarts_is_retried_within_the_run(operated):
    stack, _ = operated
    stop_hs2 = ("from pipeline import config; from pipeline.engine import services; config.load_profile(); "
                "[s.stop() for s in services.all_services() if s.name == 'hiveserver2']")
    subprocess.run([sys.executable, "-c", stop_hs2], cwd=ROOT, env=stack.env, check=True, timeout=120)
    overlay = stack.state / "unmanaged.cfg"
    overlay.write_text(open(stack.env[config.OVERLAY_ENV]).read() + "\n[services]\nmanage = false\n")
    unmanaged = dict(stack.env, **{config.OVERLAY_ENV: str(overlay)})
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--start", RETRY_DAY, "--end", RETRY_DAY],
                           cwd=ROOT, env=unmanaged, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = stack.state / "logs" / "pipeline.log"
    deadline = time.monotonic() + 1200
    while "MartsNotServed" not in _tail(log) and "TTransportException" not in _tail(log):
        assert run.poll() is None, f"the run ended before MartsReady met the stopped HiveServer2:\n{run.stdout.read()}"
        assert time.monotonic() < deadline
        time.sleep(2)
    stack.services("start")
    out, _ = run.communicate(timeout=1200)
    assert run.returncode == 0, out[-4000:]
    assert "failed tasks but they all succeeded in a retry" in out
    assert stack.query(f"SELECT revision FROM ecommerce_mart.marts_ready WHERE invoice_date = '{RETRY_DAY}'") == [(0,)]


def _tail(path) -> str:
    try:
        return path.read_text()[-200_000:]
    except FileNotFoundError:
        return ""
