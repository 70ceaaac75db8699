"""Hostile input through the real landing path: files the source system gets wrong, loaded by ``IngestDay``
through luigid on a stack of its own, with alerts to a real SMTP server.

Expected values come from the files the test writes, never from the pipeline.
"""

import csv
import datetime as dt
import io
import json

import pytest

from pipeline.sources import replay
from tests.integration.conftest import append_lines, separate_stack, smtp_server, warehouse_path

PORTS = {"metastore": 29083, "hiveserver2": 29000, "luigid": 29082}
DAY = dt.date(2010, 12, 1)
NEXT = dt.date(2010, 12, 2)
QUOTED_NEWLINE = ('900001,85123A,"WHITE HEART, ""LARGE""\nSECOND LINE",2,2010-12-01 09:00:00,2.55,17850.0,'
                  "United Kingdom")
FAR_FUTURE = "900002,85123A,WHITE HANGING HEART T-LIGHT HOLDER,1,2099-01-01 10:00:00,2.55,17850.0,United Kingdom"
HUGE_AMOUNT = "900003,85123A,WHITE HANGING HEART T-LIGHT HOLDER,999999999,2010-12-01 09:00:00,999999999.999,,EIRE"
TOO_LONG = "900004,85123A," + "X" * 70_000 + ",1,2010-12-01 09:00:00,2.55,17850.0,United Kingdom"
PATHOLOGICAL = "900005,85123A," + '""' * 50_000 + ",1,2010-12-01 09:00:00,2.55,17850.0,United Kingdom"
CP1252_LINE = "900006,85123A,CAFÉ CRÈME £5 TIN,1,2010-12-01 13:00:00,2.55,17850.0,United Kingdom"
REORDERED = ["Country", "CustomerID", "UnitPrice", "InvoiceDate", "Quantity", "Description", "Channel", "StockCode",
             "InvoiceNo"]


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_csv(path, header, rows, encoding="utf-8"):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    with smtp_server() as (inbox, smtp_port):
        # a failed snapshot stays FAILED: were it PENDING again, luigid would reserve the writer resource for its
        # stopped worker (until worker_disconnect_delay) and refuse the next writer "run permission"
        overlay = (f"[smtp]\nhost = 127.0.0.1\nport = {smtp_port}\nno_tls = true\n"
                   "[email]\nreceiver = ops@example.com\nsender = dw@example.com\n"
                   "[scheduler]\nretry_delay = 3600\n")
        with separate_stack(tmp_path_factory, "hostile", PORTS, overlay) as stack:
            warehouse = f"file://{stack.state}/warehouse"
            stack.luigi("ReplayDay", "--date", str(DAY))
            paths = {k: v for k, v in replay.landing_paths(warehouse, DAY).items()}
            tx = {w: warehouse_path(p) for w, p in paths["transactions"].items()}
            original = {w: read_rows(p) for w, p in tx.items()}
            append_lines(warehouse, DAY, 8, [QUOTED_NEWLINE, FAR_FUTURE, HUGE_AMOUNT, TOO_LONG, PATHOLOGICAL])
            # window 12: the same columns in another order, one more column, in cp1252, plus one line
            rows12 = [[r[c] if c != "Channel" else "web" for c in REORDERED] for r in original[12]]
            extra = next(csv.reader([CP1252_LINE]))
            rows12.append([dict(zip(replay.HEADER.split(","), extra, strict=True)).get(c, "web") for c in REORDERED])
            write_csv(tx[12], REORDERED, rows12, encoding="cp1252")
            manifest_path = warehouse_path(paths["manifest"])
            manifest = json.loads(manifest_path.read_text())
            manifest["transactions"][replay.batch_id(DAY, 12)]["lines"] += 1
            manifest_path.write_text(json.dumps(manifest))
            # window 04 (no trading): a byte-order mark and Windows line ends
            tx[4].write_bytes(b"\xef\xbb\xbf" + replay.HEADER.encode() + b"\r\n")
            # window 16: no UnitPrice column; window 20: a line the manifest does not count
            good16 = tx[16].read_bytes()
            header16 = [c for c in replay.HEADER.split(",") if c != "UnitPrice"]
            write_csv(tx[16], header16, [[r[c] for c in header16] for r in original[16]])
            with open(tx[20], "a") as fh:
                fh.write(FAR_FUTURE.replace("2099-01-01", "2010-12-01").replace("10:00", "21:00") + "\n")
            products = warehouse_path(paths["products"])
            product_rows = read_rows(products)
            with open(products, "a") as fh:
                fh.write(",NO CODE,1.00\nZZBAD1,THING,abc\nZZDUP,ONE,1.00\nZZDUP,TWO,1.00\n")
            with open(warehouse_path(paths["countries"]), "a") as fh:
                fh.write(",XX,XXX,Nowhere,Somewhere,Elsewhere\n")

            stack.luigi("IngestDay", "--date", str(DAY))
            yield {"stack": stack, "inbox": inbox, "tx": tx, "original": original,
                   "good16": good16, "warehouse": warehouse, "product_rows": product_rows}


def audit(stack, batch):
    rows = stack.query("SELECT status, rows_received, rows_loaded, rows_quarantined, rows_duplicate, encoding, "
                       f"extra_columns, reason FROM ecommerce_db.batch_audit WHERE batch_id = '{batch}'")
    assert len(rows) == 1, rows
    return dict(zip(["status", "received", "loaded", "quarantined", "duplicate", "encoding", "extra", "reason"],
                    rows[0], strict=True))


def test_every_accepted_batch_accounts_for_every_record(hostile):
    stack = hostile["stack"]
    rows = stack.query("SELECT batch_id, rows_received, rows_loaded + rows_quarantined + rows_duplicate "
                       f"FROM ecommerce_db.batch_audit WHERE batch_id LIKE 'tx_{DAY:%Y%m%d}%'")
    assert len(rows) == 6 and all(r[1] == r[2] for r in rows), rows
    assert audit(stack, "tx_20101201_08")["received"] == len(hostile["original"][8]) + 5


def test_bad_lines_are_quarantined_with_their_reason(hostile):
    stack = hostile["stack"]
    got = stack.query("SELECT invoice_no, reason_code, length(raw_line) FROM ecommerce_db.transactions_quarantine "
                      "WHERE batch_id = 'tx_20101201_08' AND raw_line LIKE '90000%'")
    by_invoice = {r[0]: r[1] for r in got if r[0]}
    assert by_invoice == {"900002": "OUT_OF_RANGE_DATE", "900003": "BAD_AMOUNT"}
    too_long = sorted(r[2] for r in got if r[1] == "LINE_TOO_LONG")
    assert too_long == sorted([len(TOO_LONG), len(PATHOLOGICAL)])   # kept whole: nothing lost


def test_a_quoted_line_break_is_one_record_loaded_whole(hostile):
    got = hostile["stack"].query("SELECT description, quantity FROM ecommerce_db.transactions_raw "
                                 "WHERE invoice_no = '900001'")
    assert got == [('WHITE HEART, "LARGE"\nSECOND LINE', 2)]


def test_a_reordered_cp1252_file_is_read_by_header_names_and_decoded(hostile):
    stack = hostile["stack"]
    a = audit(stack, "tx_20101201_12")
    assert (a["status"], a["encoding"], a["extra"]) == ("LOADED", "cp1252", "Channel")
    lines = [tuple(r.values()) for r in hostile["original"][12]]
    assert (a["received"], a["quarantined"]) == (len(lines) + 1, 0)
    assert a["duplicate"] == len(lines) - len(set(lines)) and a["loaded"] == len(set(lines)) + 1
    assert stack.query("SELECT description FROM ecommerce_db.transactions_raw WHERE invoice_no = '900006'") == [
        ("CAFÉ CRÈME £5 TIN",)]
    assert stack.query("SELECT count(*) FROM ecommerce_db.transactions_raw WHERE batch_id = 'tx_20101201_12' "
                       "AND instr(description, '\ufffd') > 0") == [(0,)]


def test_a_utf8_file_with_a_byte_order_mark_is_utf8(hostile):
    a = audit(hostile["stack"], "tx_20101201_04")
    assert (a["status"], a["encoding"], a["received"]) == ("LOADED", "utf-8-sig", 0)


def test_a_file_without_a_required_column_is_rejected_moved_and_alerted(hostile):
    stack, tx = hostile["stack"], hostile["tx"]
    a = audit(stack, "tx_20101201_16")
    assert a["status"] == "REJECTED" and "UnitPrice" in a["reason"] and a["loaded"] == 0
    assert stack.query("SELECT count(*) FROM ecommerce_db.transactions_raw WHERE batch_id = 'tx_20101201_16'") == [
        (0,)]
    rejected = stack.state / "warehouse" / "landing" / "rejected" / str(DAY)
    assert not tx[16].exists() and (rejected / "tx_20101201_16.csv").exists()
    note = json.loads((rejected / "tx_20101201_16.csv.reason.json").read_text())
    assert "UnitPrice" in note["reason"]
    assert hostile["inbox"].alerted("transaction feed tx_20101201_16 rejected"), hostile["inbox"].messages


def test_a_file_that_disagrees_with_the_manifest_is_rejected_naming_both_counts(hostile):
    a = audit(hostile["stack"], "tx_20101201_20")
    assert a["status"] == "REJECTED"
    assert "lists 0 lines" in a["reason"] and "has 1" in a["reason"]
    assert hostile["inbox"].alerted("transaction feed tx_20101201_20 rejected"), hostile["inbox"].messages


def test_bad_master_rows_are_quarantined_and_the_rest_applied(hostile):
    stack = hostile["stack"]
    got = sorted(stack.query("SELECT feed, key, reason_code FROM ecommerce_db.master_quarantine"),
                 key=lambda r: (r[0], r[1] or ""))
    assert got == [("countries", None, "EMPTY_KEY"), ("products", None, "EMPTY_KEY"),
                   ("products", "ZZBAD1", "BAD_PRICE"), ("products", "ZZDUP", "CONFLICTING_DUPLICATE"),
                   ("products", "ZZDUP", "CONFLICTING_DUPLICATE")]
    codes = {r["stock_code"] for r in hostile["product_rows"]}
    current = {r[0] for r in stack.query("SELECT stock_code FROM ecommerce_db.products WHERE is_current")}
    assert current == codes
    assert stack.query("SELECT count(*) FROM ecommerce_db.countries WHERE country_code = 'XX'") == [(0,)]


def test_a_corrected_file_landed_again_is_loaded(hostile):
    stack, tx = hostile["stack"], hostile["tx"]
    tx[16].write_bytes(hostile["good16"])
    stack.luigi("IngestDay", "--date", str(DAY))
    a = audit(stack, "tx_20101201_16")
    assert (a["status"], a["reason"]) == ("LOADED", None)
    assert a["received"] == len(hostile["original"][16]) == a["loaded"] + a["quarantined"] + a["duplicate"]


def test_a_structurally_wrong_snapshot_is_refused_with_a_clear_error(hostile):
    stack = hostile["stack"]
    stack.luigi("ReplayDay", "--date", str(NEXT))
    products = warehouse_path(replay.landing_paths(hostile["warehouse"], NEXT)["products"])
    rows = read_rows(products)
    write_csv(products, ["stock_code", "description"], [[r["stock_code"], r["description"]] for r in rows])
    with pytest.raises(AssertionError, match="required column unit_price missing"):
        stack.luigi("ProductsSnapshot", "--date", str(NEXT))
    assert stack.query("SELECT count(*) FROM ecommerce_db.products WHERE valid_from = DATE '2010-12-02'") == [(0,)]
    countries = warehouse_path(replay.landing_paths(hostile["warehouse"], NEXT)["countries"])
    countries.write_bytes(b"")
    with pytest.raises(AssertionError, match="the file is empty"):
        stack.luigi("CountriesSnapshot", "--date", str(NEXT))
