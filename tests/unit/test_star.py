"""Star schema transforms on hand-built rows; every expected value is worked out by hand here."""

import datetime as dt
from decimal import Decimal as D

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline.transforms import star

HIGH = dt.date(9999, 12, 31)
RAW = ("invoice_no STRING, stock_code STRING, description STRING, quantity INT, invoice_ts TIMESTAMP, "
       "unit_price DECIMAL(12,3), customer_id INT, country_name STRING, country_code STRING, "
       "is_cancellation BOOLEAN, is_negative_quantity BOOLEAN, is_nonpositive_price BOOLEAN, "
       "is_non_product BOOLEAN, source_file STRING, ingested_at TIMESTAMP, batch_id STRING")
PRODUCTS = ("product_key BIGINT, stock_code STRING, description STRING, unit_price DECIMAL(12,3), "
            "valid_from DATE, valid_to DATE, is_current BOOLEAN")


def raw(invoice, code, qty, ts, price, customer, country="GB"):
    return (invoice, code, "X", qty, ts, D(price), customer, "n", country, invoice.startswith("C"), qty < 0,
            D(price) <= 0, code == "POST", "f.csv", dt.datetime(2026, 1, 1), "tx")


def test_dim_date_calendar_attributes_and_bank_holidays(spark):
    calendar = spark.createDataFrame([(dt.date(2010, 12, 24),), (dt.date(2010, 12, 25),), (dt.date(2010, 12, 27),)],
                                     "date DATE")
    holidays = spark.createDataFrame([(dt.date(2010, 12, 27), "Christmas Day (observed)")],
                                     "date DATE, holiday_name STRING")
    rows = {r.date_key: r for r in star.dim_date(calendar, holidays).collect()}
    assert sorted(rows) == [-1, 20101224, 20101225, 20101227]
    fri, sat, mon = rows[20101224], rows[20101225], rows[20101227]
    assert (fri.day_of_week, fri.day_name, fri.is_weekend, fri.is_uk_bank_holiday) == (5, "Friday", False, False)
    assert (sat.day_of_week, sat.is_weekend) == (6, True)
    assert (mon.day_of_week, mon.is_uk_bank_holiday, mon.bank_holiday_name) == (1, True, "Christmas Day (observed)")
    assert (mon.iso_week, mon.month, mon.month_name, mon.quarter, mon.year) == (52, 12, "December", 4, 2010)


@pytest.fixture
def products(spark):
    return spark.createDataFrame([
        (1, "A", "LANTERN", D("2.550"), dt.date(2010, 12, 1), dt.date(2010, 12, 3), False),
        (2, "A", "LANTERN", D("2.950"), dt.date(2010, 12, 3), HIGH, True),
        (3, "POST", "POSTAGE", D("18.000"), dt.date(2010, 12, 1), HIGH, True),
    ], PRODUCTS)


def test_dim_product_flags_merchandise_and_adds_the_unknown_member(spark, products):
    dim = {r.product_key: r for r in star.dim_product(products, ["POST", "gift_0001_%"]).collect()}
    assert (dim[1].is_merchandise, dim[3].is_merchandise) == (True, False)
    assert (dim[-1].stock_code, dim[-1].is_merchandise, dim[-1].valid_to) == ("UNKNOWN", False, HIGH)


@pytest.mark.parametrize(
    "ts, expected_key, expected_list_price",
    [
        (dt.datetime(2010, 12, 2, 9, 0), 1, D("2.550")),   # before the price change
        (dt.datetime(2010, 12, 3, 0, 5), 2, D("2.950")),   # on the day the new version starts
        (dt.datetime(2010, 11, 30, 9, 0), -1, None),       # before any version: unknown member
    ],
)
def test_fact_sales_picks_the_product_version_in_force(spark, products, ts, expected_key, expected_list_price):
    lines = spark.createDataFrame([raw("536365", "A", 6, ts, "2.55", 17850)], RAW)
    row = star.fact_sales(lines, star.dim_product(products, ["POST"])).collect()[0]
    assert (row.product_key, row.list_unit_price) == (expected_key, expected_list_price)
    assert row.line_amount == D("15.300")
    assert row.date_key == ts.year * 10000 + ts.month * 100 + ts.day


def test_fact_sales_unknown_members_for_guests_and_unspecified_country(spark, products):
    lines = spark.createDataFrame([raw("536366", "A", 2, dt.datetime(2010, 12, 2, 9), "2.55", None, "XX"),
                                   raw("536367", "A", 2, dt.datetime(2010, 12, 2, 9), "2.55", 17850, "GB")], RAW)
    rows = star.fact_sales(lines, star.dim_product(products, ["POST"])).orderBy("invoice_no").collect()
    assert (rows[0].customer_key, rows[0].country_key) == (-1, -1)
    assert rows[1].customer_key > 0 and rows[1].country_key > 0


def test_dim_customer_home_country_and_order_dates(spark):
    lines = spark.createDataFrame([
        raw("1", "A", 1, dt.datetime(2010, 12, 1, 9), "1", 100, "GB"),
        raw("1", "B", 1, dt.datetime(2010, 12, 1, 9), "1", 100, "GB"),
        raw("2", "A", 1, dt.datetime(2010, 12, 5, 9), "1", 100, "GB"),
        raw("3", "A", 1, dt.datetime(2010, 12, 7, 9), "1", 100, "FR"),
        raw("C4", "A", -1, dt.datetime(2010, 12, 9, 9), "1", 100, "FR"),
        raw("5", "A", 1, dt.datetime(2010, 12, 2, 9), "1", None, "GB"),
    ], RAW)
    dim = star.dim_customer(star.customer_sales_daily(lines))
    rows = {r.customer_id: r for r in dim.collect()}
    assert set(rows) == {100, None}
    c = rows[100]
    assert (c.home_country_code, c.first_order_date, c.last_order_date) == ("GB", dt.date(2010, 12, 1),
                                                                           dt.date(2010, 12, 7))
    assert rows[None].customer_key == -1


FACT = ("invoice_date DATE, country_key BIGINT, invoice_no STRING, quantity INT, line_amount DECIMAL(18,3), "
        "is_cancellation BOOLEAN, customer_key BIGINT")


def test_mart_daily_sales_definitions(spark):
    d = dt.date(2010, 12, 1)
    fact = spark.createDataFrame([
        (d, 10, "1", 6, D("15.300"), False, 100),      # order 1: 6 x 2.55
        (d, 10, "1", 2, D("6.000"), False, 100),       # order 1: 2 x 3.00
        (d, 10, "2", 10, D("10.000"), False, -1),      # guest order: counts in revenue, not in customers
        (d, 10, "C3", -2, D("-5.100"), True, 100),     # cancellation: a return of 5.10
        (d, 20, "4", 1, D("5.000"), False, 200),
    ], FACT)
    countries = spark.createDataFrame([(10, "GB", "United Kingdom"), (20, "FR", "France")],
                                      "country_key BIGINT, country_code STRING, country_name STRING")
    expected = spark.createDataFrame([
        (d, 10, "GB", "United Kingdom", 2, 4, 18, D("31.300"), D("5.100"), D("26.200"), 1, D("15.650")),
        (d, 20, "FR", "France", 1, 1, 1, D("5.000"), D("0.000"), D("5.000"), 1, D("5.000")),
    ], "invoice_date DATE, country_key BIGINT, country_code STRING, country_name STRING, orders BIGINT, "
       "lines BIGINT, units BIGINT, gross_revenue DECIMAL(18,3), returns_amount DECIMAL(18,3), "
       "net_revenue DECIMAL(18,3), customers BIGINT, avg_order_value DECIMAL(18,3)")
    result = star.mart_daily_sales(fact, countries)
    assertDataFrameEqual(result.select(*[F.col(c).cast(t.dataType) for c, t in
                                         zip(expected.columns, expected.schema.fields, strict=True)]), expected)


FACT_FULL = ("invoice_date DATE, invoice_ts TIMESTAMP, product_key BIGINT, country_key BIGINT, "
             "customer_key BIGINT, invoice_no STRING, stock_code STRING, quantity INT, "
             "unit_price_paid DECIMAL(12,3), line_amount DECIMAL(18,3), list_unit_price DECIMAL(12,3), "
             "is_cancellation BOOLEAN")


@pytest.fixture
def fact_rows(spark):
    d = dt.date(2010, 12, 1)
    t9, t10 = dt.datetime(2010, 12, 1, 9, 5), dt.datetime(2010, 12, 1, 10, 40)
    return spark.createDataFrame([
        (d, t9, 1, 10, 100, "1", "A", 6, D("2.550"), D("15.300"), D("2.550"), False),
        (d, t9, 3, 10, 100, "1", "POST", 1, D("18.000"), D("18.000"), D("18.000"), False),
        (d, t10, 1, 10, -1, "2", "A", 4, D("2.100"), D("8.400"), D("2.550"), False),
        (d, t10, 1, 10, 100, "C3", "A", -2, D("2.550"), D("-5.100"), D("2.550"), True),
    ], FACT_FULL)


def test_mart_hourly_sales(spark, fact_rows):
    rows = {r.hour: r for r in star.mart_hourly_sales(fact_rows).collect()}
    assert sorted(rows) == [9, 10]
    h9, h10 = rows[9], rows[10]
    assert (h9.orders, h9.lines, h9.units, h9.gross_revenue, h9.returns_amount, h9.customers) == (
        1, 2, 7, D("33.300"), D("0.000"), 1)
    # 10:00: one guest order of 4 units (8.40) and a cancellation of 2 units (5.10) by customer 100
    assert (h10.orders, h10.lines, h10.units, h10.gross_revenue, h10.returns_amount, h10.net_revenue,
            h10.customers) == (1, 2, 4, D("8.400"), D("5.100"), D("3.300"), 1)


def test_mart_product_performance(spark, fact_rows, products):
    dim = star.dim_product(products, ["POST"])
    rows = {r.stock_code: r for r in star.mart_product_performance(fact_rows, dim).collect()}
    a = rows["A"]
    # sales: 6 x 2.55 + 4 x 2.10 = 23.70 over 10 units -> 2.37 paid on average vs 2.55 list; 2 returned (5.10)
    assert (a.orders, a.units, a.gross_revenue, a.returned_units, a.returns_amount) == (2, 10, D("23.700"), 2,
                                                                                       D("5.100"))
    assert (a.avg_price_paid, a.list_unit_price, a.description, a.is_merchandise) == (D("2.370"), D("2.550"),
                                                                                      "LANTERN", True)
    assert rows["POST"].is_merchandise is False


def test_mart_customer_purchase_history_is_known_customers_only(spark, fact_rows, products):
    customers = spark.createDataFrame([(100, 17850)], "customer_key BIGINT, customer_id INT")
    countries = spark.createDataFrame([(10, "United Kingdom")], "country_key BIGINT, country_name STRING")
    rows = star.mart_customer_purchase_history(fact_rows, customers, star.dim_product(products, []),
                                               countries).collect()
    assert sorted((r.invoice_no, r.stock_code, r.quantity) for r in rows) == [("1", "A", 6), ("1", "POST", 1),
                                                                               ("C3", "A", -2)]
    assert {(r.customer_id, r.country_name) for r in rows} == {(17850, "United Kingdom")}
    assert {r.description for r in rows} == {"LANTERN", "POSTAGE"}


def test_customer_sales_daily_leaves_guests_out_and_splits_gross_and_returns(spark):
    lines = spark.createDataFrame([
        raw("1", "A", 6, dt.datetime(2010, 12, 1, 9), "2.55", 100),      # 15.30
        raw("1", "B", 2, dt.datetime(2010, 12, 1, 9), "3.00", 100),      # 6.00, same order
        raw("C2", "A", -2, dt.datetime(2010, 12, 1, 11), "2.55", 100),   # return of 5.10
        raw("3", "A", 1, dt.datetime(2010, 12, 1, 12), "2.55", None),    # guest
    ], RAW)
    expected = spark.createDataFrame([(100, dt.date(2010, 12, 1), "GB", 1, 3, D("21.300"), D("5.100"))],
                                     SALES_DAILY)
    assertDataFrameEqual(star.customer_sales_daily(lines), expected)


SALES_DAILY = ("customer_id INT, invoice_date DATE, country_code STRING, orders BIGINT, lines BIGINT, "
               "gross_revenue DECIMAL(18,3), returns_amount DECIMAL(18,3)")


def sales(customer, day, orders, gross="0", returns="0"):
    return (customer, day, "GB", orders, max(orders, 1), D(gross), D(returns))


@pytest.fixture
def sales_daily(spark):
    return spark.createDataFrame([
        sales(1, dt.date(2010, 12, 1), 1, "10"),
        sales(1, dt.date(2011, 1, 9), 2, "50", "5"),
        sales(2, dt.date(2010, 12, 3), 1, "20"),
        sales(3, dt.date(2011, 1, 5), 1, "100"),
        sales(4, dt.date(2010, 12, 2), 3, "30", "30"),
        sales(5, dt.date(2010, 12, 4), 0, "0", "7"),      # only a cancellation: no order, no RFM row
    ], SALES_DAILY)


def test_mart_customer_rfm_scores_and_segments_per_run_date(spark, sales_daily):
    runs = spark.createDataFrame([(dt.date(2011, 1, 10),), (dt.date(2010, 12, 5),)], "as_of_date DATE")
    result = star.mart_customer_rfm(sales_daily, runs).select(
        "as_of_date", "customer_id", "recency_days", "frequency", "monetary_gbp", "r_score", "f_score", "m_score",
        "rfm_cell", "segment")
    jan, dec = dt.date(2011, 1, 10), dt.date(2010, 12, 5)
    # as of 2011-01-10, four customers, percent ranks 0, 1/3, 2/3, 1 -> scores 1, 2, 4, 5 (ties share the lower)
    # as of 2010-12-05, customer 3 has not ordered yet; three customers, ranks 0, 1/2, 1 -> scores 1, 3, 5
    expected = spark.createDataFrame([
        (jan, 1, 1, 3, D("55.000"), 5, 4, 4, "544", "Champions"),
        (jan, 2, 38, 1, D("20.000"), 2, 1, 2, "212", "Hibernating"),
        (jan, 3, 5, 1, D("100.000"), 4, 1, 5, "415", "New"),
        (jan, 4, 39, 3, D("0.000"), 1, 4, 1, "141", "At risk"),
        (dec, 1, 4, 1, D("10.000"), 1, 1, 3, "113", "Lost"),
        (dec, 2, 2, 1, D("20.000"), 5, 1, 5, "515", "New"),
        (dec, 4, 3, 3, D("0.000"), 3, 5, 1, "351", "Loyal"),
    ], "as_of_date DATE, customer_id INT, recency_days INT, frequency BIGINT, monetary_gbp DECIMAL(18,3), "
       "r_score INT, f_score INT, m_score INT, rfm_cell STRING, segment STRING")
    assertDataFrameEqual(result, expected)


def test_mart_customer_rfm_keys_are_the_dimension_keys(spark, sales_daily):
    runs = spark.createDataFrame([(dt.date(2011, 1, 10),)], "as_of_date DATE")
    rfm = {r.customer_id: r.customer_key for r in star.mart_customer_rfm(sales_daily, runs).collect()}
    dim = {r.customer_id: r.customer_key for r in star.dim_customer(sales_daily).collect()}
    assert rfm == {c: dim[c] for c in (1, 2, 3, 4)}


def test_mart_cohort_retention_lists_every_month_with_zeros(spark):
    rows = spark.createDataFrame([
        sales(1, dt.date(2010, 12, 5), 1), sales(1, dt.date(2011, 1, 10), 1), sales(1, dt.date(2011, 2, 1), 1),
        sales(2, dt.date(2010, 12, 20), 1), sales(2, dt.date(2011, 2, 10), 2),
        sales(3, dt.date(2011, 1, 3), 1),
        sales(4, dt.date(2011, 1, 4), 0),        # only a cancellation: in no cohort
        sales(5, dt.date(2011, 3, 1), 1),        # after the run date
    ], SALES_DAILY)
    as_of = dt.date(2011, 2, 15)
    dec, jan, feb = dt.date(2010, 12, 1), dt.date(2011, 1, 1), dt.date(2011, 2, 1)
    expected = spark.createDataFrame([
        (as_of, dec, 0, dec, 2, 2, D("1.0000")),
        (as_of, dec, 1, jan, 2, 1, D("0.5000")),
        (as_of, dec, 2, feb, 2, 2, D("1.0000")),
        (as_of, jan, 0, jan, 1, 1, D("1.0000")),
        (as_of, jan, 1, feb, 1, 0, D("0.0000")),
    ], "as_of_date DATE, cohort_month DATE, months_since INT, activity_month DATE, cohort_customers BIGINT, "
       "customers_active BIGINT, retention_rate DECIMAL(6,4)")
    runs = spark.createDataFrame([(as_of,), (dt.date(2010, 12, 31),)], "as_of_date DATE")
    expected = expected.unionByName(spark.createDataFrame(
        [(dt.date(2010, 12, 31), dec, 0, dec, 2, 2, D("1.0000"))], expected.schema))   # December only
    assertDataFrameEqual(star.mart_cohort_retention(rows, runs), expected)


RECON_FACT = ("invoice_date DATE, product_key BIGINT, country_key BIGINT, invoice_no STRING, quantity INT, "
              "line_amount DECIMAL(18,3), is_cancellation BOOLEAN")


@pytest.mark.parametrize(
    "fact_rows, mart_gross, failing",
    [
        ([(1, 10, "1", 6, "15.300", False), (1, 10, "C2", -2, "-5.100", True)], "15.300", set()),
        ([(1, 10, "1", 6, "15.300", False), (1, 10, "C2", -2, "-5.100", True)], "15.000", {"mart_gross_revenue"}),
        ([(1, 10, "1", 6, "15.300", False)], "15.300",
         {"fact_lines", "fact_line_amount", "mart_returns_amount"}),
        ([(1, 10, "1", 6, "15.300", False), (9, 10, "C2", -2, "-5.100", True)], "15.300",
         {"fact_orphans_product_key"}),
    ],
    ids=["consistent", "mart-off", "fact-missing-a-line", "orphan-product"],
)
def test_reconciliation_names_the_failing_checks(spark, fact_rows, mart_gross, failing):
    d = dt.date(2010, 12, 1)
    lines = spark.createDataFrame([raw("1", "A", 6, dt.datetime(2010, 12, 1, 9), "2.55", 100),
                                   raw("C2", "A", -2, dt.datetime(2010, 12, 1, 10), "2.55", 100)], RAW)
    fact = spark.createDataFrame([(d, p, c, i, q, D(a), x) for p, c, i, q, a, x in fact_rows], RECON_FACT)
    mart = spark.createDataFrame([(d, D(mart_gross), D("5.100"))],
                                 "invoice_date DATE, gross_revenue DECIMAL(18,3), returns_amount DECIMAL(18,3)")
    dims = {"product_key": spark.createDataFrame([(1,), (-1,)], "product_key BIGINT"),
            "country_key": spark.createDataFrame([(10,)], "country_key BIGINT")}
    checks = {r.check: r for r in star.reconciliation(lines, fact, mart, dims).collect()}
    assert set(checks) == {"fact_lines", "fact_line_amount", "mart_gross_revenue", "mart_returns_amount",
                           "fact_orphans_product_key", "fact_orphans_country_key"}
    assert {name for name, r in checks.items() if not r.passed} == failing
    assert (checks["fact_lines"].expected, checks["fact_line_amount"].expected) == ("2", "10.200")


@pytest.mark.parametrize("customer, day, month, bucket", [
    (17850, dt.date(2010, 12, 1), dt.date(2010, 12, 1), 26),     # 17850 = 557 * 32 + 26
    (12346, dt.date(2011, 1, 18), dt.date(2011, 1, 1), 26),      # 12346 = 385 * 32 + 26
    (12352, dt.date(2011, 2, 28), dt.date(2011, 2, 1), 0),       # 12352 = 386 * 32
])
def test_purchase_history_layout_puts_a_customer_in_one_bucket_per_month(spark, customer, day, month, bucket):
    history = spark.createDataFrame([(day, customer)], "invoice_date DATE, customer_id INT")
    row = star.purchase_history_layout(history, 32).first()
    assert (row.invoice_month, row.customer_bucket) == (month, bucket)
