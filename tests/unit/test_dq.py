"""Each data-quality check type fails on a hand-built bad dataset and passes on a good one."""

import datetime as dt

import pytest

from pipeline.transforms import dq

D1, D2, D3, HIGH = dt.date(2010, 12, 1), dt.date(2010, 12, 3), dt.date(2010, 12, 5), dt.date(9999, 12, 31)


def keys(df):
    return sorted(r.failing_key for r in df.collect())


@pytest.mark.parametrize("rows, expected", [
    ([(1, "536365", 10), (2, "536366", 11)], []),
    ([(1, "536365", None), (2, None, None)], ["1 null: country_key", "2 null: invoice_no,country_key"]),
])
def test_not_null(spark, rows, expected):
    df = spark.createDataFrame(rows, "line INT, invoice_no STRING, country_key BIGINT")
    assert keys(dq.not_null(df, ["invoice_no", "country_key"], ["line"])) == expected


@pytest.mark.parametrize("rows, expected", [
    ([(1,), (2,), (3,)], []),
    ([(1,), (2,), (2,), (2,)], ["2 x3"]),
])
def test_unique(spark, rows, expected):
    assert keys(dq.unique(spark.createDataFrame(rows, "product_key BIGINT"), ["product_key"])) == expected


@pytest.fixture
def dim_product(spark):
    return spark.createDataFrame([(1, D1, D2), (2, D2, HIGH), (-1, dt.date(1900, 1, 1), HIGH)],
                                 "product_key BIGINT, valid_from DATE, valid_to DATE")


@pytest.mark.parametrize("rows, as_of, expected", [
    ([(1, D1), (2, D3), (-1, D3)], "invoice_date", []),
    ([(1, D3), (7, D1)], "invoice_date", ["1|2010-12-05", "7|2010-12-01"]),   # 1 expired on D2; 7 unknown
    ([(1, D3), (7, D1)], None, ["7"]),                                         # not SCD2-aware: 1 exists
])
def test_relationships_scd2_aware(spark, dim_product, rows, as_of, expected):
    fact = spark.createDataFrame(rows, "product_key BIGINT, invoice_date DATE")
    assert keys(dq.relationships(fact, "product_key", dim_product, "product_key", as_of=as_of)) == expected


@pytest.mark.parametrize("rows, expected", [
    ([("Champions",), ("Lost",), (None,)], []),
    ([("Champions",), ("VIP",), ("VIP",)], ["VIP x2"]),
])
def test_accepted_values(spark, rows, expected):
    df = spark.createDataFrame(rows, "segment STRING")
    assert keys(dq.accepted_values(df, "segment", ["Champions", "Lost"])) == expected


@pytest.mark.parametrize("rows, expected", [
    ([("A", D1, D2, False), ("A", D2, HIGH, True), ("B", D1, HIGH, True)], []),
    ([("A", D1, D3, False), ("A", D2, HIGH, True)], ["A version from 2010-12-01 overlaps or is empty"]),
    ([("A", D1, D2, True), ("A", D2, HIGH, True), ("B", D1, D2, False)], ["A current rows: 2"]),
    ([("A", D1, D2, False), ("A", D2, D3, False)], []),  # deleted on D3: no current row is history, not a fault
    ([("A", D2, D2, False), ("A", D2, HIGH, True)], ["A version from 2010-12-03 overlaps or is empty"]),
])
def test_scd2_integrity(spark, rows, expected):
    df = spark.createDataFrame(rows, "stock_code STRING, valid_from DATE, valid_to DATE, is_current BOOLEAN")
    assert keys(dq.scd2_integrity(df, "stock_code")) == expected


@pytest.mark.parametrize("rows, expected", [
    ([("tx_1", 10, 7, 2, 1)], []),
    ([("tx_1", 10, 7, 2, 1), ("tx_2", 10, 7, 2, 0)], ["tx_2"]),
])
def test_batch_accounting(spark, rows, expected):
    audit = spark.createDataFrame(rows, "batch_id STRING, rows_received BIGINT, rows_loaded BIGINT, "
                                        "rows_quarantined BIGINT, rows_duplicate BIGINT")
    assert keys(dq.batch_accounting(audit)) == expected


@pytest.mark.parametrize("today_rows, expected", [
    (1000, []),                                                          # 1000 vs mean 1100: ratio 0.91
    (300, ["300 rows vs 1100.0 on the same weekday (ratio 0.27)"]),
    (5000, ["5000 rows vs 1100.0 on the same weekday (ratio 4.55)"]),
])
def test_volume_against_the_same_weekday(spark, today_rows, expected):
    day = dt.date(2011, 1, 18)   # a Tuesday; history: the two previous Tuesdays (1000, 1200); Monday ignored
    counts = spark.createDataFrame([(dt.date(2011, 1, 11), 1000), (dt.date(2011, 1, 4), 1200),
                                    (dt.date(2011, 1, 17), 50), (day, today_rows)], "date DATE, rows BIGINT")
    assert keys(dq.volume(counts, [day], weeks=4, low=0.5, high=2.0)) == expected


def test_volume_passes_without_history(spark):
    counts = spark.createDataFrame([(dt.date(2011, 1, 18), 10)], "date DATE, rows BIGINT")
    assert keys(dq.volume(counts, [dt.date(2011, 1, 18)], weeks=4, low=0.5, high=2.0)) == []


def test_volume_judges_each_day_against_its_own_weekday(spark):
    """Tuesday 18th: 300 vs 1000 a week before; Wednesday 19th: 950 vs 1000; Thursday 20th: no rows at all
    against 800 a week before; Friday 21st: no history."""
    tue, wed, thu, fri = (dt.date(2011, 1, d) for d in (18, 19, 20, 21))
    counts = spark.createDataFrame([(dt.date(2011, 1, 11), 1000), (tue, 300), (dt.date(2011, 1, 12), 1000),
                                    (wed, 950), (dt.date(2011, 1, 13), 800), (fri, 5)], "date DATE, rows BIGINT")
    got = sorted((r.day, r.failing_key) for r in dq.volume(counts, [tue, wed, thu, fri], 1, 0.5, 2.0).collect())
    assert got == [(tue, "300 rows vs 1000.0 on the same weekday (ratio 0.30)"),
                   (thu, "0 rows vs 800.0 on the same weekday (ratio 0.00)")]


AUDIT = "batch_id STRING, rows_received BIGINT, rows_loaded BIGINT"


@pytest.mark.parametrize("raw, expected", [
    ([("tx_a", 3), ("tx_b", 0)], []),
    ([("tx_a", 4)], ["tx_a: 4 rows in transactions_raw, audit says 3 loaded"]),
    ([("tx_a", 3), ("tx_b", 1)], ["tx_b: 1 rows in transactions_raw, audit says 0 loaded"]),
    ([], ["tx_a: 0 rows in transactions_raw, audit says 3 loaded"]),
])
def test_batch_rows(spark, raw, expected):
    audit = spark.createDataFrame([("tx_a", 5, 3), ("tx_b", 1, 0)], AUDIT)
    counts = spark.createDataFrame(raw, "batch_id STRING, rows BIGINT")
    assert keys(dq.batch_rows(audit, counts)) == expected


@pytest.mark.parametrize("landed, expected", [
    ([("tx_a", 5), ("tx_b", 1)], []),
    ([("tx_a", 6), ("tx_b", 1)], ["tx_a: 6 lines landed, audit says 5 received"]),
    ([("tx_a", 5), ("tx_b", None)], ["tx_b: no file lines landed, audit says 1 received"]),
    ([("tx_a", 5), ("tx_b", 1), ("tx_c", 2)], ["tx_c: 2 lines landed, audit says no audit row received"]),
])
def test_batch_received(spark, landed, expected):
    audit = spark.createDataFrame([("tx_a", 5, 3), ("tx_b", 1, 0)], AUDIT)
    files = spark.createDataFrame(landed, "batch_id STRING, data_lines BIGINT")
    assert keys(dq.batch_received(audit, files)) == expected


def test_batch_encoding_flags_files_not_read_as_utf8(spark):
    audit = spark.createDataFrame([("tx_a", "utf-8"), ("tx_b", "utf-8-sig"), ("tx_c", "cp1252"), ("tx_d", None),
                                   ("products_x", "latin-1")], "batch_id STRING, encoding STRING")
    assert sorted(keys(dq.batch_encoding(audit, ["utf-8", "utf-8-sig"]))) == [
        "products_x: read as latin-1", "tx_c: read as cp1252"]


def by_day(df):
    return sorted((r.day, r.failing_key) for r in df.collect())


def test_checks_split_by_a_column_judge_each_group_on_its_own_rows(spark):
    """The same product key twice on one day is a duplicate; once on each of two days is not."""
    rows = spark.createDataFrame([(D1, 1, "Champions", None), (D1, 1, "VIP", 3), (D2, 1, "VIP", 4), (D3, 2, None, 5)],
                                 "day DATE, product_key BIGINT, segment STRING, country_key BIGINT")
    assert by_day(dq.unique(rows, ["product_key"], by=["day"])) == [(D1, "1 x2")]
    assert by_day(dq.accepted_values(rows, "segment", ["Champions"], by=["day"])) == [(D1, "VIP x1"), (D2, "VIP x1")]
    assert by_day(dq.not_null(rows, ["country_key"], ["product_key"], by=["day"])) == [(D1, "1 null: country_key")]
    parent = spark.createDataFrame([(1,)], "product_key BIGINT")
    assert by_day(dq.relationships(rows, "product_key", parent, "product_key", by=["day"])) == [(D3, "2")]


def test_batch_checks_split_by_day_keep_a_batch_shared_by_two_days_in_both(spark):
    audit = spark.createDataFrame([(D1, "tx_a", 5, 3), (D2, "tx_a", 5, 3), (D2, "tx_b", 1, 1)],
                                  "day DATE, " + AUDIT)
    counts = spark.createDataFrame([("tx_a", 2), ("tx_b", 1)], "batch_id STRING, rows BIGINT")
    assert by_day(dq.batch_rows(audit, counts, by=["day"])) == [
        (D1, "tx_a: 2 rows in transactions_raw, audit says 3 loaded"),
        (D2, "tx_a: 2 rows in transactions_raw, audit says 3 loaded")]
    landed = spark.createDataFrame([(D1, "tx_a", 5), (D2, "tx_a", 5), (D2, "tx_b", 2)],
                                   "day DATE, batch_id STRING, data_lines BIGINT")
    assert by_day(dq.batch_received(audit, landed, by=["day"])) == [
        (D2, "tx_b: 2 lines landed, audit says 1 received")]
