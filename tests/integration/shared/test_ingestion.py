"""Two real trading days through luigid, checked over HiveServer2 against the source files.

Expected values are computed here, independently of the pipeline, from the gzipped source files.
"""

import datetime as dt
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from pipeline.engine import services
from pipeline.io import hs2
from tests.integration.conftest import ROOT, overlay_env, run_luigi, warehouse_path
from tests.integration.realdata import (
    ATLANTIS_LINE,
    BAD_DATE_LINE,
    DAYS,
    IN_DAYS,
    INJECTED,
    NEW_CODE,
    expected_batches,
    fields,
    source_lines,
)

pytestmark = pytest.mark.integration

def audit():
    """The transaction batches of the integration days (other modules on the shared stack may land more)."""
    rows = hs2.query("SELECT batch_id, rows_received, rows_loaded, rows_quarantined, rows_duplicate, rows_released "
                     "FROM ecommerce_db.batch_audit WHERE feed = 'transactions' "
                     f"AND to_date(window_start) IN {IN_DAYS}")
    return {r[0]: r[1:] for r in rows}


def test_every_batch_matches_the_source_files(ingested):
    expected = expected_batches()
    got = audit()
    assert set(got) == set(expected)
    for batch, (received, dups) in expected.items():
        assert got[batch][0] == received, batch
        assert got[batch][3] == dups, batch
    loaded = dict(hs2.query("SELECT batch_id, count(*) FROM ecommerce_db.transactions_raw GROUP BY batch_id"))
    for batch, row in got.items():
        assert loaded.get(batch, 0) == row[1], batch


def test_nothing_lost_in_any_batch(ingested):
    for batch, (received, loaded, quarantined, dups, _released) in audit().items():
        assert received == loaded + quarantined + dups, batch


def test_quarantine_then_retry_releases_the_line_once_masters_know_it(ingested):
    by_line = {r[0]: r[1:] for r in ingested["quarantine_after_ingestion"]}
    assert by_line[INJECTED][0] == "UNKNOWN_PRODUCT" and NEW_CODE in by_line[INJECTED][1]
    assert by_line[INJECTED][2:] == (2, True)
    assert by_line[BAD_DATE_LINE][0] == "BAD_DATE" and "31/12/2010 25:00" in by_line[BAD_DATE_LINE][1]
    assert by_line[BAD_DATE_LINE][2:] == (1, False)
    assert by_line[ATLANTIS_LINE][0] == "UNKNOWN_COUNTRY" and by_line[ATLANTIS_LINE][2:] == (2, False)
    assert ingested["audit_after_ingestion"]["tx_20101202_00"] == (4, 1, 2, 1, 1)
    loaded = hs2.query("SELECT stock_code, quantity FROM ecommerce_db.transactions_raw "
                       "WHERE batch_id = 'tx_20101202_00'")
    assert [r[0] for r in loaded] == [NEW_CODE]


def test_invoice_date_index_covers_every_loaded_line(ingested):
    index = hs2.query("SELECT batch_id, invoice_date, rows_loaded FROM ecommerce_db.batch_invoice_dates "
                      f"WHERE invoice_date IN {IN_DAYS}")
    raw = hs2.query("SELECT batch_id, to_date(invoice_ts), count(*) FROM ecommerce_db.transactions_raw "
                    f"WHERE to_date(invoice_ts) IN {IN_DAYS} GROUP BY batch_id, to_date(invoice_ts)")
    assert sorted(index) == sorted(raw)
    assert ("tx_20101202_00", "2010-12-02", 1) in index  # the released line (PyHive returns DATE as text)


def test_products_scd2_invariants(ingested):
    codes = {fields(ln)[1].strip() for day in DAYS for ln in source_lines(day)}
    # as of the last integration day (modules on the shared stack may apply later snapshots): one version per code
    (versions, distinct), = hs2.query(
        "SELECT count(*), count(DISTINCT stock_code) FROM ecommerce_db.products "
        f"WHERE valid_from <= DATE '{DAYS[-1]}' AND DATE '{DAYS[-1]}' < valid_to")
    assert versions == distinct == len(codes)
    assert hs2.query("SELECT stock_code FROM ecommerce_db.products WHERE is_current "
                     "GROUP BY stock_code HAVING count(*) > 1") == []
    overlaps = hs2.query(
        "SELECT a.stock_code FROM ecommerce_db.products a JOIN ecommerce_db.products b "
        "ON a.stock_code = b.stock_code AND a.product_key <> b.product_key "
        "AND a.valid_from < b.valid_to AND b.valid_from < a.valid_to")
    assert overlaps == []
    assert hs2.query("SELECT count(*) FROM ecommerce_db.products WHERE is_current "
                     "AND valid_to <> DATE '9999-12-31'") == [(0,)]


def test_countries_scd0_has_every_source_country(ingested):
    names = {fields(ln)[7] for day in DAYS for ln in source_lines(day)}
    got = dict(hs2.query("SELECT source_country_name, country_code FROM ecommerce_db.countries "
                         f"WHERE first_seen <= DATE '{DAYS[-1]}'"))
    assert set(got) == names
    assert got["EIRE"] == "IE" and got["United Kingdom"] == "GB"


def test_luigid_recorded_task_history(ingested):
    db = ingested["state"] / "luigid" / "task-history.db"
    with sqlite3.connect(db) as conn:
        runs = conn.execute(
            "SELECT d.value, w.value FROM tasks t JOIN task_events e ON e.task_id = t.id "
            "JOIN task_parameters d ON d.task_id = t.id AND d.name = 'date' "
            "JOIN task_parameters w ON w.task_id = t.id AND w.name = 'window' "
            "WHERE t.name = 'TransactionBatch' AND e.event_name = 'DONE'").fetchall()
    # luigid hands the worker a date's ready windows as one batch (window "4,8,12,16,20"): every window is
    # counted once, and the windows that were ready together ran together
    windows = [(day, hour) for day, hours in runs for hour in hours.split(",") if day in {str(d) for d in DAYS}]
    assert sorted(windows) == sorted((str(d), str(h)) for d in DAYS for h in (0, 4, 8, 12, 16, 20))
    assert any("," in hours for _, hours in runs), runs


def table_state():
    """All published rows, minus load timestamps that record when a row was written."""
    return {
        "transactions_raw": sorted(hs2.query(
            "SELECT invoice_no, stock_code, description, quantity, invoice_ts, unit_price, customer_id, "
            "country_name, country_code, is_cancellation, batch_id FROM ecommerce_db.transactions_raw")),
        "products": sorted(hs2.query("SELECT * FROM ecommerce_db.products")),
        "countries": sorted(hs2.query("SELECT * FROM ecommerce_db.countries")),
        "quarantine": sorted(hs2.query("SELECT * FROM ecommerce_db.transactions_quarantine"), key=str),
        "audit": sorted(hs2.query(
            "SELECT batch_id, feed, window_start, window_end, source_files, rows_received, rows_loaded, "
            "rows_quarantined, rows_duplicate, rows_released, status FROM ecommerce_db.batch_audit")),
    }


def test_rerun_changes_nothing(ingested):
    before = table_state()
    proc = run_luigi("RangeDaily", "--of", "IngestDay", "--start", str(DAYS[0]),
                     "--stop", str(DAYS[-1] + dt.timedelta(1)))
    assert "ran successfully" not in (proc.stdout + proc.stderr).split("Execution Summary")[-2]
    assert table_state() == before
    # forced rerun: remove the day's markers, so every task of 2010-12-02 runs again
    markers = warehouse_path(ingested["warehouse"]) / "_markers"
    removed = [p for p in markers.rglob("*") if p.is_file() and ("20101202" in p.name or "2010-12-02" in p.name)
               and p.relative_to(markers).parts[0] not in ("dw", "mart")]  # the day's ingestion markers
    assert len(removed) == 9
    for p in removed:
        p.unlink()
    run_luigi("IngestDay", "--date", str(DAYS[1]))
    assert table_state() == before


def test_reader_never_sees_a_partial_table(ingested, tmp_path):
    """HiveServer2 counts a table while another process republishes it with 1,000 / 3,000 rows in 8 files:
    from the first publication on, every count is a whole version."""
    seen = Counter()
    errors = []
    with open(tmp_path / "writer.log", "w") as log:
        writer = subprocess.Popen([sys.executable, "-m", "tests.integration.swap_writer"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=log, text=True)
        first = writer.stdout.readline()

        def read():
            while writer.poll() is None:
                try:
                    seen[hs2.query("SELECT count(*) FROM ecommerce_db.swap_probe")[0][0]] += 1
                except Exception as exc:
                    errors.append(str(exc)[:300])
                time.sleep(0.05)

        reader = threading.Thread(target=read)
        reader.start()
        out, _ = writer.communicate(timeout=600)
        reader.join()
    hs2.query("DROP TABLE IF EXISTS ecommerce_db.swap_probe")
    assert writer.returncode == 0, (tmp_path / "writer.log").read_text()[-2000:]
    assert first == "published 0\n" and out.count("published") == 11
    assert set(seen) <= {1000, 3000} and sum(seen.values()) > 0, seen
    assert errors == []


def test_a_wrong_metastore_uri_fails_fast_without_a_private_catalog(ingested, tmp_path):
    env = overlay_env(ingested, tmp_path / "wrong.cfg", "metastore", uri="thrift://127.0.0.1:1")
    proc = subprocess.run([sys.executable, "-c", "from pipeline.engine.spark import get_spark; get_spark()"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Hive metastore at thrift://127.0.0.1:1 is not reachable" in proc.stderr
    assert not (tmp_path / "metastore_db").exists()


def test_catalog_and_data_survive_a_metastore_restart(ingested):
    before = table_state()
    tables = sorted(hs2.query("SHOW TABLES IN ecommerce_db"))
    for svc in reversed(services.all_services()[:2]):
        svc.stop()
    assert not services.all_services()[0].healthy()
    for svc in services.all_services()[:2]:
        svc.start()
    assert sorted(hs2.query("SHOW TABLES IN ecommerce_db")) == tables
    after = table_state()
    assert after["transactions_raw"] == before["transactions_raw"]
    assert after["countries"] == before["countries"]
