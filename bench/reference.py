"""DuckDB reference: the pipeline's ingestion, star schema, marts and anomaly detection in one DuckDB process.

    python -m bench.reference LANDING_DIR [--stages ingest,star,marts,anomalies] [--threads N]

Reads the landed feeds (``<landing>/transactions/<day>/tx_*.csv``, ``products/``, ``countries/``) the way the
pipeline does: every column as text with explicit names, delimiter and quote (the replay's and the synthetic
generator's files alike), then

- ``ingest``: per-batch de-duplication, typing, the batch window's date range, product and country checks
  against the masters known on the batch's masters day, SCD2 product versions; loaded lines and quarantined
  lines written as Parquet (partitioned by batch);
- ``star``: ``dim_date``, ``dim_product``, ``dim_country``, ``fact_sales`` (the product version in force on the
  invoice date), ``customer_sales_daily``, ``dim_customer``;
- ``marts``: daily sales by country, hourly sales, product performance, customer purchase history (by invoice
  month and 32 customer buckets), RFM and cohort retention as of every feed day;
- ``anomalies``: the configured rule (``[anomaly]``) for every feed day against its trailing baseline, with the
  store-wide fallback for products with too little history.

Every table is written as Parquet with the pipeline's partitioning, into a scratch directory removed at the
end. Not reproduced: the data-quality checks, quarantine retries, markers and the metastore. Prints one JSON
object with the seconds of each stage and the row counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

STAGES = ("ingest", "star", "marts", "anomalies")
TX_COLUMNS = ("src_invoice_no", "src_stock_code", "src_description", "src_quantity", "src_invoice_date",
              "src_unit_price", "src_customer_id", "src_country")
PRODUCT_COLUMNS = ("stock_code", "description", "unit_price")
COUNTRY_COLUMNS = ("source_country_name", "country_code", "iso3", "country_name", "region", "continent")
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%m/%d/%Y %H:%M",
                "%m/%d/%Y %H:%M:%S")
KEY_MOD = 2**62
HISTORY_BUCKETS = 32
ANOMALY_DEFAULTS = {"rule": "mad", "stddev_threshold": 2.0, "mad_threshold": 3.5, "min_history": 5,
                    "baseline_days": 90, "min_spread": 1.0, "new_products": "store"}


def read_csv_sql(pattern: str, columns: tuple[str, ...], filename: bool = False) -> str:
    """A ``read_csv`` call that never sniffs: the given column names, all text, comma, double-quote quoting,
    short records padded with NULLs (the synthetic feeds' unparseable lines)."""
    cols = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
    return (f"read_csv('{pattern}', columns={{{cols}}}, header=true, delim=',', quote='\"', escape='\"', "
            f"auto_detect=false, null_padding=true, strict_mode=false{', filename=true' if filename else ''})")


def key_sql(*cols: str) -> str:
    """A non-negative BIGINT hash of natural-key columns (DuckDB's own hash, not the pipeline's xxhash64)."""
    return f"CAST(hash({', '.join(cols)}) % {KEY_MOD} AS BIGINT)"


def non_product_sql(column: str, patterns: list[str]) -> str:
    """True when ``column`` matches one of the non-product LIKE patterns."""
    if not patterns:
        return "FALSE"
    escaped = ["'" + p.replace("'", "''") + "'" for p in patterns]
    return "coalesce(" + " OR ".join(f"{column} LIKE {p}" for p in escaped) + ", FALSE)"


def _settings() -> tuple[list[str], dict]:
    """The non-product patterns and the anomaly rule settings from the pipeline's configuration (the
    defaults when it cannot be read)."""
    try:
        import luigi

        from pipeline import config
        from pipeline.io import load

        config.load_profile()
        cfg = luigi.configuration.get_config()
        anomaly = {k: type(v)(cfg.get("anomaly", k, str(v))) for k, v in ANOMALY_DEFAULTS.items()}
        return load.non_product_patterns(), anomaly
    except Exception as exc:  # noqa: BLE001  (the reference still runs without the pipeline's config)
        log.warning("pipeline configuration not readable (%s): default patterns and anomaly settings", exc)
        return ["POST", "DOT", "C2", "M", "BANK CHARGES", "PADS", "AMAZONFEE"], dict(ANOMALY_DEFAULTS)


def _ingest(con, landing: Path, out: Path, patterns: list[str]) -> dict:
    """Parse, de-duplicate, type and check every transaction line; SCD2 product versions."""
    dates = ", ".join(f"try_strptime(trim(src_invoice_date), '{f}')" for f in DATE_FORMATS)
    con.execute(f"""
        CREATE TABLE lines AS
        SELECT regexp_extract(filename, 'tx_[0-9]{{8}}_[0-9]{{2}}') AS batch_id,
               CAST(strptime(regexp_extract(filename, 'tx_([0-9]{{8}})_', 1), '%Y%m%d') AS DATE) AS batch_day,
               CAST(regexp_extract(filename, 'tx_[0-9]{{8}}_([0-9]{{2}})', 1) AS INTEGER) AS batch_hour,
               * EXCLUDE (filename)
        FROM {read_csv_sql(f"{landing}/transactions/*/tx_*.csv", TX_COLUMNS, filename=True)}""")
    con.execute(f"""
        CREATE TABLE products_snap AS
        SELECT CAST(strptime(regexp_extract(filename, '([0-9]{{8}})', 1), '%Y%m%d') AS DATE) AS d,
               trim(stock_code) AS stock_code, description, TRY_CAST(unit_price AS DECIMAL(12,3)) AS unit_price
        FROM {read_csv_sql(f"{landing}/products/products_*.csv", PRODUCT_COLUMNS, filename=True)}
        WHERE nullif(trim(stock_code), '') IS NOT NULL""")
    con.execute(f"""
        CREATE TABLE countries_snap AS
        SELECT CAST(strptime(regexp_extract(filename, '([0-9]{{8}})', 1), '%Y%m%d') AS DATE) AS d, *
               EXCLUDE (filename)
        FROM {read_csv_sql(f"{landing}/countries/countries_*.csv", COUNTRY_COLUMNS, filename=True)}""")
    con.execute("""
        CREATE TABLE batches AS
        SELECT b.*, b.batch_day + to_hours(b.batch_hour) AS window_start,
               b.batch_day + to_hours(b.batch_hour + 4) AS window_end,
               CASE WHEN b.batch_hour >= 4 THEN b.batch_day
                    ELSE (SELECT max(d) FROM products_snap s WHERE s.d < b.batch_day) END AS masters_date
        FROM (SELECT DISTINCT batch_id, batch_day, batch_hour FROM lines) b""")
    con.execute("""
        CREATE TABLE known_products AS
        SELECT stock_code AS known_code, min(d) AS known_from FROM products_snap GROUP BY 1""")
    con.execute("""
        CREATE TABLE known_countries AS
        SELECT trim(source_country_name) AS known_country, arg_min(country_code, d) AS country_code,
               min(d) AS known_from
        FROM countries_snap GROUP BY 1""")
    con.execute(f"""
        CREATE TABLE classified AS
        WITH d AS (
            SELECT *, row_number() OVER (PARTITION BY batch_id, {", ".join(TX_COLUMNS)}) > 1 AS is_dup
            FROM lines),
        t AS (
            SELECT d.*, b.window_start, b.window_end, b.masters_date,
                   nullif(trim(src_invoice_no), '') AS invoice_no, nullif(trim(src_stock_code), '') AS stock_code,
                   CASE WHEN regexp_full_match(trim(src_quantity), '[+-]?[0-9]{{1,9}}')
                        THEN CAST(trim(src_quantity) AS INTEGER) END AS quantity,
                   coalesce({dates}) AS invoice_ts,
                   CASE WHEN regexp_full_match(trim(src_unit_price), '[+-]?[0-9]{{1,9}}([.][0-9]{{1,3}})?')
                        THEN CAST(trim(src_unit_price) AS DECIMAL(12,3)) END AS unit_price,
                   nullif(trim(src_customer_id), '') AS customer_text, nullif(trim(src_country), '') AS country_name
            FROM d JOIN batches b USING (batch_id, batch_day, batch_hour))
        SELECT t.*, c.country_code,
               TRY_CAST(regexp_extract(customer_text, '^([0-9]{{1,9}})([.]0+)?$', 1) AS INTEGER) AS customer_id,
               CASE WHEN is_dup THEN 'duplicate'
                    WHEN invoice_no IS NULL OR stock_code IS NULL OR quantity IS NULL OR invoice_ts IS NULL
                         OR unit_price IS NULL OR abs(quantity * unit_price) >= 1e12
                         OR (customer_text IS NOT NULL
                             AND NOT regexp_full_match(customer_text, '[0-9]{{1,9}}([.]0+)?'))
                         OR invoice_ts > window_end + INTERVAL 60 MINUTE
                         OR invoice_ts < window_start - INTERVAL 31 DAY
                         OR k.known_code IS NULL OR c.country_code IS NULL THEN 'quarantined'
                    ELSE 'loaded' END AS outcome
        FROM t
        LEFT JOIN known_products k ON t.stock_code = k.known_code
             AND (t.masters_date IS NULL OR k.known_from <= t.masters_date)
        LEFT JOIN known_countries c ON t.country_name = c.known_country
             AND (t.masters_date IS NULL OR c.known_from <= t.masters_date)""")
    con.execute(f"""
        CREATE TABLE transactions_raw AS
        SELECT invoice_no, stock_code, src_description AS description, quantity, invoice_ts, unit_price, customer_id,
               country_name, country_code, starts_with(invoice_no, 'C') AS is_cancellation,
               quantity < 0 AS is_negative_quantity, unit_price <= 0 AS is_nonpositive_price,
               {non_product_sql('stock_code', patterns)} AS is_non_product, batch_id
        FROM classified WHERE outcome = 'loaded'""")
    con.execute(f"""
        CREATE TABLE products AS
        WITH s AS (SELECT *, md5(concat_ws('|', coalesce(description, ''), coalesce(CAST(unit_price AS VARCHAR), '')))
                          AS sig FROM products_snap),
        e AS (SELECT *, lag(sig) OVER (PARTITION BY stock_code ORDER BY d) AS prev FROM s),
        v AS (SELECT stock_code, description, unit_price, d AS valid_from FROM e WHERE prev IS DISTINCT FROM sig)
        SELECT {key_sql('stock_code', 'valid_from')} AS product_key, stock_code, description, unit_price,
               valid_from, coalesce(lead(valid_from) OVER (PARTITION BY stock_code ORDER BY valid_from),
                                    DATE '9999-12-31') AS valid_to
        FROM v""")
    con.execute(f"COPY transactions_raw TO '{out}/transactions_raw' (FORMAT parquet, PARTITION_BY (batch_id))")
    con.execute(f"COPY (SELECT * FROM classified WHERE outcome = 'quarantined') TO '{out}/quarantine.parquet' "
                "(FORMAT parquet)")
    con.execute(f"COPY products TO '{out}/products.parquet' (FORMAT parquet)")
    outcomes = dict(con.execute("SELECT outcome, count(*) FROM classified GROUP BY 1").fetchall())
    return {"rows_received": sum(outcomes.values()), "outcomes": outcomes,
            "batches": con.execute("SELECT count(*) FROM batches").fetchone()[0],
            "product_versions": con.execute("SELECT count(*) FROM products").fetchone()[0]}


def _calendar(con) -> None:
    """``dim_date`` over whole years covering 2010..2012 and every feed day, with England's bank holidays."""
    import holidays

    first, last = con.execute("SELECT min(batch_day), max(batch_day) FROM batches").fetchone()
    start = dt.date(min(first.year, 2010), 1, 1)
    end = dt.date(max(last.year, 2012), 12, 31)
    bank = holidays.country_holidays("GB", subdiv="ENG", years=range(start.year, end.year + 1))
    con.execute("CREATE TABLE bank_holidays (date DATE, holiday_name VARCHAR)")
    con.executemany("INSERT INTO bank_holidays VALUES (?, ?)", sorted(bank.items()))
    con.execute(f"""
        CREATE TABLE dim_date AS
        SELECT CAST(strftime(c.date, '%Y%m%d') AS INTEGER) AS date_key, c.date, isodow(c.date) AS day_of_week,
               dayname(c.date) AS day_name, isodow(c.date) >= 6 AS is_weekend, week(c.date) AS iso_week,
               month(c.date) AS month, monthname(c.date) AS month_name, quarter(c.date) AS quarter,
               year(c.date) AS year, h.holiday_name IS NOT NULL AS is_uk_bank_holiday,
               h.holiday_name AS bank_holiday_name
        FROM (SELECT CAST(unnest(generate_series(DATE '{start}', DATE '{end}', INTERVAL 1 DAY)) AS DATE) AS date) c
        LEFT JOIN bank_holidays h USING (date)
        UNION ALL SELECT -1, NULL, NULL, 'Unknown', FALSE, NULL, NULL, 'Unknown', NULL, NULL, FALSE, NULL""")


def _star(con, out: Path, patterns: list[str]) -> dict:
    """The dimensions, ``fact_sales`` and ``customer_sales_daily`` of every loaded line."""
    _calendar(con)
    country_key = (f"CASE WHEN country_code IS NULL OR country_code = 'XX' THEN -1 "
                   f"ELSE {key_sql('country_code')} END")
    con.execute(f"""
        CREATE TABLE dim_product AS
        SELECT product_key, stock_code, description, unit_price, valid_from, valid_to,
               valid_to = DATE '9999-12-31' AS is_current, NOT {non_product_sql('stock_code', patterns)}
               AS is_merchandise
        FROM products
        UNION ALL SELECT -1, 'UNKNOWN', 'Unknown product', NULL, DATE '1900-01-01', DATE '9999-12-31', TRUE, FALSE""")
    con.execute(f"""
        CREATE TABLE dim_country AS
        SELECT {key_sql('country_code')} AS country_key, country_code, arg_min(iso3, d) AS iso3,
               arg_min(country_name, d) AS country_name, arg_min(region, d) AS region,
               arg_min(continent, d) AS continent
        FROM countries_snap WHERE country_code <> 'XX' GROUP BY country_code
        UNION ALL SELECT -1, 'XX', 'XXX', 'Unspecified', 'Unknown', 'Unknown'""")
    con.execute(f"""
        CREATE TABLE fact_sales AS
        SELECT CAST(strftime(l.invoice_ts, '%Y%m%d') AS INTEGER) AS date_key,
               coalesce(v.product_key, -1) AS product_key, {country_key} AS country_key,
               CASE WHEN l.customer_id IS NULL THEN -1 ELSE {key_sql('l.customer_id')} END AS customer_key,
               l.invoice_no, l.stock_code, l.invoice_ts, l.quantity, l.unit_price AS unit_price_paid,
               CAST(l.quantity * l.unit_price AS DECIMAL(18,3)) AS line_amount, v.unit_price AS list_unit_price,
               l.is_cancellation, coalesce(v.is_merchandise, NOT l.is_non_product) AS is_merchandise, l.batch_id,
               CAST(l.invoice_ts AS DATE) AS invoice_date, l.customer_id
        FROM transactions_raw l
        LEFT JOIN dim_product v ON v.product_key <> -1 AND l.stock_code = v.stock_code
             AND v.valid_from <= CAST(l.invoice_ts AS DATE) AND CAST(l.invoice_ts AS DATE) < v.valid_to""")
    con.execute("""
        CREATE TABLE customer_sales_daily AS
        SELECT customer_id, CAST(invoice_ts AS DATE) AS invoice_date, country_code,
               count(DISTINCT CASE WHEN NOT is_cancellation THEN invoice_no END) AS orders, count(*) AS lines,
               CAST(coalesce(sum(quantity * unit_price) FILTER (NOT is_cancellation AND quantity > 0), 0)
                    AS DECIMAL(18,3)) AS gross_revenue,
               CAST(coalesce(-sum(quantity * unit_price) FILTER (is_cancellation), 0) AS DECIMAL(18,3))
                    AS returns_amount
        FROM transactions_raw WHERE customer_id IS NOT NULL GROUP BY ALL""")
    con.execute(f"""
        CREATE TABLE dim_customer AS
        WITH per_country AS (
            SELECT customer_id, country_code, sum(orders) AS orders, sum(lines) AS lines
            FROM customer_sales_daily GROUP BY ALL),
        home AS (
            SELECT customer_id, country_code AS home_country_code FROM per_country
            QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY orders DESC, lines DESC,
                                       country_code) = 1),
        dates AS (
            SELECT customer_id, min(invoice_date) FILTER (orders > 0) AS first_order_date,
                   max(invoice_date) FILTER (orders > 0) AS last_order_date
            FROM customer_sales_daily GROUP BY 1)
        SELECT {key_sql('customer_id')} AS customer_key, customer_id, home_country_code,
               CASE WHEN home_country_code IS NULL OR home_country_code = 'XX' THEN -1
                    ELSE {key_sql('home_country_code')} END AS home_country_key, first_order_date, last_order_date
        FROM home JOIN dates USING (customer_id)
        UNION ALL SELECT -1, NULL, 'XX', -1, NULL, NULL""")
    for table in ("dim_date", "dim_product", "dim_country", "dim_customer"):
        con.execute(f"COPY {table} TO '{out}/{table}.parquet' (FORMAT parquet)")
    for table in ("fact_sales", "customer_sales_daily"):
        con.execute(f"COPY (SELECT * EXCLUDE (customer_id) FROM {table}) TO '{out}/{table}' "
                    "(FORMAT parquet, PARTITION_BY (invoice_date))" if table == "fact_sales" else
                    f"COPY {table} TO '{out}/{table}' (FORMAT parquet, PARTITION_BY (invoice_date))")
    return {"fact_rows": con.execute("SELECT count(*) FROM fact_sales").fetchone()[0],
            "customers": con.execute("SELECT count(*) - 1 FROM dim_customer").fetchone()[0]}


SALES_MEASURES = """
    count(DISTINCT CASE WHEN NOT is_cancellation THEN invoice_no END) AS orders, count(*) AS lines,
    CAST(coalesce(sum(quantity) FILTER (NOT is_cancellation AND quantity > 0), 0) AS BIGINT) AS units,
    CAST(coalesce(sum(line_amount) FILTER (NOT is_cancellation AND quantity > 0), 0) AS DECIMAL(18,3))
        AS gross_revenue,
    CAST(coalesce(-sum(line_amount) FILTER (is_cancellation), 0) AS DECIMAL(18,3)) AS returns_amount"""
CUSTOMERS = "count(DISTINCT CASE WHEN customer_key <> -1 THEN customer_key END) AS customers"
RFM_SEGMENTS = (("Champions", "r_score >= 4 AND f_score >= 4"), ("Loyal", "r_score >= 3 AND f_score >= 3"),
                ("New", "r_score >= 4 AND f_score = 1"), ("Promising", "r_score >= 3"), ("At risk", "f_score >= 3"),
                ("Hibernating", "r_score = 2"), ("Lost", "TRUE"))


def _score(order: str) -> str:
    """1..5 by percent rank within the run date, as the pipeline's RFM scores."""
    return f"CAST(least(5, floor(percent_rank() OVER (PARTITION BY as_of_date ORDER BY {order}) * 5) + 1) AS INTEGER)"


def _marts(con, out: Path) -> dict:
    """Every mart the pipeline publishes, for every date (customer-level marts as of every feed day)."""
    con.execute("CREATE TABLE as_of AS SELECT DISTINCT batch_day AS as_of_date FROM batches")
    con.execute(f"""
        CREATE TABLE mart_daily_sales AS
        SELECT s.invoice_date, s.country_key, c.country_code, c.country_name, s.orders, s.lines, s.units,
               s.gross_revenue, s.returns_amount, CAST(s.gross_revenue - s.returns_amount AS DECIMAL(18,3))
               AS net_revenue, s.customers,
               CASE WHEN s.orders > 0 THEN CAST(s.gross_revenue / s.orders AS DECIMAL(18,3)) END AS avg_order_value
        FROM (SELECT invoice_date, country_key, {SALES_MEASURES}, {CUSTOMERS} FROM fact_sales GROUP BY ALL) s
        LEFT JOIN dim_country c USING (country_key)""")
    con.execute(f"""
        CREATE TABLE mart_hourly_sales AS
        SELECT *, CAST(gross_revenue - returns_amount AS DECIMAL(18,3)) AS net_revenue
        FROM (SELECT invoice_date, hour(invoice_ts) AS hour, {SALES_MEASURES}, {CUSTOMERS}
              FROM fact_sales GROUP BY ALL)""")
    con.execute(f"""
        CREATE TABLE mart_product_performance AS
        SELECT s.invoice_date, s.stock_code, s.product_key, p.description, p.is_merchandise, s.orders, s.units,
               s.gross_revenue, s.returned_units, s.returns_amount,
               CASE WHEN s.units > 0 THEN CAST(s.gross_revenue / s.units AS DECIMAL(12,3)) END AS avg_price_paid,
               s.list_unit_price
        FROM (SELECT invoice_date, stock_code, {SALES_MEASURES},
                     CAST(coalesce(-sum(quantity) FILTER (is_cancellation), 0) AS BIGINT) AS returned_units,
                     max(product_key) AS product_key, max(list_unit_price) AS list_unit_price
              FROM fact_sales GROUP BY ALL) s
        LEFT JOIN dim_product p USING (product_key)""")
    con.execute(f"""
        CREATE TABLE mart_customer_purchase_history AS
        SELECT f.invoice_date, dc.customer_id, f.invoice_no, f.invoice_ts, f.stock_code, p.description, f.quantity,
               f.unit_price_paid, f.line_amount, f.is_cancellation, c.country_name,
               date_trunc('month', f.invoice_date) AS invoice_month,
               CAST(dc.customer_id % {HISTORY_BUCKETS} AS INTEGER) AS customer_bucket
        FROM fact_sales f JOIN dim_customer dc ON f.customer_key = dc.customer_key AND f.customer_key <> -1
        LEFT JOIN dim_product p ON f.product_key = p.product_key
        LEFT JOIN dim_country c ON f.country_key = c.country_key""")
    segment = "CASE " + " ".join(f"WHEN {rule} THEN '{label}'" for label, rule in RFM_SEGMENTS) + " END"
    con.execute(f"""
        CREATE TABLE mart_customer_rfm AS
        WITH per_customer AS (
            SELECT a.as_of_date, s.customer_id,
                   max(s.invoice_date) FILTER (s.orders > 0) AS last_order_date,
                   CAST(sum(s.orders) AS BIGINT) AS frequency,
                   CAST(sum(s.gross_revenue) - sum(s.returns_amount) AS DECIMAL(18,3)) AS monetary_gbp
            FROM customer_sales_daily s JOIN as_of a ON s.invoice_date <= a.as_of_date GROUP BY ALL
            HAVING sum(s.orders) > 0),
        scored AS (
            SELECT as_of_date, {key_sql('customer_id')} AS customer_key, customer_id, last_order_date,
                   CAST(as_of_date - last_order_date AS INTEGER) AS recency_days, frequency, monetary_gbp,
                   {_score('(as_of_date - last_order_date) DESC')} AS r_score,
                   {_score('frequency ASC')} AS f_score, {_score('monetary_gbp ASC')} AS m_score
            FROM per_customer)
        SELECT *, concat(r_score, f_score, m_score) AS rfm_cell, {segment} AS segment FROM scored""")
    con.execute("""
        CREATE TABLE mart_cohort_retention AS
        WITH months AS (
            SELECT DISTINCT a.as_of_date, s.customer_id, date_trunc('month', s.invoice_date) AS activity_month
            FROM customer_sales_daily s JOIN as_of a ON s.invoice_date <= a.as_of_date WHERE s.orders > 0),
        cohorts AS (SELECT as_of_date, customer_id, min(activity_month) AS cohort_month FROM months GROUP BY ALL),
        sizes AS (SELECT as_of_date, cohort_month, count(*) AS cohort_customers FROM cohorts GROUP BY ALL),
        grid AS (
            SELECT as_of_date, cohort_month, cohort_customers,
                   unnest(range(0, CAST(datediff('month', cohort_month, date_trunc('month', as_of_date)) AS BIGINT)
                                   + 1)) AS months_since
            FROM sizes),
        active AS (
            SELECT m.as_of_date, c.cohort_month, datediff('month', c.cohort_month, m.activity_month) AS months_since,
                   count(*) AS customers_active
            FROM months m JOIN cohorts c USING (as_of_date, customer_id) GROUP BY ALL)
        SELECT g.as_of_date, g.cohort_month, CAST(g.months_since AS INTEGER) AS months_since,
               CAST(g.cohort_month + to_months(CAST(g.months_since AS INTEGER)) AS DATE) AS activity_month,
               CAST(g.cohort_customers AS BIGINT) AS cohort_customers,
               CAST(coalesce(a.customers_active, 0) AS BIGINT) AS customers_active,
               CAST(round(coalesce(a.customers_active, 0) / g.cohort_customers, 4) AS DECIMAL(6,4)) AS retention_rate
        FROM grid g LEFT JOIN active a USING (as_of_date, cohort_month, months_since)""")
    rows = {}
    for table, partition in (("mart_daily_sales", "invoice_date"), ("mart_hourly_sales", "invoice_date"),
                             ("mart_product_performance", "invoice_date"),
                             ("mart_customer_purchase_history", "invoice_month, customer_bucket"),
                             ("mart_customer_rfm", "as_of_date"), ("mart_cohort_retention", "as_of_date")):
        order = " ORDER BY customer_id, invoice_ts, invoice_no" if table == "mart_customer_purchase_history" else ""
        con.execute(f"COPY (SELECT * FROM {table}{order}) TO '{out}/{table}' "
                    f"(FORMAT parquet, PARTITION_BY ({partition}))")
        rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return {"mart_rows": rows}


def _anomalies(con, out: Path, cfg: dict) -> dict:
    """The pipeline's anomaly rule for every feed day: each sale line's quantity and amount against its
    product's trailing baseline (the store's when the product has fewer than ``min_history`` lines)."""
    rule, spread_floor = cfg["rule"], float(cfg["min_spread"])
    threshold = float(cfg["stddev_threshold"] if rule == "stddev" else cfg["mad_threshold"])
    line_id = ("substr(sha256(concat_ws('|', invoice_no, stock_code, strftime(invoice_ts, '%Y-%m-%d %H:%M:%S'), "
               "CAST(quantity AS VARCHAR), CAST(unit_price_paid AS VARCHAR))), 1, 20)")
    con.execute(f"""
        CREATE TABLE sales_long AS
        WITH s AS (SELECT *, {line_id} AS line_id FROM fact_sales WHERE NOT is_cancellation AND quantity > 0)
        SELECT *, 'quantity' AS metric, CAST(quantity AS DOUBLE) AS value FROM s
        UNION ALL SELECT *, 'line_amount' AS metric, CAST(line_amount AS DOUBLE) AS value FROM s""")
    window = (f"s.invoice_date >= a.as_of_date - INTERVAL {int(cfg['baseline_days'])} DAY "
              "AND s.invoice_date < a.as_of_date")
    for name, keys in (("product_base", ["stock_code", "metric"]), ("store_base", ["metric"])):
        if name == "store_base" and cfg["new_products"] != "store":
            continue
        cols = ", ".join(f"s.{k}" for k in keys)
        con.execute(f"""
            CREATE TABLE {name} AS
            WITH needed AS (SELECT DISTINCT invoice_date AS as_of_date, {', '.join(keys)} FROM sales_long),
            hist AS (SELECT a.as_of_date, {cols}, s.value FROM sales_long s
                     JOIN needed a ON {window} AND {' AND '.join(f's.{k} = a.{k}' for k in keys)}),
            centre AS (SELECT as_of_date, {', '.join(keys)}, count(*) AS n, median(value) AS med,
                              stddev_samp(value) AS sd FROM hist GROUP BY ALL)
            SELECT c.*, median(abs(h.value - c.med)) AS mad, avg(abs(h.value - c.med)) AS meanad
            FROM hist h JOIN centre c ON h.as_of_date = c.as_of_date
                 AND {' AND '.join(f'h.{k} = c.{k}' for k in keys)}
            GROUP BY ALL""")
    if rule == "stddev":
        spread = f"greatest(coalesce(sd, 0.0), {spread_floor})"
    else:
        spread = f"greatest(CASE WHEN mad > 0 THEN mad / 0.6745 ELSE meanad * 1.2533 END, {spread_floor})"
    min_history = int(cfg["min_history"])
    store = cfg["new_products"] == "store"
    con.execute(f"""
        CREATE TABLE anomalies AS
        WITH b AS (
            SELECT l.*, p.n AS p_n, p.med AS p_med, p.sd AS p_sd, p.mad AS p_mad, p.meanad AS p_meanad
                   {', st.n AS s_n, st.med AS s_med, st.sd AS s_sd, st.mad AS s_mad, st.meanad AS s_meanad'
                    if store else ''}
            FROM sales_long l
            LEFT JOIN product_base p ON p.as_of_date = l.invoice_date AND p.stock_code = l.stock_code
                 AND p.metric = l.metric AND p.n >= {min_history}
            {f'LEFT JOIN store_base st ON st.as_of_date = l.invoice_date AND st.metric = l.metric '
             f'AND st.n >= {min_history}' if store else ''}),
        u AS (
            SELECT *, CASE WHEN p_n IS NOT NULL THEN 'product' {"WHEN s_n IS NOT NULL THEN 'store'" if store else ''}
                      END AS baseline_scope FROM b),
        v AS (
            SELECT *, CASE WHEN baseline_scope = 'product' THEN p_n ELSE {'s_n' if store else 'NULL'} END AS n,
                   CASE WHEN baseline_scope = 'product' THEN p_med ELSE {'s_med' if store else 'NULL'} END AS med,
                   CASE WHEN baseline_scope = 'product' THEN p_sd ELSE {'s_sd' if store else 'NULL'} END AS sd,
                   CASE WHEN baseline_scope = 'product' THEN p_mad ELSE {'s_mad' if store else 'NULL'} END AS mad,
                   CASE WHEN baseline_scope = 'product' THEN p_meanad ELSE {'s_meanad' if store else 'NULL'} END
                       AS meanad
            FROM u WHERE baseline_scope IS NOT NULL)
        SELECT line_id, invoice_date, invoice_no, stock_code, invoice_ts, customer_key, quantity, unit_price_paid,
               line_amount, metric, value, n AS baseline_lines, med AS baseline_median, {spread} AS baseline_spread,
               '{rule}' AS rule, {threshold} AS threshold, round((value - med) / {spread}, 3) AS score,
               baseline_scope, 'NEW' AS status
        FROM v WHERE (value - med) / {spread} > {threshold}""")
    con.execute(f"COPY anomalies TO '{out}/anomalies' (FORMAT parquet, PARTITION_BY (invoice_date))")
    flagged = con.execute("SELECT count(DISTINCT line_id) FROM anomalies").fetchone()[0]
    return {"anomaly_rule": rule, "flagged_lines": flagged}


def duckdb_reference(landing: Path, stages: tuple[str, ...] = STAGES, threads: int | None = None) -> dict:
    """Run the reference's ``stages`` (each needs the ones before it) on ``landing``; seconds per stage, their
    total (``wall_s``) and row counts."""
    import duckdb

    patterns, anomaly_cfg = _settings()
    wanted = [s for s in STAGES if s in stages]
    wanted = STAGES[:STAGES.index(wanted[-1]) + 1] if wanted else ()
    out = Path(tempfile.mkdtemp(prefix="duckdb-bench-"))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = '{out / 'spill'}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    result: dict = {"threads": con.execute("SELECT current_setting('threads')").fetchone()[0], "seconds": {}}
    steps = {"ingest": lambda: _ingest(con, landing, out, patterns), "star": lambda: _star(con, out, patterns),
             "marts": lambda: _marts(con, out), "anomalies": lambda: _anomalies(con, out, anomaly_cfg)}
    try:
        for stage in wanted:
            t0 = time.monotonic()
            result.update(steps[stage]())
            result["seconds"][stage] = round(time.monotonic() - t0, 2)
            log.info("duckdb %s: %.1f s", stage, result["seconds"][stage])
    finally:
        con.close()
        shutil.rmtree(out, ignore_errors=True)
    result["wall_s"] = round(sum(result["seconds"].values()), 2)
    return result


def reference_measured(env: dict, landing: Path, stages: tuple[str, ...] = STAGES) -> dict:
    """The reference run as its own process (``python -m bench.reference``), so its peak memory is measured
    like the pipeline's: its JSON plus ``peak_rss_mib``."""
    import sys

    from bench.stack import BenchFailure, reason, run_measured

    log.info("duckdb reference on %s (%s)", landing, ", ".join(stages))
    _, peak_kib, proc = run_measured([sys.executable, "-m", "bench.reference", str(landing),
                                      "--stages", ",".join(stages)], env)
    if proc.returncode != 0:
        raise BenchFailure(f"the DuckDB reference: {reason(proc)}\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "peak_rss_mib": round(peak_kib / 1024)}


def main(argv: list[str] | None = None) -> int:
    """Command line: run the reference on a landing directory, print its JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__.splitlines()[0])
    parser.add_argument("landing", type=Path, help="the landing directory (<warehouse>/landing)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"up to which stages (of {', '.join(STAGES)})")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: every core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(duckdb_reference(args.landing, tuple(args.stages.split(",")), args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
