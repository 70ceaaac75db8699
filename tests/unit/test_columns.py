"""``transforms.columns``: ``in_values`` gives the same rows as ``Column.isin`` over dates, integers and awkward
strings; the non-product flag and the date key shared by the star schema and the ingestion."""

import datetime as dt

import pytest

from pipeline.transforms.columns import date_key, in_values, non_product_flag, sql_literal

ROWS = [(1, dt.date(2010, 12, 1), "tx_20101201_0"), (2, dt.date(2010, 12, 2), "it's"),
        (3, dt.date(2011, 1, 4), "back\\slash"), (4, None, None), (5, dt.date(2010, 12, 2), "'; DROP TABLE x; --")]
SCHEMA = "id INT, day DATE, batch_id STRING"


@pytest.mark.parametrize("column, values", [
    ("day", [dt.date(2010, 12, 2)]),
    ("day", [dt.date(2010, 12, 1), dt.date(2011, 1, 4), dt.date(2012, 1, 1)]),
    ("batch_id", ["it's", "back\\slash"]),
    ("batch_id", ["'; DROP TABLE x; --", "tx_20101201_0"]),
    ("id", [2, 5, 99]),
    ("id", []),
], ids=["one date", "dates", "quote and backslash", "injection", "integers", "none"])
def test_in_values_selects_what_isin_selects(spark, column, values):
    df = spark.createDataFrame(ROWS, SCHEMA)
    got = sorted(r.id for r in df.where(in_values(column, values)).collect())
    expected = sorted(r[0] for r in ROWS if r[{"id": 0, "day": 1, "batch_id": 2}[column]] in values)
    assert got == expected


def test_a_date_is_a_date_literal():
    assert sql_literal(dt.date(2010, 12, 1)) == "DATE'2010-12-01'"


def test_in_values_over_an_expression(spark):
    df = spark.createDataFrame([(1, dt.datetime(2010, 12, 1, 23, 59)), (2, dt.datetime(2010, 12, 2, 0, 0))],
                               "id INT, invoice_ts TIMESTAMP")
    assert [r.id for r in df.where(in_values("to_date(invoice_ts)", [dt.date(2010, 12, 2)])).collect()] == [2]


@pytest.mark.parametrize("value", [dt.datetime(2010, 12, 1, 8, 0), 1.5, True, None])
def test_values_without_a_literal_are_refused(value):
    with pytest.raises(TypeError, match="no SQL literal"):
        sql_literal(value)


@pytest.mark.parametrize("code, flagged", [
    ("POST", True), ("DOT", True), ("BANK CHARGES", True), ("gift_0001_20", True), ("85123A", False),
    ("POSTAGE", False), (None, False),
])
def test_the_non_product_flag_matches_the_patterns_and_is_false_for_no_code(spark, code, flagged):
    df = spark.createDataFrame([(code,)], "stock_code STRING")
    patterns = ["POST", "DOT", "BANK CHARGES", "gift\\_%"]
    assert df.select(non_product_flag("stock_code", patterns).alias("f")).first().f is flagged


@pytest.mark.parametrize("day, key", [(dt.date(2010, 12, 1), 20101201), (dt.date(2011, 1, 9), 20110109),
                                      (None, None)])
def test_the_date_key_is_the_date_as_yyyymmdd(spark, day, key):
    df = spark.createDataFrame([(day,)], "d DATE")
    assert df.select(date_key("d").alias("k")).first().k == key
