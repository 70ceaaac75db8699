import datetime as dt
from decimal import Decimal as D

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.transforms import masters

PRODUCTS = ("product_key BIGINT, stock_code STRING, description STRING, unit_price DECIMAL(12,3), "
            "valid_from DATE, valid_to DATE, is_current BOOLEAN")
SNAPSHOT = "snapshot_date DATE, stock_code STRING, description STRING, unit_price DECIMAL(12,3)"
COUNTRIES = ("country_code STRING, country_name STRING, iso3 STRING, region STRING, continent STRING, "
             "source_country_name STRING, first_seen DATE")
COUNTRY_SNAPSHOT = ("snapshot_date DATE, source_country_name STRING, country_code STRING, iso3 STRING, "
                    "country_name STRING, region STRING, continent STRING")
HIGH = dt.date(9999, 12, 31)
D1, D2, D3, D4 = (dt.date(2010, 12, d) for d in (1, 2, 3, 5))

# An existing open version for code A, keyed 11 (keys of existing rows must never change).
A_V1 = (11, "A", "LANTERN", D("2.550"), D1, HIGH, True)


def versions(df):
    """Versions without surrogate keys, for comparison: (code, description, price, from, to, current)."""
    return df.drop("product_key")


def run_scd2(spark, current, snapshots):
    cur = spark.createDataFrame(current, PRODUCTS)
    snaps = spark.createDataFrame(snapshots, SNAPSHOT)
    return masters.apply_product_snapshots(cur, snaps)


def expect(spark, rows):
    return spark.createDataFrame(rows, PRODUCTS.split(", ", 1)[1])


@pytest.mark.parametrize(
    "case, current, snapshots, expected",
    [
        ("new code", [], [(D2, "B", "CANDLE", D("1.000"))],
         [("B", "CANDLE", D("1.000"), D2, HIGH, True)]),
        ("unchanged", [A_V1], [(D2, "A", "LANTERN", D("2.550"))],
         [("A", "LANTERN", D("2.550"), D1, HIGH, True)]),
        ("changed price", [A_V1], [(D2, "A", "LANTERN", D("2.950"))],
         [("A", "LANTERN", D("2.550"), D1, D2, False), ("A", "LANTERN", D("2.950"), D2, HIGH, True)]),
        ("changed description", [A_V1], [(D2, "A", "LANTERN WHITE", D("2.550"))],
         [("A", "LANTERN", D("2.550"), D1, D2, False), ("A", "LANTERN WHITE", D("2.550"), D2, HIGH, True)]),
        ("null to value", [(11, "A", "LANTERN", None, D1, HIGH, True)], [(D2, "A", "LANTERN", D("2.550"))],
         [("A", "LANTERN", None, D1, D2, False), ("A", "LANTERN", D("2.550"), D2, HIGH, True)]),
        ("deleted", [A_V1], [(D2, "B", "CANDLE", D("1.000"))],
         [("A", "LANTERN", D("2.550"), D1, D2, False), ("B", "CANDLE", D("1.000"), D2, HIGH, True)]),
        ("deleted then returns", [A_V1],
         [(D2, "B", "CANDLE", D("1.000")), (D3, "A", "LANTERN", D("2.550")), (D3, "B", "CANDLE", D("1.000"))],
         [("A", "LANTERN", D("2.550"), D1, D2, False), ("A", "LANTERN", D("2.550"), D3, HIGH, True),
          ("B", "CANDLE", D("1.000"), D2, HIGH, True)]),
        ("change and change back over three snapshots", [A_V1],
         [(D2, "A", "LANTERN", D("3.000")), (D3, "A", "LANTERN", D("3.000")), (D4, "A", "LANTERN", D("2.550"))],
         [("A", "LANTERN", D("2.550"), D1, D2, False), ("A", "LANTERN", D("3.000"), D2, D4, False),
          ("A", "LANTERN", D("2.550"), D4, HIGH, True)]),
    ],
)
def test_scd2_cases(spark, case, current, snapshots, expected):
    result = run_scd2(spark, current, snapshots)
    assertDataFrameEqual(versions(result), expect(spark, expected))


def test_existing_keys_are_kept_and_new_keys_are_stable(spark):
    snaps = [(D2, "A", "LANTERN", D("2.950"))]
    first = run_scd2(spark, [A_V1], snaps).orderBy("valid_from").collect()
    second = run_scd2(spark, [A_V1], snaps).orderBy("valid_from").collect()
    assert first[0].product_key == 11
    assert first[1].product_key == second[1].product_key and first[1].product_key not in (11, -1)


def test_closed_history_is_untouched(spark):
    closed = (5, "A", "OLD", D("1.000"), dt.date(2010, 11, 1), D1, False)
    result = run_scd2(spark, [closed, A_V1], [(D2, "A", "LANTERN", D("2.550"))])
    assertDataFrameEqual(result, spark.createDataFrame([closed, A_V1], PRODUCTS))


def test_many_snapshots_at_once_equal_one_at_a_time(spark):
    snaps = [
        (D2, "A", "LANTERN", D("2.950")), (D2, "B", "CANDLE", D("1.000")),
        (D3, "B", "CANDLE", D("1.100")),
        (D4, "A", "LANTERN", D("2.950")), (D4, "C", "BAG", None),
    ]
    at_once = run_scd2(spark, [A_V1], snaps)
    stepwise = spark.createDataFrame([A_V1], PRODUCTS)
    for day in (D2, D3, D4):
        day_snap = spark.createDataFrame([s for s in snaps if s[0] == day], SNAPSHOT)
        stepwise = masters.apply_product_snapshots(stepwise, day_snap).localCheckpoint()
    assertDataFrameEqual(at_once, stepwise)
    current = at_once.where("is_current").groupBy("stock_code").count()
    assert all(r["count"] == 1 for r in current.collect())


def test_versions_never_overlap(spark):
    snaps = [(d, "A", "LANTERN", D(p)) for d, p in ((D2, "3"), (D3, "4"), (D4, "3"))]
    result = run_scd2(spark, [A_V1], snaps).alias("a")
    other = result.alias("b")
    overlaps = result.join(
        other, (F.col("a.stock_code") == F.col("b.stock_code")) & (F.col("a.product_key") != F.col("b.product_key"))
        & (F.col("a.valid_from") < F.col("b.valid_to")) & (F.col("b.valid_from") < F.col("a.valid_to")),
    )
    assert overlaps.count() == 0


@pytest.mark.parametrize(
    "applied, requested, expected",
    [
        (set(), [D2, D1], [D1, D2]),
        ({D1}, [D1], []),  # same-day rerun: nothing to apply
        ({D1, D2}, [D2, D3], [D3]),
        ({D1, D3}, [D2, D4], None),  # D2 is older than the latest applied D3: refused
    ],
)
def test_plan_snapshots(applied, requested, expected):
    if expected is None:
        with pytest.raises(masters.OutOfOrderSnapshot, match="older than the latest applied snapshot 2010-12-03"):
            masters.plan_snapshots(applied, requested)
    else:
        assert masters.plan_snapshots(applied, requested) == expected


UK = ("GB", "United Kingdom", "GBR", "Northern Europe", "Europe", "United Kingdom", D1)


def test_scd0_inserts_new_codes_and_never_rewrites(spark):
    current = spark.createDataFrame([UK], COUNTRIES)
    snaps = spark.createDataFrame([
        (D2, "United Kingdom", "GB", "GBR", "Britain", "Northern Europe", "Europe"),
        (D2, "EIRE", "IE", "IRL", "Ireland", "Northern Europe", "Europe"),
        (D3, "EIRE", "IE", "IRL", "Ireland", "Northern Europe", "Europe"),
        (D3, "France", "FR", "FRA", "France", "Western Europe", "Europe"),
    ], COUNTRY_SNAPSHOT)
    table, changes = masters.apply_country_snapshots(current, snaps)
    assertDataFrameEqual(table, spark.createDataFrame([
        UK,
        ("IE", "Ireland", "IRL", "Northern Europe", "Europe", "EIRE", D2),
        ("FR", "France", "FRA", "Western Europe", "Europe", "France", D3),
    ], COUNTRIES))
    assertDataFrameEqual(changes, spark.createDataFrame(
        [(D2, "GB", "country_name", "United Kingdom", "Britain")],
        "snapshot_date DATE, country_code STRING, attribute STRING, kept_value STRING, snapshot_value STRING",
    ))


def test_scd0_rerun_of_known_snapshot_changes_nothing(spark):
    current = spark.createDataFrame([UK], COUNTRIES)
    snaps = spark.createDataFrame([(D1, "United Kingdom", "GB", "GBR", "United Kingdom", "Northern Europe",
                                    "Europe")], COUNTRY_SNAPSHOT)
    table, changes = masters.apply_country_snapshots(current, snaps)
    assertDataFrameEqual(table, current)
    assert changes.count() == 0


SCREEN = ("snapshot_date DATE, source_file STRING, raw_line STRING, record_error_code STRING, "
          "record_error_detail STRING, stock_code STRING, description STRING, unit_price STRING")


@pytest.mark.parametrize("rows, reasons", [
    ([("A", "LANTERN", "2.55")], [None]),
    ([("A", "LANTERN", "2,55")], ["BAD_PRICE"]),
    ([("A", "LANTERN", "")], [None]),                                    # no price yet is allowed
    ([(" ", "LANTERN", "2.55")], ["EMPTY_KEY"]),
    ([("A", "LANTERN", "2.55"), ("A", "LANTERN", "2.55")], [None, None]),   # an exact repeat: a duplicate
    ([("A", "LANTERN", "2.55"), ("A", "LANTERN", "2.60")], ["CONFLICTING_DUPLICATE"] * 2),
    ([("A", "LANTERN", "2.55"), ("A", "LANTERN", "x"), ("B", "CUP", "1")], [None, "BAD_PRICE", None]),
])
def test_screen_snapshot_refuses_bad_rows_with_a_reason(spark, rows, reasons):
    df = spark.createDataFrame([(D1, "p.csv", ",".join(r), None, None, *r) for r in rows], SCREEN)
    got = masters.screen_snapshot(df, "stock_code", ["stock_code", "description", "unit_price"],
                                  {"unit_price": ("decimal(12,3)", "BAD_PRICE")})
    by_line = sorted((r.raw_line, r.reason_code) for r in got.collect())
    assert by_line == sorted((",".join(r), why) for r, why in zip(rows, reasons, strict=True))


def test_a_record_the_reader_could_not_split_is_refused_with_its_reason(spark):
    df = spark.createDataFrame([(D1, "p.csv", "A,B", "UNPARSEABLE_ROW", "expected 3 fields, found 2", "A", "B",
                                 None)], SCREEN)
    row = masters.screen_snapshot(df, "stock_code", ["stock_code", "description", "unit_price"], {}).first()
    assert (row.reason_code, row.reason_detail) == ("UNPARSEABLE_ROW", "expected 3 fields, found 2")


def test_a_held_code_keeps_its_version_on_that_date(spark):
    """A's record on D2 was refused: A is neither changed nor closed on D2, and changes on D3."""
    cur = spark.createDataFrame([A_V1], PRODUCTS)
    snaps = spark.createDataFrame([(D2, "B", "CUP", D("1.000")), (D3, "A", "LANTERN", D("2.990")),
                                   (D3, "B", "CUP", D("1.000"))], SNAPSHOT)
    held = spark.createDataFrame([(D2, "A")], "snapshot_date DATE, stock_code STRING")
    got = masters.apply_product_snapshots(cur, snaps, held).where("stock_code = 'A'")
    assertDataFrameEqual(versions(got), expect(spark, [
        ("A", "LANTERN", D("2.550"), D1, D3, False), ("A", "LANTERN", D("2.990"), D3, HIGH, True)]))
