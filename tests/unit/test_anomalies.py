"""Anomaly rules on small series whose medians, deviations and scores are worked out by hand here."""

import datetime as dt
from decimal import Decimal as D

import pandas as pd
import pytest

from pipeline.transforms import anomalies

FACT = ("invoice_date DATE, invoice_no STRING, stock_code STRING, invoice_ts TIMESTAMP, customer_key BIGINT, "
        "quantity INT, unit_price_paid DECIMAL(12,3), line_amount DECIMAL(18,3), is_cancellation BOOLEAN")
HISTORY_DAY, SCORED_DAY = dt.date(2011, 1, 3), dt.date(2011, 1, 18)


def line(invoice, code, qty, price="1.00", day=HISTORY_DAY, cancel=False):
    ts = dt.datetime.combine(day, dt.time(10)) + dt.timedelta(minutes=int(invoice[-3:]) % 600)
    return (day, invoice, code, ts, 1, qty, D(price), D(price) * qty, cancel)


@pytest.fixture
def history(spark):
    # A: 10, 12, 12, 12, 14 -> median 12, sample stddev sqrt(8/4) = 1.4142, MAD 0, mean abs deviation 0.8
    # B: three lines only (below a minimum history of 5)
    # C: 9, 10, 10, 10, 11 and one earlier bulk order of 500 -> median 10, stddev 199.5, MAD 0.5
    rows = [line(f"5{i:05d}", "A", q) for i, q in enumerate([10, 12, 12, 12, 14])]
    rows += [line(f"6{i:05d}", "B", 2) for i in range(3)]
    rows += [line(f"7{i:05d}", "C", q) for i, q in enumerate([9, 10, 10, 10, 11, 500])]
    rows += [line("C80000", "A", -500, cancel=True)]       # cancellations never count
    return spark.createDataFrame(rows, FACT)


def no_false_positives(spark):
    return spark.createDataFrame([], "line_id STRING")


def baselined(spark, history, day_rows, false_positives=None, dates=(SCORED_DAY,), baseline_days=90):
    fact = history.unionByName(spark.createDataFrame(day_rows, FACT))
    return anomalies.product_baselines(fact, list(dates), false_positives or no_false_positives(spark),
                                       baseline_days)


def flagged(spark, history, day_rows, rule, threshold, min_history=5, false_positives=None, min_spread=1.0):
    return {(r.invoice_no, r.metric): r for r in anomalies.score_lines(
        baselined(spark, history, day_rows, false_positives), rule, threshold, min_history, min_spread).collect()}


def test_baselines_by_hand(spark, history):
    day = [line("900001", "A", 1, day=SCORED_DAY), line("900002", "C", 1, day=SCORED_DAY)]
    rows = {(r.stock_code, r.metric): r for r in baselined(spark, history, day).collect()}
    a = rows[("A", "quantity")]
    assert (a.baseline_lines, a.baseline_median, a.baseline_mad) == (5, 12.0, 0.0)
    assert a.baseline_stddev == pytest.approx(2 ** 0.5)
    assert a.baseline_meanad == pytest.approx(0.8)
    c = rows[("C", "quantity")]
    assert (c.baseline_lines, c.baseline_median, c.baseline_mad) == (6, 10.0, 0.5)


def test_each_date_of_a_range_has_its_own_trailing_window(spark):
    # baseline of 10 days. Product P sells 1 unit on 01-01 and 01-05, 3 units on 01-10, 5 on 01-11.
    # Scored together, 01-11 sees 01-01 (10 days before: in), 01-05 and 01-10 -> 1, 1, 3: median 1, MAD 0;
    # 01-12 sees 01-05, 01-10 and 01-11 (01-01 is 11 days before: out) -> 1, 3, 5: median 3, MAD 2;
    # 01-10 sees 01-01 and 01-05; a line never counts for its own day
    days = [dt.date(2011, 1, d) for d in (1, 5, 10, 11, 12)]
    fact = spark.createDataFrame([line(f"10000{i}", "P", q, day=d) for i, (d, q) in
                                  enumerate(zip(days, [1, 1, 3, 5, 7], strict=True))], FACT)
    rows = {(r.invoice_date.day, r.metric): r for r in anomalies.product_baselines(
        fact, days[2:], no_false_positives(spark), baseline_days=10).collect()}
    assert sorted(d for d, m in rows if m == "quantity") == [10, 11, 12]
    got = {d: (rows[(d, "quantity")].baseline_lines, rows[(d, "quantity")].baseline_median,
               rows[(d, "quantity")].baseline_mad) for d in (10, 11, 12)}
    assert got == {10: (2, 1.0, 0.0), 11: (3, 1.0, 0.0), 12: (3, 3.0, 2.0)}


@pytest.mark.parametrize("partitions", [1, 3])
def test_products_sharing_a_partition_keep_their_own_history(spark, partitions):
    # on interleaved days, P sells 1 and 3; Q sells 10, 20 and 40, and its 40 is a false positive.
    # Scored on 01-10: P -> 1, 3: median 2; Q without the false positive -> 10, 20: median 15, MAD 5
    sales = [("P", 1, 1), ("Q", 10, 2), ("P", 3, 3), ("Q", 20, 4), ("Q", 40, 5), ("P", 2, 10), ("Q", 30, 10)]
    fact = spark.createDataFrame([line(f"20000{i}", code, q, day=dt.date(2011, 1, d))
                                  for i, (code, q, d) in enumerate(sales)], FACT)
    false_positive = fact.where("invoice_no = '200004'").select(anomalies.line_id().alias("line_id"))
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    try:
        rows = {(r.stock_code, r.metric): r for r in anomalies.product_baselines(
            fact, [dt.date(2011, 1, 10)], false_positive, baseline_days=30).collect()}
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    got = {code: (rows[(code, "quantity")].baseline_lines, rows[(code, "quantity")].baseline_median,
                  rows[(code, "quantity")].baseline_mad) for code in "PQ"}
    assert got == {"P": (2, 2.0, 1.0), "Q": (2, 15.0, 5.0)}


def test_store_baselines_by_hand_per_date_and_metric():
    sales = pd.DataFrame({"invoice_date": [dt.date(2011, 1, d) for d in (1, 2, 2, 5)],
                          "quantity": [1.0, 2.0, 6.0, 100.0], "line_amount": [1.0, 2.0, 3.0, 4.0]})
    got = anomalies.store_baselines(sales, [dt.date(2011, 1, 3), dt.date(2011, 1, 6)], baseline_days=4)
    rows = {(r.score_date.day, r.metric): r for r in got.itertuples()}
    # 01-03: lines of 12-30 .. 01-02 -> 1, 2, 6: median 2, deviations 1, 0, 4 -> MAD 1, mean 5/3
    q = rows[(3, "quantity")]
    assert (q.baseline_lines, q.baseline_median, q.baseline_mad) == (3, 2.0, 1.0)
    assert q.baseline_meanad == pytest.approx(5 / 3)
    assert q.baseline_stddev == pytest.approx(7 ** 0.5)  # mean 3: (4 + 1 + 9) / 2
    # 01-06: lines of 01-02 .. 01-05 -> 2, 6, 100: median 6 (01-01 is 5 days before: out)
    assert (rows[(6, "quantity")].baseline_lines, rows[(6, "quantity")].baseline_median) == (3, 6.0)
    assert (rows[(6, "line_amount")].baseline_median, rows[(6, "line_amount")].baseline_mad) == (3.0, 1.0)


@pytest.mark.parametrize(
    "qty, stddev_flags, mad_flags",
    [
        (14, False, False),   # stddev score 2/1.414 = 1.41; MAD score 2/(1.2533*0.8) = 1.99
        (15, True, False),    # 3/1.414 = 2.12 > 2;           3/1.0026 = 2.99 < 3.5
        (16, True, True),     # 4/1.414 = 2.83;               4/1.0026 = 3.99 > 3.5
    ],
)
def test_both_rules_on_a_steady_product(spark, history, qty, stddev_flags, mad_flags):
    day = [line("900001", "A", qty, day=SCORED_DAY)]
    assert (("900001", "quantity") in flagged(spark, history, day, "stddev", 2.0)) is stddev_flags
    assert (("900001", "quantity") in flagged(spark, history, day, "mad", 3.5)) is mad_flags


def test_scores_and_baseline_are_recorded(spark, history):
    row = flagged(spark, history, [line("900001", "A", 16, day=SCORED_DAY)], "stddev", 2.0)[("900001", "quantity")]
    assert row.score == pytest.approx(2.828, abs=1e-3)
    assert (row.baseline_lines, row.baseline_median, row.rule, row.threshold) == (5, 12.0, "stddev", 2.0)
    assert row.baseline_spread == pytest.approx(2 ** 0.5)


def test_an_earlier_bulk_order_hides_a_new_one_from_the_stddev_rule_but_not_from_mad(spark, history):
    day = [line("900002", "C", 300, day=SCORED_DAY)]
    # stddev: (300 - 10) / 199.5 = 1.45, not flagged. MAD: robust spread 0.5 / 0.6745 = 0.74, raised to the
    # 1-unit floor, so the score is 290 / 1; with no floor it is 0.6745 * 290 / 0.5 = 391.2
    assert ("900002", "quantity") not in flagged(spark, history, day, "stddev", 2.0)
    assert flagged(spark, history, day, "mad", 3.5)[("900002", "quantity")].score == 290
    unfloored = flagged(spark, history, day, "mad", 3.5, min_spread=0)
    assert unfloored[("900002", "quantity")].score == pytest.approx(391.21, abs=0.01)


def test_amount_alone_can_be_anomalous(spark, history):
    got = flagged(spark, history, [line("900003", "A", 12, price="10.00", day=SCORED_DAY)], "mad", 3.5)
    assert set(got) == {("900003", "line_amount")}


def test_products_below_the_minimum_history_and_returns_are_not_scored(spark, history):
    day = [line("900004", "B", 1000, day=SCORED_DAY), line("C90005", "A", -1000, day=SCORED_DAY, cancel=True)]
    assert flagged(spark, history, day, "stddev", 2.0) == {}
    # with a minimum of 3, B (always 2 units, no spread) is scored against the 1-unit floor: (1000 - 2) / 1
    assert flagged(spark, history, day[:1], "stddev", 2.0, min_history=3)[("900004", "quantity")].score == 998


def test_false_positives_leave_the_baseline(spark, history):
    extra = spark.createDataFrame([line("590000", "A", 100)], FACT)
    contaminated = history.unionByName(extra)
    fp = extra.select(anomalies.line_id().alias("line_id"))  # the id of a line, as the status log holds it
    day = [line("900006", "A", 16, day=SCORED_DAY)]
    assert ("900006", "quantity") not in flagged(spark, contaminated, day, "stddev", 2.0)
    assert ("900006", "quantity") in flagged(spark, contaminated, day, "stddev", 2.0, false_positives=fp)


def test_an_unknown_rule_is_a_clear_error(spark, history):
    with pytest.raises(ValueError, match="unknown anomaly rule 'zscore'"):
        anomalies.score_lines(baselined(spark, history, []), "zscore", 2.0, 5)


def test_the_latest_status_change_wins_and_unreviewed_lines_are_new(spark):
    flags = spark.createDataFrame([("a", 1.0), ("b", 2.0)], "line_id STRING, score DOUBLE")
    t = dt.datetime(2011, 1, 19, 9)
    log = spark.createDataFrame([
        ("a", SCORED_DAY, "ACKNOWLEDGED", "alice", t, ""),
        ("a", SCORED_DAY, "FALSE_POSITIVE", "bob", t + dt.timedelta(hours=1), "wholesale customer"),
    ], "line_id STRING, invoice_date DATE, status STRING, changed_by STRING, changed_at TIMESTAMP, note STRING")
    rows = {r.line_id: r for r in anomalies.with_status(flags, log).collect()}
    assert (rows["a"].status, rows["a"].status_changed_by) == ("FALSE_POSITIVE", "bob")
    assert (rows["b"].status, rows["b"].status_changed_by) == ("NEW", None)


@pytest.mark.parametrize("qty, is_flagged", [(20, False), (21, True)])
def test_new_products_are_scored_against_the_store_baseline(spark, history, qty, is_flagged):
    # all 14 sale lines: median 10; absolute deviations 0,0,0,0,1,1,2,2,2,4,8,8,8,490 -> MAD 2,
    # spread 2 / 0.6745 = 2.965: 20 scores 3.372, 21 scores 11 / 2.965 = 3.710 against 3.5
    fps = no_false_positives(spark)
    day = [line("900001", "NEW", qty, day=SCORED_DAY), line("900002", "B", qty, day=SCORED_DAY)]
    fact = history.unionByName(spark.createDataFrame(day, FACT))
    sales = anomalies.store_sales(fact, [SCORED_DAY], fps, 90).toPandas()
    store = spark.createDataFrame(anomalies.store_baselines(sales, [SCORED_DAY], 90), anomalies.STORE_BASELINE_SCHEMA)
    baselines = baselined(spark, history, day)
    rows = {(r.invoice_no, r.metric): r for r in
            anomalies.score_lines(baselines, "mad", 3.5, 5, store=store).collect()}
    assert (("900001", "quantity") in rows) is is_flagged
    assert (("900002", "quantity") in rows) is is_flagged  # B has 3 lines, below the minimum of 5
    if is_flagged:
        r = rows[("900001", "quantity")]
        assert (r.baseline_scope, r.baseline_lines, r.baseline_median, r.score) == ("store", 14, 10.0, 3.71)
    assert not anomalies.score_lines(baselines, "mad", 3.5, 5).collect()  # without a store baseline
