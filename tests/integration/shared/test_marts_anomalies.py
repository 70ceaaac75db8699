"""Anomaly detection on the second real day against the first (each product's own lines, or all lines for a
new product), and the status lifecycle from the CLI (without Spark), also when the CLI dies between the log and
the republished partition.

Expected flags come from a plain-Python modified z-score over the source lines (not from the pipeline).
Runs before ``test_marts_late_lines``, which adds a line to the first day.
"""

import os
import statistics
import subprocess
import sys
from collections import Counter
from decimal import Decimal

import pytest

from pipeline.io import crash, hs2
from tests.integration.conftest import ROOT, marker_path, run_luigi
from tests.integration.realdata import DAYS, loaded_rows

pytestmark = pytest.mark.integration
MODULE = "pipeline.tasks.quality"


def sale_values(day):
    """Per stock code: (quantity, amount) of the day's loaded sale lines (not cancelled, quantity > 0)."""
    out = {}
    for f in loaded_rows(day):
        if not f[0].startswith("C") and int(f[3]) > 0:
            out.setdefault(f[1], []).append((f[0], int(f[3]), int(f[3]) * Decimal(f[5])))
    return out


def expected_flags(threshold=3.5, min_history=5, min_spread=1.0):
    """Each product against its own first-day lines; a product with fewer than ``min_history`` of them (a new
    product) against every first-day sale line (the store-wide baseline)."""
    history, scored = sale_values(DAYS[0]), sale_values(DAYS[1])
    store = [b for lines in history.values() for b in lines]
    flags = Counter()
    for code, lines in scored.items():
        base = history.get(code, [])
        if len(base) < min_history:
            base = store
        for i, metric in ((1, "quantity"), (2, "line_amount")):
            values = [float(b[i]) for b in base]
            median = statistics.median(values)
            deviations = [abs(v - median) for v in values]
            mad = statistics.median(deviations)
            spread = max(mad / 0.6745 if mad > 0 else statistics.mean(deviations) * 1.2533, min_spread)
            for line in lines:
                if (float(line[i]) - median) / spread > threshold:
                    flags[(line[0], code, metric)] += 1
    return flags


@pytest.fixture(scope="module")
def detected(marts):
    run_luigi("DetectAnomalies", "--date", str(DAYS[1]), module=MODULE)
    return marts


def flagged_rows():
    return hs2.query("SELECT line_id, invoice_no, stock_code, metric, status, detected_at "
                     "FROM ecommerce_mart.anomalies WHERE invoice_date = %(d)s", {"d": str(DAYS[1])})


def reviewed() -> dict[str, str]:
    """The flagged lines of the day someone reviewed (here or on the dashboard), with their latest status."""
    rows = hs2.query("SELECT line_id, status FROM ecommerce_mart.anomaly_status_log WHERE invoice_date = %(d)s "
                     "ORDER BY changed_at", {"d": str(DAYS[1])})
    return dict(rows)


def unreviewed_rows():
    """The day's flagged lines nobody has reviewed yet, in line order."""
    seen = reviewed()
    return sorted(r for r in flagged_rows() if r[0] not in seen)


def test_flags_match_a_plain_python_modified_z_score(detected):
    expected = expected_flags()
    assert expected, "the real second day has lines far outside the first day's"
    assert Counter((r[1], r[2], r[3]) for r in flagged_rows()) == expected
    seen = reviewed()
    assert {r[4] for r in flagged_rows() if r[0] not in seen} == {"NEW"}
    assert {r[0]: r[4] for r in flagged_rows() if r[0] in seen} == seen


def anomaly_cli(*args, crash_at: str = ""):
    """``python -m pipeline anomaly``, with a ``SPARK_HOME`` that does not exist: it must not start Spark."""
    env = {k: v for k, v in os.environ.items() if k != crash.ENV}
    env.update({"SPARK_HOME": "/nonexistent/spark", **({crash.ENV: crash_at} if crash_at else {})})
    return subprocess.run([sys.executable, "-m", "pipeline", "anomaly", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_status_lifecycle_from_the_cli_survives_a_rerun(detected):
    line_id, *_ , first_detected = unreviewed_rows()[0]
    ack = anomaly_cli(line_id, "ACKNOWLEDGED", "--by", "alice", "--note", "checking with the customer")
    assert ack.returncode == 0, ack.stderr[-2000:]
    assert "NEW -> ACKNOWLEDGED by alice" in ack.stdout
    assert anomaly_cli(line_id, "RESOLVED", "--by", "bob").returncode == 0
    back = anomaly_cli(line_id, "ACKNOWLEDGED", "--by", "carol")
    assert back.returncode == 2
    assert "an anomaly in status RESOLVED cannot become ACKNOWLEDGED" in back.stderr
    assert "Traceback" not in back.stderr
    log = hs2.query("SELECT status, changed_by, note FROM ecommerce_mart.anomaly_status_log "
                    "WHERE line_id = %(l)s ORDER BY changed_at, status", {"l": line_id})
    assert [tuple(r) for r in log] == [("ACKNOWLEDGED", "alice", "checking with the customer"),
                                       ("RESOLVED", "bob", "")]
    marker_path(detected, "mart", "anomalies", f"{DAYS[1]}.json").unlink()
    run_luigi("DetectAnomalies", "--date", str(DAYS[1]), module=MODULE)
    after = {r[0]: r for r in flagged_rows()}
    assert (after[line_id][4], after[line_id][5]) == ("RESOLVED", first_detected)


def test_unknown_line_is_a_clear_error(detected):
    proc = anomaly_cli("no-such-line", "ACKNOWLEDGED", "--by", "alice")
    assert proc.returncode == 2 and "no flagged line with id 'no-such-line'" in proc.stderr


def test_a_review_that_died_after_logging_is_finished_by_the_same_command_and_logged_once(detected):
    line_id = unreviewed_rows()[-1][0]
    died = anomaly_cli(line_id, "RESOLVED", "--by", "dave", "--note", "a wholesale order",
                       crash_at="anomaly.log_published")
    assert died.returncode == crash.EXIT_CODE, died.stderr[-2000:]
    statuses = {r[4] for r in flagged_rows() if r[0] == line_id}
    assert statuses == {"NEW"}  # logged, the date not republished yet
    again = anomaly_cli(line_id, "RESOLVED", "--by", "dave", "--note", "a wholesale order")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "NEW -> RESOLVED by dave" in again.stdout
    log = hs2.query("SELECT status, changed_by FROM ecommerce_mart.anomaly_status_log WHERE line_id = %(l)s",
                    {"l": line_id})
    assert [tuple(r) for r in log] == [("RESOLVED", "dave")]
    assert {r[4] for r in flagged_rows() if r[0] == line_id} == {"RESOLVED"}
