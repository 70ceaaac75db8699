"""Tables published without Spark (``pipeline.io.arrow_tables``) read back exactly through Spark and over
HiveServer2, and a table Spark published reads back exactly without it: decimals, timestamps, dates, nulls,
a whole table and date partitions. HiveServer2 sees the new rows after each swap on the same connection (its
relation cache compares locations). The probe database is dropped at the end.
"""

import contextlib
import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from pyhive import hive

from pipeline import config
from pipeline.io import arrow_tables as at
from pipeline.io import warehouse as wh
from pipeline.io.metastore_client import MetastoreUnavailable
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

DB = "arrow_probe"
SPEC = {
    "typed": {
        "grain": "one row per probe value",
        "columns": """id INT, amount DECIMAL(12,3), total DECIMAL(18,3), at_ts TIMESTAMP, on_day DATE, big BIGINT,
            ratio DOUBLE, flag BOOLEAN, label STRING""",
    },
    "by_day": {
        "grain": "one row per probe value and day",
        "columns": "id INT, amount DECIMAL(12,3), at_ts TIMESTAMP, label STRING",
        "partition": "invoice_date DATE",
    },
}
ROWS = [
    (1, Decimal("1234567.891"), Decimal("-123456789012345.678"), dt.datetime(2010, 12, 1, 8, 26, 0, 123456),
     dt.date(2010, 12, 1), 2 ** 40, 0.25, True, 'EIRE, "quoted" £ Ünïcode'),
    (2, Decimal("-0.001"), Decimal("0.000"), dt.datetime(2011, 12, 9, 23, 59, 59), dt.date(9999, 12, 31), -1,
     -1e-300, False, ""),
    (3, None, None, None, None, None, None, None, None),
]
TYPED = ["id", "amount", "total", "at_ts", "on_day", "big", "ratio", "flag", "label"]
EXPECTED = [
    ["1", "1234567.891", "-123456789012345.678", "2010-12-01 08:26:00.123456", "2010-12-01", "1099511627776", "0.25",
     "True", 'EIRE, "quoted" £ Ünïcode'],
    ["2", "-0.001", "0.000", "2011-12-09 23:59:59", "9999-12-31", "-1", "-1e-300", "False", ""],
    ["3", None, None, None, None, None, None, None, None],
]

def canon(row) -> list:
    """A row's values as strings (None stays None), the same whichever client read them."""
    def one(v):
        if v is None:
            return None
        if isinstance(v, dt.datetime):
            return v.isoformat(sep=" ")
        if isinstance(v, dt.date):
            return v.isoformat()
        return str(v)

    return [one(v) for v in row]


def spark_view(action: str = "read") -> dict[str, list]:
    """What a fresh Spark session of the pipeline reads from both probe tables (``create``: first creates them
    and publishes ``ROWS`` into ``typed`` with Spark)."""
    proc = subprocess.run([sys.executable, "-m", "tests.integration.shared.arrow_probe", action], cwd=ROOT,
                          capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {ln.split()[1]: json.loads(ln.split(" ", 2)[2]) for ln in proc.stdout.splitlines() if ln.startswith("ROWS")}


def connect():
    cfg = config.hiveserver2()
    return hive.connect(host=cfg.host, port=cfg.port, **cfg.login("test"))


def hs2_rows(conn, sql: str) -> list:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return sorted((canon(r) for r in cur.fetchall()), key=json.dumps)
    finally:
        cur.close()


def by_day_rows(day: str, ids: list[int]) -> list:
    return [{"id": i, "amount": ROWS[i - 1][1], "at_ts": ROWS[i - 1][3], "label": ROWS[i - 1][8]} for i in ids]


def by_day_expected(day: str, ids: list[int]) -> list:
    return [[str(i), EXPECTED[i - 1][1], EXPECTED[i - 1][3], EXPECTED[i - 1][8], day] for i in ids]


@pytest.fixture(scope="module")
def probe(stack, monkeypatch_module):
    """The probe tables, created by Spark; ``typed`` published by Spark. Returns Spark's view of it."""
    monkeypatch_module.setitem(wh.SCHEMAS, DB, SPEC)
    view = spark_view("create")
    yield view
    # the embedded metastore drops the database, then its ACID listener fails (no BoneCP in the pyspark wheel)
    # and closes the connection
    with contextlib.suppress(MetastoreUnavailable), at.metastore() as ms:
        ms.drop_database(DB, False, True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def rows_of(frame, columns: list[str]) -> list:
    """The rows of a pandas frame ``arrow_tables`` read, as ``canon`` rows (pandas' missing values as None)."""
    import pandas as pd

    def value(v):
        return v if isinstance(v, (str, Decimal)) or not pd.isna(v) else None

    return sorted((canon(value(v) for v in r) for r in frame[columns].astype(object).itertuples(index=False)),
                  key=json.dumps)


def test_a_table_spark_published_reads_back_exactly_without_spark(probe):
    assert probe["typed"] == EXPECTED
    assert rows_of(at.read(f"{DB}.typed"), TYPED) == EXPECTED


def test_what_is_published_without_spark_reads_back_exactly_through_spark_and_hiveserver2(probe):
    import pandas as pd

    reversed_rows = pd.DataFrame([dict(zip(TYPED, r, strict=True)) for r in reversed(ROWS)])
    at.replace_table(reversed_rows, f"{DB}.typed")
    at.replace_partition(pd.DataFrame(by_day_rows("2010-12-01", [1, 3])), f"{DB}.by_day", "2010-12-01")
    at.replace_partition(pd.DataFrame(by_day_rows("2010-12-02", [2])), f"{DB}.by_day", "2010-12-02")
    by_day = sorted(by_day_expected("2010-12-01", [1, 3]) + by_day_expected("2010-12-02", [2]), key=json.dumps)
    conn = connect()
    try:
        assert hs2_rows(conn, f"SELECT {', '.join(TYPED)} FROM {DB}.typed") == EXPECTED
        assert hs2_rows(conn, f"SELECT * FROM {DB}.by_day") == by_day
        assert hs2_rows(conn, f"SELECT * FROM {DB}.by_day WHERE invoice_date = DATE '2010-12-02'") == \
            by_day_expected("2010-12-02", [2])
    finally:
        conn.close()
    assert spark_view() == {"typed": EXPECTED, "by_day": by_day}
    assert rows_of(at.read(f"{DB}.by_day"), ["id", "amount", "at_ts", "label", "invoice_date"]) == by_day


def test_hiveserver2_sees_the_new_rows_after_each_swap_on_the_same_connection(probe):
    import pandas as pd

    conn = connect()
    try:
        at.replace_table(pd.DataFrame([dict(zip(TYPED, ROWS[0], strict=True))]), f"{DB}.typed")
        at.replace_partition(pd.DataFrame(by_day_rows("2010-12-01", [1])), f"{DB}.by_day", "2010-12-01")
        assert hs2_rows(conn, f"SELECT id FROM {DB}.typed") == [["1"]]
        assert hs2_rows(conn, f"SELECT id FROM {DB}.by_day WHERE invoice_date = DATE '2010-12-01'") == [["1"]]
        at.replace_table(pd.DataFrame([dict(zip(TYPED, r, strict=True)) for r in ROWS[1:]]), f"{DB}.typed")
        at.replace_partition(pd.DataFrame(by_day_rows("2010-12-01", [2, 3])), f"{DB}.by_day", "2010-12-01")
        assert hs2_rows(conn, f"SELECT id FROM {DB}.typed") == [["2"], ["3"]]
        assert hs2_rows(conn, f"SELECT id FROM {DB}.by_day WHERE invoice_date = DATE '2010-12-01'") == \
            [["2"], ["3"]]
    finally:
        conn.close()
