"""The dashboard's one data module: a cached HiveServer2 connection and queries with bound parameters.

Every query reads a published table; user input only ever reaches SQL as a bound parameter. Failures
become ``DataUnavailable`` with a message a page can show.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import re

import pandas as pd
import streamlit as st

from pipeline import config
from pipeline.schemas.mart import PURCHASE_HISTORY_BUCKETS
from pipeline.transforms import anomaly_status

log = logging.getLogger(__name__)
TTL_S = 300  # marts are published every 4 hours; an analyst sees them at most 5 minutes late


class DataUnavailable(RuntimeError):
    """The warehouse could not answer (HiveServer2 down, table missing or empty)."""


@st.cache_resource(show_spinner=False)
def _pool() -> queue.LifoQueue:
    """Idle HiveServer2 connections of this app process. A Thrift connection serves one query at a time and
    Streamlit runs each browser session in its own thread, so a query borrows one and gives it back."""
    return queue.LifoQueue()


def _connect():
    """A new session as the dashboard's own account: an LDAP login (``auth="LDAP"``, PyHive's SASL PLAIN through
    pure-sasl) as ``$ECOM_HS2_USER`` (default ``dashboard``) with ``$ECOM_HS2_PASSWORD`` when that is set, as in
    the compose stack; otherwise the embedded HiveServer2's NOSASL."""
    from pyhive import hive

    config.load_profile()
    cfg = config.hiveserver2()
    conn = hive.connect(host=cfg.host, port=cfg.port, **cfg.login("dashboard"))
    cur = conn.cursor()
    try:  # this session only: min/max/distinct of a partition column are read from the metastore
        cur.execute("SET spark.sql.optimizer.metadataOnly=true")
    finally:
        cur.close()
    return conn


def _fetch(sql: str, params: dict | None) -> pd.DataFrame:
    pool = _pool()
    try:
        conn = pool.get_nowait()
    except queue.Empty:
        conn = _connect()
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        columns = [c[0].split(".")[-1] for c in cur.description or []]
        df = pd.DataFrame(cur.fetchall(), columns=columns)
        cur.close()
    except Exception:
        with contextlib.suppress(Exception):
            conn.close()
        raise
    pool.put(conn)
    return df


def _run(sql: str, params: dict | None) -> pd.DataFrame:
    """One query; a failed one is retried once on a new connection (a long-lived session can hold a file
    listing of a partition the pipeline has since rewritten)."""
    try:
        try:
            return _fetch(sql, params)
        except Exception as first:  # noqa: BLE001
            if "TABLE_OR_VIEW_NOT_FOUND" in str(first):
                raise
            log.info("query failed (%s), retrying on a new connection", type(first).__name__)
            return _fetch(sql, params)
    except Exception as exc:  # noqa: BLE001  (the page shows a message, the log keeps the detail)
        log.warning("query failed: %s: %s", type(exc).__name__, exc)
        missing = re.search(r"TABLE_OR_VIEW_NOT_FOUND.*?`([\w.`]+)`", str(exc))
        if missing:
            raise DataUnavailable(f"{missing.group(1).replace('`', '').removeprefix('spark_catalog.')} is not "
                                  "published yet: run the pipeline (`make run`, `python -m pipeline sla`).") from None
        cfg = config.hiveserver2()
        raise DataUnavailable(f"The warehouse is not answering (HiveServer2 at {cfg.host}:{cfg.port}): "
                              f"{type(exc).__name__}. Start it with `python -m pipeline services start`.") from None


@st.cache_data(ttl=TTL_S, show_spinner=False)
def query(sql: str, params: dict | None = None) -> pd.DataFrame:
    return _run(sql, params)


def _days(start: dt.date, end: dt.date) -> dict:
    return {"start": str(start), "end": str(end)}


def _date_span(table: str) -> tuple[dt.date, dt.date] | None:
    """The first and last ``invoice_date`` of a table partitioned by it (from the partition list), or None."""
    df = query(f"SELECT min(invoice_date) AS first_day, max(invoice_date) AS last_day FROM {table}")  # a constant
    if df.empty or df.iloc[0]["first_day"] is None:
        return None
    return pd.Timestamp(df.iloc[0]["first_day"]).date(), pd.Timestamp(df.iloc[0]["last_day"]).date()


def date_bounds() -> tuple[dt.date, dt.date]:
    """The first and last day in ``mart_daily_sales``."""
    span = _date_span("ecommerce_mart.mart_daily_sales")
    if span is None:
        raise DataUnavailable("No sales are published yet: run the pipeline first (`make run`).")
    return span


def countries() -> list[str]:
    """Country names of ``dim_country`` (``mart_daily_sales`` takes its names from there)."""
    return query("SELECT DISTINCT country_name FROM ecommerce_dw.dim_country "
                 "ORDER BY country_name")["country_name"].dropna().tolist()


def daily_sales(start: dt.date, end: dt.date) -> pd.DataFrame:
    """``mart_daily_sales`` rows (one per date and country) of the range."""
    df = query("SELECT invoice_date, country_code, country_name, orders, units, gross_revenue, returns_amount, "
               "net_revenue, customers FROM ecommerce_mart.mart_daily_sales "
               "WHERE invoice_date BETWEEN %(start)s AND %(end)s", _days(start, end))
    return _typed(df)


def distinct_customers(periods: list[tuple[dt.date, dt.date]], country_codes: list[str] | None) -> list[int]:
    """Known customers with a purchase in each period (and countries), from ``customer_sales_daily``: one query."""
    params = {"start": str(min(a for a, _ in periods)), "end": str(max(b for _, b in periods))}
    counts = []
    for i, (a, b) in enumerate(periods):
        params |= {f"a{i}": str(a), f"b{i}": str(b)}
        counts.append(f"count(DISTINCT CASE WHEN invoice_date BETWEEN %(a{i})s AND %(b{i})s THEN customer_id END) "
                      f"AS customers_{i}")
    where = ""
    if country_codes:
        names = {f"c{i}": c for i, c in enumerate(country_codes)}
        where = f" AND country_code IN ({', '.join(f'%({k})s' for k in names)})"
        params |= names
    df = query(f"SELECT {', '.join(counts)} FROM ecommerce_dw.customer_sales_daily "
               f"WHERE invoice_date BETWEEN %(start)s AND %(end)s{where}", params)
    return [int(v or 0) for v in df.iloc[0]] if len(df) else [0] * len(periods)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    if "invoice_date" in df:
        df["invoice_date"] = pd.to_datetime(df["invoice_date"]).dt.date
    for c in ("gross_revenue", "returns_amount", "net_revenue"):
        if c in df:
            df[c] = df[c].astype(float)
    return df


def sales_by_country(start: dt.date, end: dt.date) -> pd.DataFrame:
    """Net revenue, orders and customer-days per country of the range, with ISO alpha-3 from ``dim_country``."""
    df = query("SELECT d.country_code, c.iso3, d.country_name, sum(d.net_revenue) AS net_revenue, "
               "sum(d.orders) AS orders, sum(d.units) AS units FROM ecommerce_mart.mart_daily_sales d "
               "LEFT JOIN ecommerce_dw.dim_country c ON d.country_key = c.country_key "
               "WHERE d.invoice_date BETWEEN %(start)s AND %(end)s "
               "GROUP BY d.country_code, c.iso3, d.country_name", _days(start, end))
    return _typed(df)


def product_totals(start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per stock code over the range: revenue, units, returns (``mart_product_performance``)."""
    df = query("SELECT stock_code, max(description) AS description, sum(gross_revenue) AS gross_revenue, "
               "sum(units) AS units, sum(returned_units) AS returned_units, sum(returns_amount) AS returns_amount "
               "FROM ecommerce_mart.mart_product_performance WHERE invoice_date BETWEEN %(start)s AND %(end)s "
               "AND is_merchandise GROUP BY stock_code", _days(start, end))
    return _typed(df)


def price_versions(stock_code: str) -> pd.DataFrame:
    """The list-price versions of a product (SCD2 ``dim_product``)."""
    df = query("SELECT valid_from, valid_to, unit_price, description, is_current FROM ecommerce_dw.dim_product "
               "WHERE stock_code = %(code)s ORDER BY valid_from", {"code": stock_code})
    df["unit_price"] = df["unit_price"].astype(float)
    return df


def prices_paid(stock_code: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Average price paid per day for a product in the range (``mart_product_performance``)."""
    df = query("SELECT invoice_date, avg_price_paid, units FROM ecommerce_mart.mart_product_performance "
               "WHERE invoice_date BETWEEN %(start)s AND %(end)s AND stock_code = %(code)s ORDER BY invoice_date",
               {"code": stock_code, **_days(start, end)})
    df["avg_price_paid"] = df["avg_price_paid"].astype(float)
    return _typed(df)


def latest_as_of(table: str) -> dt.date | None:
    df = query(f"SELECT max(as_of_date) AS as_of FROM ecommerce_mart.{table}")  # table: a constant of this module
    value = df.iloc[0]["as_of"] if len(df) else None
    return None if value is None else pd.Timestamp(value).date()


def cohort_retention(as_of: dt.date) -> pd.DataFrame:
    df = query("SELECT cohort_month, months_since, activity_month, cohort_customers, customers_active, "
               "retention_rate FROM ecommerce_mart.mart_cohort_retention WHERE as_of_date = %(d)s", {"d": str(as_of)})
    df["retention_rate"] = df["retention_rate"].astype(float)
    return df


def rfm_segments(as_of: dt.date) -> pd.DataFrame:
    df = query("SELECT segment, count(*) AS customers, sum(monetary_gbp) AS monetary_gbp "
               "FROM ecommerce_mart.mart_customer_rfm WHERE as_of_date = %(d)s GROUP BY segment", {"d": str(as_of)})
    df["monetary_gbp"] = df["monetary_gbp"].astype(float)
    return df


ANOMALY_STATUSES = anomaly_status.STATUSES


def anomalies(statuses: list[str], limit: int = 500) -> pd.DataFrame:
    """Flagged lines in the given statuses, highest score first."""
    chosen = {f"s{i}": s for i, s in enumerate(s for s in statuses if s in ANOMALY_STATUSES)}
    if not chosen:
        return pd.DataFrame()
    df = query("SELECT line_id, invoice_date, invoice_no, stock_code, quantity, line_amount, metric, value, "
               "baseline_scope, baseline_lines, baseline_median, baseline_spread, rule, score, status, "
               "status_changed_by, status_changed_at, detected_at FROM ecommerce_mart.anomalies "
               f"WHERE status IN ({', '.join(f'%({k})s' for k in chosen)}) ORDER BY score DESC "
               f"LIMIT {int(limit)}", chosen)
    return _typed(df)


def sla_status() -> pd.DataFrame:
    """Each watched day's SLA state; ``ready_at`` is when its marts were first ready (what the SLA judges),
    ``republished_at`` and ``revisions`` say whether they were published again since."""
    return query(
        "SELECT s.invoice_date, s.mart_group, s.state, s.deadline_at, s.ready_at, r.republished_at, "
        "coalesce(r.revisions, 0) AS revisions, s.expected_finish_at, s.evidence, s.checked_at "
        "FROM ecommerce_mart.sla_status s LEFT JOIN (SELECT invoice_date, max(republished_at) AS republished_at, "
        "max(coalesce(revision, 0)) AS revisions FROM ecommerce_mart.marts_ready GROUP BY invoice_date) r "
        "ON s.invoice_date = r.invoice_date ORDER BY s.invoice_date")


def sla_history(limit: int = 200) -> pd.DataFrame:
    """The SLA states each day went through, newest first."""
    return query("SELECT invoice_date, mart_group, state, since, evidence FROM ecommerce_mart.sla_history "
                 f"ORDER BY since DESC, invoice_date DESC LIMIT {int(limit)}")


def mart_revisions(limit: int = 100) -> pd.DataFrame:
    """Republications of days whose marts were already ready: when, which revision and why."""
    return query("SELECT invoice_date, revision, first_ready_at, republished_at, reason FROM "
                 "ecommerce_mart.marts_ready WHERE revision > 0 ORDER BY republished_at DESC "
                 f"LIMIT {int(limit)}")


def batch_accounting(limit_days: int = 14) -> pd.DataFrame:
    """Per transaction batch of the latest days: received, loaded, quarantined, duplicates, released."""
    return query("SELECT batch_id, window_start, rows_received, rows_loaded, rows_quarantined, rows_duplicate, "
                 "rows_released, status FROM ecommerce_db.batch_audit WHERE feed = 'transactions' "
                 f"ORDER BY window_start DESC LIMIT {int(limit_days) * 6}")


def dq_bounds() -> tuple[dt.date, dt.date] | None:
    """The first and last invoice date with data-quality results, or None."""
    return _date_span("ecommerce_mart.dq_results")


def dq_results(start: dt.date, end: dt.date, severities: list[str]) -> pd.DataFrame:
    """Check results of the dates in the range and severities (every run), newest first."""
    chosen = {f"s{i}": s for i, s in enumerate(severities)}
    if not chosen:
        return pd.DataFrame()
    df = query("SELECT invoice_date, check_name, check_type, table_name, severity, status, failing_rows, "
               "sample_keys, checked_at, run_id FROM ecommerce_mart.dq_results "
               f"WHERE invoice_date BETWEEN %(start)s AND %(end)s AND severity IN "
               f"({', '.join(f'%({k})s' for k in chosen)}) ORDER BY invoice_date DESC, checked_at DESC, check_name",
               {**_days(start, end), **chosen})
    return _typed(df)


def freshness() -> dict:
    """How fresh the marts are: the end of the latest transaction window loaded (``data_until``) and when it
    was loaded (``loaded_at``, UTC), the latest date whose marts are ready and when they first were, and the
    weekdays the store trades on (those with sales)."""
    batches = query("SELECT max(window_end) AS data_until, max(finished_at) AS loaded_at "
                    "FROM ecommerce_db.batch_audit WHERE feed = 'transactions'")
    ready = query("SELECT invoice_date, coalesce(first_ready_at, ready_at) AS first_ready_at "
                  "FROM ecommerce_mart.marts_ready ORDER BY invoice_date DESC, revision DESC LIMIT 1")
    days = query("SELECT DISTINCT invoice_date FROM ecommerce_mart.mart_daily_sales")

    def stamp(df, col):
        value = df.iloc[0][col] if len(df) else None
        return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()

    return {"data_until": stamp(batches, "data_until"), "loaded_at": stamp(batches, "loaded_at"),
            "ready_date": pd.Timestamp(ready.iloc[0]["invoice_date"]).date() if len(ready) else None,
            "first_ready_at": stamp(ready, "first_ready_at"),
            "trading_weekdays": {pd.Timestamp(d).weekday() for d in days["invoice_date"].dropna()}}


def purchase_history(customer_id: int, buckets: int = PURCHASE_HISTORY_BUCKETS) -> pd.DataFrame:
    """One customer's lines: reads only the customer's bucket of each month."""
    df = query("SELECT invoice_no, invoice_ts, stock_code, description, quantity, unit_price_paid, line_amount, "
               "is_cancellation, country_name FROM ecommerce_mart.mart_customer_purchase_history "
               "WHERE customer_bucket = pmod(%(c)s, %(b)s) AND customer_id = %(c)s ORDER BY invoice_ts, invoice_no",
               {"c": int(customer_id), "b": int(buckets)})
    for c in ("unit_price_paid", "line_amount"):
        df[c] = df[c].astype(float)
    return df


def task_history(since: dt.datetime) -> pd.DataFrame:
    """Luigi's task events since ``since`` (luigid's SQLite history)."""

    from pipeline.io import history

    config.load_profile()
    path = history.database(config.sla().task_history_db)
    try:
        return history.events(path, since)
    except FileNotFoundError:
        raise DataUnavailable(f"No Luigi task history at {path}: is luigid running with task history on?") from None
    except Exception as exc:  # noqa: BLE001
        raise DataUnavailable(f"The Luigi task history at {path} cannot be read: {type(exc).__name__}") from None
