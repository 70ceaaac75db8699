"""Dashboard: KPI arithmetic and chart builders on hand-made rows; the app shows a message, not a stack
trace, when the warehouse does not answer."""

import datetime as dt
import json
import types

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import charts, metrics
from pipeline import config

DAILY = pd.DataFrame([
    # invoice_date, country_code, orders, units, gross, returns, net
    (dt.date(2011, 1, 3), "GB", 10, 100, 1000.0, 100.0, 900.0),
    (dt.date(2011, 1, 3), "FR", 2, 30, 300.0, 0.0, 300.0),
    (dt.date(2011, 1, 4), "GB", 8, 50, 700.0, 70.0, 630.0),
], columns=["invoice_date", "country_code", "orders", "units", "gross_revenue", "returns_amount", "net_revenue"])


def test_kpis_by_hand():
    k = metrics.kpis(DAILY, customers=7)
    assert k == {"net_revenue": 1830.0, "orders": 20, "avg_order_value": 2000.0 / 20, "customers": 7,
                 "units": 180, "returns_rate": 170.0 / 2000.0}


def test_kpis_of_no_rows_have_no_ratios():
    k = metrics.kpis(DAILY.iloc[0:0], customers=0)
    assert (k["orders"], k["avg_order_value"], k["returns_rate"]) == (0, None, None)


def test_changes_are_relative_except_the_returns_rate_in_points():
    cur = {"net_revenue": 110.0, "orders": 10, "avg_order_value": None, "customers": 5, "units": 0,
           "returns_rate": 0.12}
    prev = {"net_revenue": 100.0, "orders": 0, "avg_order_value": 9.0, "customers": 4, "units": 10,
            "returns_rate": 0.10}
    out = metrics.changes(cur, prev)
    assert out["net_revenue"] == pytest.approx(0.10)
    assert out["orders"] is None and out["avg_order_value"] is None
    assert out["customers"] == pytest.approx(0.25) and out["units"] == pytest.approx(-1.0)
    assert out["returns_rate"] == pytest.approx(0.02)


@pytest.mark.parametrize("start, end, expected", [
    (dt.date(2011, 1, 10), dt.date(2011, 1, 16), (dt.date(2011, 1, 3), dt.date(2011, 1, 9))),
    (dt.date(2011, 3, 1), dt.date(2011, 3, 1), (dt.date(2011, 2, 28), dt.date(2011, 2, 28))),
])
def test_previous_period_has_the_same_length(start, end, expected):
    assert metrics.previous_period(start, end) == expected


def test_new_and_returning_customers_per_month_from_the_cohorts():
    jan, feb, mar = (dt.date(2011, m, 1) for m in (1, 2, 3))
    cohorts = pd.DataFrame({  # cohort Jan: 10 customers, 4 back in Feb, 0 in Mar; cohort Feb: 6, 2 back in Mar
        "cohort_month": [jan, jan, jan, feb, feb, mar],
        "months_since": [0, 1, 2, 0, 1, 0],
        "activity_month": [jan, feb, mar, feb, mar, mar],
        "customers_active": [10, 4, 0, 6, 2, 5],
    })
    monthly = metrics.new_vs_returning(cohorts)
    assert monthly["month"].tolist() == [jan, feb, mar]
    assert monthly["new_customers"].tolist() == [10, 6, 5]
    assert monthly["returning_customers"].tolist() == [0, 4, 2]


def test_in_the_first_month_every_customer_is_new():
    jan = dt.date(2010, 12, 1)
    cohorts = pd.DataFrame({"cohort_month": [jan], "months_since": [0], "activity_month": [jan],
                            "customers_active": [7]})
    monthly = metrics.new_vs_returning(cohorts)
    assert monthly.to_dict("records") == [{"month": jan, "new_customers": 7, "returning_customers": 0}]


def test_revenue_trend_has_one_point_per_day():
    fig = charts.revenue_trend(metrics.revenue_by_day(DAILY))
    net = fig.data[0]
    assert list(net.x) == [dt.date(2011, 1, 3), dt.date(2011, 1, 4)]
    assert list(net.y) == [1200.0, 630.0]
    assert list(fig.data[1].y) == [1300.0, 700.0]


def test_an_analyst_logs_in_and_sees_the_overview_say_the_warehouse_is_down(monkeypatch, warehouse_down):
    from dashboard import auth

    monkeypatch.setenv(auth.USERS_ENV, json.dumps({"alice": auth.hash_password("correct horse")}))
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    app.text_input(key="login_user").input("alice")
    app.text_input(key="login_password").input("correct horse")
    app.button[0].click().run()
    app.run()  # the login page's st.rerun(): the next run shows the analysts' pages
    assert not app.exception
    assert app.session_state["user"] == "alice"
    assert [t.value for t in app.title] == ["Overview"]
    assert any(f"HiveServer2 at 127.0.0.1:{warehouse_down}" in e.value for e in app.error)


PAGES = ("overview", "geography", "products", "customers", "anomalies", "pipeline_sla")


def _render(name):
    import importlib

    from dashboard import widgets

    widgets.section(importlib.import_module(f"dashboard.views.{name}").render)  # as app.py runs a page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_says_what_is_unavailable_instead_of_failing(warehouse_down, page):
    app = AppTest.from_function(_render, args=(page,), default_timeout=60).run()
    assert not app.exception
    assert app.error and all("Traceback" not in e.value for e in app.error)


def test_without_a_login_only_the_login_page_shows(monkeypatch):
    from dashboard import auth

    monkeypatch.setenv(auth.USERS_ENV, json.dumps({"alice": auth.hash_password("correct horse")}))
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not app.exception and [t.value for t in app.title] == ["E-commerce warehouse"]
    app.text_input(key="login_user").input("alice")
    app.text_input(key="login_password").input("wrong")
    app.button[0].click().run()
    assert [e.value for e in app.error] == ["Wrong user name or password."]
    assert [t.value for t in app.title] == ["E-commerce warehouse"]
    assert "user" not in app.session_state


def test_a_purchases_link_shows_only_that_page(monkeypatch, warehouse_down):
    from dashboard import auth

    monkeypatch.setenv(auth.SECRET_ENV, "t" * 32)
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.query_params["token"] = auth.sign_customer(17850, "o" * 32)  # signed with another key
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == ["Sorry, this link is not valid."]
    assert [t.value for t in app.title] == ["My purchases"]


APP = config.PROJECT_ROOT / "dashboard" / "app.py"


def test_passwords_are_checked_against_bcrypt_hashes():
    from dashboard import auth

    known = {"alice": auth.hash_password("correct horse")}
    assert known["alice"].startswith("$2b$")
    assert auth.check_password(known, "alice", "correct horse")
    assert not auth.check_password(known, "alice", "correct hors")
    assert not auth.check_password(known, "bob", "correct horse")
    assert not auth.check_password({"alice": "not a hash"}, "alice", "x")


def test_purchase_links_are_signed_and_expire(monkeypatch):
    from dashboard import auth

    token = auth.sign_customer(17850, "k")
    assert auth.read_token(token, 60, "k") == 17850
    with pytest.raises(auth.InvalidLink, match="not valid"):
        auth.read_token(token, 60, "other key")
    payload, _, rest = token.partition(".")
    forged = auth.sign_customer(12346, "k").partition(".")[0] + "." + rest  # another customer, same signature
    with pytest.raises(auth.InvalidLink, match="not valid"):
        auth.read_token(forged, 60, "k")
    with pytest.raises(auth.InvalidLink, match="expired"):
        auth.read_token(token, -1, "k")
    with pytest.raises(auth.InvalidLink, match="needs the link"):
        auth.read_token(None, 60, "k")
    monkeypatch.delenv(auth.SECRET_ENV, raising=False)
    with pytest.raises(auth.InvalidLink, match="not configured"):
        auth.sign_customer(1)


def test_top_n_uk_share_and_purchase_totals():
    totals = pd.DataFrame({"stock_code": ["A", "B", "C"], "gross_revenue": [5.0, 9.0, 5.0]})
    assert metrics.top_n(totals, "gross_revenue", 2)["stock_code"].tolist() == ["B", "A"]
    by_country = pd.DataFrame({"country_code": ["GB", "FR", "DE"], "net_revenue": [80.0, 15.0, 5.0]})
    assert metrics.uk_share(by_country) == pytest.approx(0.8)
    lines = pd.DataFrame({"invoice_no": ["1", "1", "2", "C3"], "line_amount": [10.0, 5.0, 20.0, -5.0],
                          "is_cancellation": [False, False, False, True]})
    assert metrics.purchase_totals(lines) == {"invoices": 2, "returns": 1, "spent_gbp": 35.0, "returned_gbp": 5.0,
                                              "net_gbp": 30.0}


def test_chart_builders_carry_the_data():
    by_country = pd.DataFrame({"country_code": ["GB", "FR", "XX"], "iso3": ["GBR", "FRA", None],
                               "country_name": ["United Kingdom", "France", "Unspecified"],
                               "net_revenue": [80.0, 15.0, 5.0]})
    assert list(charts.country_choropleth(by_country).data[0].locations) == ["GBR", "FRA"]
    assert list(charts.uk_split(by_country).data[0].values) == [80.0, 20.0]
    cohorts = pd.DataFrame({"cohort_month": ["2010-12-01", "2010-12-01", "2011-01-01"], "months_since": [0, 1, 0],
                            "retention_rate": [1.0, 0.4, 1.0]})
    heat = charts.cohort_heatmap(cohorts).data[0]
    assert heat.z[0][1] == 0.4 and heat.y == ("2010-12-01", "2011-01-01")
    status = pd.DataFrame({"invoice_date": ["2010-12-05", "2010-12-06"], "mart_group": ["all_marts"] * 2,
                           "state": ["MISSED", "MET"], "evidence": ["late", "ok"]})
    strip = {t.name: list(t.x) for t in charts.sla_strip(status).data}
    assert strip["MISSED"] == ["2010-12-05"] and strip["MET"] == ["2010-12-06"] and strip["AT_RISK"] == []
    versions = pd.DataFrame({"valid_from": [dt.date(2011, 1, 1), dt.date(2011, 2, 1)],
                             "valid_to": [dt.date(2011, 2, 1), dt.date(9999, 12, 31)], "unit_price": [2.0, 2.5]})
    paid = pd.DataFrame({"invoice_date": [dt.date(2011, 1, 5)], "avg_price_paid": [1.9]})
    steps = charts.price_history(versions, paid, dt.date(2011, 3, 1)).data[0]
    assert list(steps.y) == [2.0, 2.0, None, 2.5, 2.5, None]
    assert list(steps.x)[3:5] == [dt.date(2011, 2, 1), dt.date(2011, 3, 1)]


@pytest.fixture
def captured(monkeypatch):
    from dashboard import data

    calls = []

    def fake(sql, params=None):
        calls.append((sql, params))
        return pd.DataFrame({"customers": [3]})

    monkeypatch.setattr(data, "query", fake)
    return calls


def test_user_input_reaches_sql_only_as_bound_parameters(captured):
    from dashboard import data

    evil = "GB') OR 1=1 --"
    assert data.distinct_customers([(dt.date(2011, 1, 1), dt.date(2011, 1, 31))], ["FR", evil]) == [3]
    sql, params = captured[-1]
    assert evil not in sql and "%(c0)s, %(c1)s" in sql
    assert params == {"start": "2011-01-01", "end": "2011-01-31", "a0": "2011-01-01", "b0": "2011-01-31",
                      "c0": "FR", "c1": evil}
    data.anomalies(["NEW", "x') OR 1=1 --"])
    sql, params = captured[-1]
    assert params == {"s0": "NEW"} and "OR 1=1" not in sql


def test_a_missing_table_is_named_not_reported_as_a_dead_server(monkeypatch):
    from dashboard import data

    class Cursor:
        description = None

        def execute(self, sql, params):
            raise RuntimeError("[TABLE_OR_VIEW_NOT_FOUND] The table or view `ecommerce_mart`.`sla_status` cannot "
                               "be found.")

        def close(self):
            pass

    monkeypatch.setattr(data, "_connect", lambda: types.SimpleNamespace(cursor=Cursor, close=lambda: None))
    data._pool.clear()
    with pytest.raises(data.DataUnavailable, match=r"^ecommerce_mart.sla_status is not published yet"):
        data._run("SELECT 1", None)


def test_a_failed_query_is_retried_once_on_a_new_connection_and_good_connections_are_reused(monkeypatch):
    from dashboard import data

    opened, closed = [], []

    def connect():
        n = len(opened)

        class Cursor:
            description = [("t.v", "int")]

            def execute(self, sql, params):
                if n == 0:
                    raise OSError("[FAILED_READ_FILE] It is possible the underlying files have been updated")

            def fetchall(self):
                return [(n,)]

            def close(self):
                pass

        conn = types.SimpleNamespace(cursor=Cursor, close=lambda: closed.append(n))
        opened.append(conn)
        return conn

    monkeypatch.setattr(data, "_connect", connect)
    data._pool.clear()
    assert data._run("SELECT v FROM t", None)["v"].tolist() == [1]  # the stale session 0 failed and was closed
    assert data._run("SELECT v FROM t", None)["v"].tolist() == [1]  # connection 1 came back from the pool
    assert (len(opened), closed) == (2, [0])
