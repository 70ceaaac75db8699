import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.io import load
from pipeline.sources.replay import HEADER
from pipeline.transforms import records
from pipeline.transforms import transactions as tx
from tests.unit.received import received

PRODUCTS = [("85123A",), ("POST",), ("22633",)]
COUNTRIES = [("United Kingdom", "GB"), ("EIRE", "IE")]
NON_PRODUCT = ["POST", "DOT", "gift_0001_%"]
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom"


def classify(spark, *lines, batch="tx_20101201_08"):
    df = received(spark, [(batch, ln) for ln in lines])
    products = spark.createDataFrame(PRODUCTS, "stock_code STRING")
    countries = spark.createDataFrame(COUNTRIES, "source_country_name STRING, country_code STRING")
    return tx.classify_lines(df, products, countries, NON_PRODUCT)


def one(spark, line):
    rows = classify(spark, line).collect()
    assert len(rows) == 1
    return rows[0]


def test_good_line_is_loaded_with_typed_columns(spark):
    loaded = tx.loaded_rows(classify(spark, GOOD))
    expected = spark.createDataFrame(
        [("536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, dt.datetime(2010, 12, 1, 8, 26),
          Decimal("2.550"), 17850, "United Kingdom", "GB", False, False, False, False, None, "tx_20101201_08.csv",
          "tx_20101201_08")],
        loaded.schema,
    )
    assertDataFrameEqual(loaded, expected)


def test_a_released_line_carries_its_retry_date(spark):
    released = spark.createDataFrame([("tx_20101201_08", GOOD, dt.date(2010, 12, 2))],
                                     "batch_id STRING, raw_line STRING, released_on DATE")
    row = tx.loaded_rows(classify(spark, GOOD), released).collect()[0]
    assert (row.released_on, row.batch_id) == (dt.date(2010, 12, 2), "tx_20101201_08")


@pytest.mark.parametrize(
    "line, reason, detail_part",
    [
        ("536365,85123A,X,6,2010-12-01 08:26:00,2.55", "UNPARSEABLE_ROW", "found 6"),
        ('536365,85123A,"A, B",6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom,extra', "UNPARSEABLE_ROW",
         "found 9"),
        (",85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom", "MISSING_INVOICE_NO", "empty"),
        ("536365, ,X,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom", "MISSING_STOCK_CODE", "empty"),
        ("536365,85123A,X,six,2010-12-01 08:26:00,2.55,17850.0,United Kingdom", "BAD_QUANTITY", "'six'"),
        ("536365,85123A,X,1.5,2010-12-01 08:26:00,2.55,17850.0,United Kingdom", "BAD_QUANTITY", "'1.5'"),
        ("536365,85123A,X,6,31/12/2010 25:00,2.55,17850.0,United Kingdom", "BAD_DATE", "'31/12/2010 25:00'"),
        ("536365,85123A,X,6,,2.55,17850.0,United Kingdom", "BAD_DATE", "NULL"),
        ("536365,85123A,X,6,2010-12-01 08:26:00,2.5.5,17850.0,United Kingdom", "BAD_PRICE", "'2.5.5'"),
        ("536365,85123A,X,6,2010-12-01 08:26:00,0.0001,17850.0,United Kingdom", "BAD_PRICE", "3 places"),
        ("536365,85123A,X,6,2010-12-01 08:26:00,2.55,abc,United Kingdom", "BAD_CUSTOMER_ID", "'abc'"),
        ("536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,Atlantis", "UNKNOWN_COUNTRY", "'Atlantis'"),
        ("536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,", "UNKNOWN_COUNTRY", "NULL"),
        ("536365,99999Z,X,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom", "UNKNOWN_PRODUCT", "'99999Z'"),
    ],
)
def test_bad_rows_are_quarantined_with_a_specific_reason(spark, line, reason, detail_part):
    row = one(spark, line)
    assert (row.outcome, row.reason_code) == ("quarantined", reason)
    assert detail_part in row.reason_detail
    q = tx.quarantined_rows(classify(spark, line)).collect()
    assert q[0].raw_line == line and q[0].reason_code == reason


@pytest.mark.parametrize(
    "line, flags",
    [
        ("C536379,85123A,X,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom",
         {"is_cancellation": True, "is_negative_quantity": True}),
        ("536379,85123A,X,-3,2010-12-01 09:41:00,0,,United Kingdom", {"is_negative_quantity": True,
                                                                     "is_nonpositive_price": True}),
        ("536379,POST,POSTAGE,3,2010-12-01 09:41:00,18,12583.0,EIRE", {"is_non_product": True}),
        ("A563185,22633,Adjust bad debt,1,2011-08-12 14:50:00,-11062.06,,United Kingdom",
         {"is_nonpositive_price": True}),
    ],
)
def test_business_events_are_loaded_and_flagged(spark, line, flags):
    row = one(spark, line)
    assert row.outcome == "loaded"
    for flag in ("is_cancellation", "is_negative_quantity", "is_nonpositive_price", "is_non_product"):
        assert row[flag] is flags.get(flag, False), flag


@pytest.mark.parametrize("text", ["2010-12-01 08:26:00", "12/1/2010 8:26", "2010-12-01T08:26:00",
                                  "2010-12-01T08:26", " 2010-12-01 08:26 "])
def test_date_formats_parse_to_the_same_instant(spark, text):
    row = one(spark, f"536365,85123A,X,6,{text},2.55,17850.0,United Kingdom")
    assert row.outcome == "loaded"
    assert row.invoice_ts == dt.datetime(2010, 12, 1, 8, 26)


@pytest.mark.parametrize("text, expected", [("17850.0", 17850), ("17850", 17850), ("", None)])
def test_customer_id(spark, text, expected):
    row = one(spark, f"536365,85123A,X,6,2010-12-01 08:26:00,2.55,{text},United Kingdom")
    assert row.outcome == "loaded" and row.customer_id_int == expected


def test_quoted_commas_stay_in_the_description(spark):
    row = one(spark, '536365,85123A,"SET OF 3, RED",6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom')
    assert row.outcome == "loaded" and row.description_clean == "SET OF 3, RED"


def read_by_loader(spark, files: dict[str, list[str]]):
    """The records of one landed file per batch as the loader frames them, duplicates flagged while read."""
    landed = []
    for batch, lines in files.items():
        parsed = records.parse_file("\n".join([HEADER, *lines]) + "\n", records.TRANSACTION_COLUMNS, 65536)
        window = dt.datetime(2010, 12, 1, 8)
        landed.append((batch, load.Landed(load.Batch(batch, "transactions", f"file:///landing/{batch}.csv", window,
                                                     window + dt.timedelta(hours=4)), parsed.records, "utf-8", ())))
    return load.records_frame(spark, landed, "batch_id", tx.SOURCE_FIELDS, flag_duplicates=True)


def classified_lines(spark, files: dict[str, list[str]], flagged_by: str):
    """``classify_lines`` of the files' lines, their duplicates found by ``mark_duplicates`` or by the loader."""
    if flagged_by == "loader":
        df = read_by_loader(spark, files)
    else:
        df = received(spark, [(batch, line) for batch, lines in files.items() for line in lines])
    products = spark.createDataFrame(PRODUCTS, "stock_code STRING")
    countries = spark.createDataFrame(COUNTRIES, "source_country_name STRING, country_code STRING")
    return tx.classify_lines(df, products, countries, NON_PRODUCT)


@pytest.mark.parametrize("flagged_by", ["mark_duplicates", "loader"])
def test_exact_duplicates_are_dropped_and_counted_per_batch(spark, flagged_by):
    other = GOOD.replace(",6,", ",7,")
    classified = classified_lines(spark, {"tx_20101201_08": [GOOD, GOOD, GOOD, other, "garbage"]}, flagged_by)
    counts = tx.batch_counts(classified)
    expected = spark.createDataFrame([("tx_20101201_08", 5, 2, 1, 2)],
                                     "batch_id STRING, rows_received LONG, rows_loaded LONG, "
                                     "rows_quarantined LONG, rows_duplicate LONG")
    assertDataFrameEqual(counts, expected)
    assert sorted(r.quantity for r in classified.where("outcome = 'loaded'").collect()) == ["6", "7"]


@pytest.mark.parametrize("flagged_by", ["mark_duplicates", "loader"])
def test_same_line_in_two_batches_is_not_a_duplicate(spark, flagged_by):
    classified = classified_lines(spark, {"tx_20101201_08": [GOOD], "tx_20101201_12": [GOOD]}, flagged_by)
    assert [r.outcome for r in classified.collect()] == ["loaded", "loaded"]


def test_merge_quarantine_keeps_history_of_reloaded_lines(spark):
    t0, t1 = dt.datetime(2010, 12, 1, 9), dt.datetime(2010, 12, 2, 9)
    line = "536365,85123A,X,six,2010-12-01 08:26:00,2.55,17850.0,United Kingdom"
    first = tx.merge_quarantine(
        spark.createDataFrame([], _quarantine_schema(spark)),
        tx.quarantined_rows(classify(spark, line)), ["tx_20101201_08"], F.lit(t0),
    )
    again = tx.merge_quarantine(first, tx.quarantined_rows(classify(spark, line)), ["tx_20101201_08"], F.lit(t1))
    rows = again.collect()
    assert len(rows) == 1
    assert (rows[0].attempts, rows[0].first_seen_at, rows[0].last_attempt_at) == (1, t0, t0)


def _quarantine_schema(spark):
    fields = ", ".join(f"{c} STRING" for c in tx.QUARANTINE_FIELDS)
    return (f"{fields}, attempts INT, first_seen_at TIMESTAMP, last_attempt_at TIMESTAMP, resolved_at TIMESTAMP, "
            "last_retry_date DATE")


@pytest.mark.parametrize("masters_date, outcome", [
    (dt.date(2010, 12, 1), "quarantined"),   # the product's first snapshot is 2010-12-02
    (dt.date(2010, 12, 2), "loaded"),
    (dt.date(2010, 12, 9), "loaded"),
    (None, "loaded"),                        # no masters date: any version counts
])
def test_a_product_counts_as_known_from_its_first_snapshot_only(spark, masters_date, outcome):
    lines = received(spark, [("tx_20101202_00", GOOD, masters_date)], "masters_date DATE")
    products = spark.createDataFrame([("85123A", dt.date(2010, 12, 2)), ("85123A", dt.date(2010, 12, 5))],
                                     "stock_code STRING, known_from DATE")
    countries = spark.createDataFrame(COUNTRIES, "source_country_name STRING, country_code STRING")
    row = tx.classify_lines(lines, products, countries, NON_PRODUCT).collect()[0]
    assert row.outcome == outcome
    if outcome == "quarantined":
        assert row.reason_code == "UNKNOWN_PRODUCT"


WINDOW = (dt.datetime(2010, 12, 1, 8), dt.datetime(2010, 12, 1, 12))


@pytest.mark.parametrize("ts, outcome", [
    ("2010-12-01 08:26:00", "loaded"),
    ("2010-12-01 12:59:00", "loaded"),          # within 60 minutes after the window's end
    ("2010-12-01 13:01:00", "quarantined"),
    ("2099-01-01 00:00:00", "quarantined"),
    ("2010-11-01 08:00:00", "loaded"),          # 30 days before the window's start: a late line
    ("2010-10-30 08:00:00", "quarantined"),
])
def test_a_line_dated_out_of_its_window_range_is_quarantined(spark, ts, outcome):
    line = f"536365,85123A,X,6,{ts},2.55,17850.0,United Kingdom"
    lines = received(spark, [("tx_20101201_08", line, *WINDOW)], "window_start TIMESTAMP, window_end TIMESTAMP")
    products = spark.createDataFrame(PRODUCTS, "stock_code STRING")
    countries = spark.createDataFrame(COUNTRIES, "source_country_name STRING, country_code STRING")
    row = tx.classify_lines(lines, products, countries, NON_PRODUCT, tx.DateRange(60, 31)).collect()[0]
    assert row.outcome == outcome
    if outcome == "quarantined":
        assert row.reason_code == "OUT_OF_RANGE_DATE" and ts in row.reason_detail


@pytest.mark.parametrize("qty, price, outcome", [
    ("999999999", "999999999.999", "quarantined"),   # overflows decimal(18,3)
    ("1001", "999999999", "quarantined"),            # over 10^12 GBP: not a real line
    ("-1001", "999999999", "quarantined"),
    ("1000", "999999", "loaded"),
])
def test_an_amount_too_large_for_the_amount_type_is_bad_amount(spark, qty, price, outcome):
    row = one(spark, f"536365,85123A,X,{qty},2010-12-01 08:26:00,{price},17850.0,United Kingdom")
    assert row.outcome == outcome
    if outcome == "quarantined":
        assert row.reason_code == "BAD_AMOUNT"


def test_a_record_the_reader_could_not_split_keeps_its_reason(spark):
    row = one(spark, "x" * 70000)
    assert (row.outcome, row.reason_code) == ("quarantined", "LINE_TOO_LONG")
