"""A task of one date with few fact rows runs its queries interpreted and leaves the session's settings as it
found them; the results are the same either way."""

import types
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline import config
from pipeline.engine import spark as sp

CODEGEN = ("spark.sql.codegen.wholeStage", "spark.sql.codegen.factoryMode")


def lines(spark):
    return spark.createDataFrame([("85123A", 6, Decimal("2.55")), ("85123A", -2, Decimal("2.55")),
                                  ("71053", 6, Decimal("3.39")), ("POST", 1, None)],
                                 "stock_code STRING, quantity INT, unit_price DECIMAL(10,2)")


def per_product(df):
    return df.groupBy("stock_code").agg(F.sum("quantity").alias("units"),
                                        F.sum(F.col("quantity") * F.col("unit_price")).alias("amount"))


@pytest.mark.parametrize(("rows", "inside"), [(0, ["false", "NO_CODEGEN"]), (100_000, ["false", "NO_CODEGEN"]),
                                           (100_001, ["true", "FALLBACK"]), (None, ["true", "FALLBACK"])])
def test_few_rows_run_interpreted_and_the_settings_come_back(spark, monkeypatch, rows, inside):
    monkeypatch.setattr(config, "spark", lambda: types.SimpleNamespace(interpreted_max_rows=100_000))
    assert [spark.conf.get(k) for k in CODEGEN] == ["true", "FALLBACK"]
    with sp.one_date_queries(spark, rows) as session:
        assert [session.conf.get(k) for k in CODEGEN] == inside
        got = per_product(lines(session)).collect()
    assert [spark.conf.get(k) for k in CODEGEN] == ["true", "FALLBACK"]
    assertDataFrameEqual(got, [("85123A", 4, Decimal("10.20")), ("71053", 6, Decimal("20.34")), ("POST", 1, None)])


def test_a_limit_of_zero_always_generates_code(spark, monkeypatch):
    monkeypatch.setattr(config, "spark", lambda: types.SimpleNamespace(interpreted_max_rows=0))
    with sp.one_date_queries(spark, 0) as session:
        assert [session.conf.get(k) for k in CODEGEN] == ["true", "FALLBACK"]


def test_the_settings_come_back_when_the_block_fails(spark, monkeypatch):
    monkeypatch.setattr(config, "spark", lambda: types.SimpleNamespace(interpreted_max_rows=100_000))
    with pytest.raises(ZeroDivisionError), sp.one_date_queries(spark, 10):
        1 / 0  # noqa: B018
    assert [spark.conf.get(k) for k in CODEGEN] == ["true", "FALLBACK"]
