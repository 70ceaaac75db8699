"""The dashboard in a real browser (Debian chromium driven by Playwright) against the real app on loopback,
reading the integration days' marts over HiveServer2: log in, visit every page, compare the KPIs with the
marts queried directly, review an anomaly, open a signed purchases link, refuse a tampered link, a wrong
password and a page opened by its URL without logging in. Screenshots of every page go to
``test-artifacts/screenshots``. Its name sorts it after the modules that ingest and publish and read the anomalies
(``test_ingestion`` counts the markers of the days it ingested; ``test_marts_anomalies`` expects them all NEW).
"""

import csv
import datetime as dt
import io
import json
import os
import re
import secrets
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dashboard import auth
from dashboard import browser as browsing
from pipeline.io import hs2
from tests.integration.conftest import ROOT, streamlit_app

pytestmark = pytest.mark.integration

USER = "analyst"
PASSWORD, SECRET = secrets.token_urlsafe(16), secrets.token_urlsafe(32)  # per run, never stored
SHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = ("Overview", "Geography", "Products", "Customers", "Anomalies", "Pipeline and SLA")
WORLD = ROOT / "dashboard" / "static" / "topojson" / "world_110m.json"
COLUMN_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")  # a mart column's name, shown raw


@pytest.fixture(scope="module")
def app_url(marts):
    env = dict(os.environ, ECOM_CONFIG_OVERLAY=str(marts["overlay"]),
               **{auth.USERS_ENV: json.dumps({USER: auth.hash_password(PASSWORD)}), auth.SECRET_ENV: SECRET})
    with streamlit_app(env, marts["state"] / "logs" / "dashboard.log") as url:
        yield url


def metrics(page) -> dict[str, str]:
    out = {}
    for m in page.locator('[data-testid="stMetric"]').all():
        out[m.locator('[data-testid="stMetricLabel"]').inner_text().strip()] = \
            m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def headers(page) -> list[str]:
    """The column headings of every table shown on the page (the grid's accessible column headers, once drawn;
    a table in a closed expander is drawn when opened)."""
    grids = [g for g in page.locator('[data-testid="stDataFrame"]').all() if g.is_visible()]
    for grid in grids:
        grid.locator('[role="columnheader"]').first.wait_for(state="attached", timeout=30_000)
    return [h for grid in grids for h in grid.locator('[role="columnheader"]').all_text_contents()]


def download(page, button: str) -> list[dict]:
    """Click a download button and read the CSV it gives."""
    with page.expect_download() as got:
        page.get_by_role("button", name=button).first.click()
    return list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))


def day(value) -> dt.date:
    """A DATE as HiveServer2 returns it (ISO text)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def no_dialog_or_error(page, where: str) -> None:
    assert page.locator('[role="dialog"]').count() == 0, where
    assert page.locator('[data-testid="stException"]').count() == 0, where
    raw = [h for h in headers(page) if COLUMN_NAME.match(h)]
    assert raw == [], (where, raw)


def wait_text(page, text, timeout=120_000):
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    page.locator(f'{browsing.APP}[data-test-script-state="notRunning"]').wait_for(timeout=timeout)


def log_in(page, url, password, heading="Overview"):
    browsing.open_url(page, url, "E-commerce warehouse", content=False)
    page.get_by_label("User", exact=True).fill(USER)
    page.get_by_label("Password", exact=True).fill(password)
    browsing.act(page, page.get_by_role("button", name="Log in").click, heading, content=heading == "Overview")


def test_pages_opened_by_their_url_without_a_login_show_only_the_login(app_url, browser):
    """First in the module, on a server nobody has logged in to yet (the state an old-style multipage app leaks)."""
    page = browser.new_page()
    for path in ("overview", "anomalies", "pipeline", "my_purchases"):
        browsing.open_url(page, f"{app_url}/{path}", "E-commerce warehouse", content=False)
        assert page.get_by_role("heading", name="Overview").count() == 0, path
        assert page.get_by_role("heading", name="Anomalies").count() == 0, path
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0, path
    page.close()


def test_a_wrong_password_is_refused(app_url, browser):
    page = browser.new_page()
    log_in(page, app_url, "not the password", heading="E-commerce warehouse")
    wait_text(page, "Wrong user name or password.")
    assert page.get_by_text("Net revenue").count() == 0
    page.close()


def test_an_analyst_sees_every_page_and_the_overview_kpis_equal_the_marts(app_url, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, app_url, PASSWORD)
    wait_text(page, "Net revenue")
    shown = metrics(page)
    (first, last), = hs2.query("SELECT min(invoice_date), max(invoice_date) FROM ecommerce_mart.mart_daily_sales")
    net, orders, units = hs2.query(
        "SELECT sum(net_revenue), sum(orders), sum(units) FROM ecommerce_mart.mart_daily_sales "
        "WHERE invoice_date BETWEEN %(a)s AND %(b)s", {"a": str(first), "b": str(last)})[0]
    assert shown["Net revenue"] == f"£{Decimal(net):,.0f}"
    assert shown["Orders"] == f"{orders:,}"
    assert shown["Units"] == f"{units:,}"
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    for name in PAGES[1:]:
        browsing.act(page, page.get_by_role("link", name=name).click, name)
        assert page.locator('[data-testid="stException"]').count() == 0, name
        if name in ("Geography", "Products", "Customers"):
            assert page.get_by_text("not answering").count() == 0, name
            assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1, name
        page.screenshot(path=str(SHOTS / f"{name.lower().replace(' ', '_')}.png"), full_page=True)
    page.close()


def test_a_signed_link_shows_exactly_that_customers_purchases_and_a_tampered_one_nothing(app_url, browser):
    customer = 17850
    lines = hs2.query("SELECT invoice_no, line_amount, is_cancellation FROM "
                      "ecommerce_mart.mart_customer_purchase_history WHERE customer_id = %(c)s", {"c": customer})
    assert lines
    spent = sum(Decimal(a) for _, a, c in lines if not c)
    orders = len({i for i, _, c in lines if not c})
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    browsing.open_url(page, auth.purchases_url(customer, app_url, SECRET), "My purchases")
    wait_text(page, f"Customer {customer}")
    shown = metrics(page)
    returned = sum((-Decimal(a) for _, a, c in lines if c), Decimal(0))
    assert shown["Orders"] == f"{orders:,}" and shown["Spent"] == f"£{spent:,.2f}"
    assert shown["Returned"] == f"£{returned:,.2f}" and shown["Net"] == f"£{spent - returned:,.2f}"
    assert "£-" not in page.locator("body").inner_text()
    no_dialog_or_error(page, "signed link")
    assert headers(page)[:5] == ["Invoice", "Date and time", "Items", "Amount", "Returned"]
    assert page.get_by_role("link", name="Overview").count() == 0  # the shopper sees no analyst page
    page.screenshot(path=str(SHOTS / "my_purchases.png"), full_page=True)
    token = auth.sign_customer(customer, SECRET)
    browsing.open_url(page, f"{app_url}/?token={token}", "My purchases")  # the root opens it too
    wait_text(page, f"Customer {customer}")
    no_dialog_or_error(page, "signed link at the root")
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    browsing.open_url(page, f"{app_url}/my_purchases?token={tampered}", "My purchases")
    wait_text(page, "this link is not valid")
    assert page.get_by_text(f"Customer {customer}").count() == 0
    assert metrics(page) == {}
    page.close()


def test_an_analyst_acknowledges_an_anomaly_and_who_and_when_are_recorded(app_url, browser):
    assert hs2.query("SELECT count(*) FROM ecommerce_mart.anomalies WHERE status_changed_by = %(u)s",
                     {"u": USER}) == [(0,)]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, app_url, PASSWORD)
    wait_text(page, "Net revenue")
    browsing.act(page, page.get_by_role("link", name="Anomalies").click, "Review a line")
    page.get_by_label("Note", exact=True).fill("checked with the warehouse team")
    page.get_by_role("button", name="Record").click()
    done = f"ACKNOWLEDGED by {USER}"
    page.get_by_text(done).wait_for(timeout=600_000)
    message = page.locator('[data-testid="stAlert"]').filter(has_text=done).inner_text()
    page.screenshot(path=str(SHOTS / "anomalies_reviewed.png"), full_page=True)
    page.close()
    changed = hs2.query("SELECT DISTINCT line_id, status, status_changed_by, status_changed_at "
                        "FROM ecommerce_mart.anomalies WHERE status_changed_by = %(u)s", {"u": USER})
    assert len(changed) == 1  # one line (flagged on one or both metrics: a row per metric)
    line_id, status, by, at = changed[0]
    assert (status, by) == ("ACKNOWLEDGED", USER) and at is not None
    assert f"anomaly {line_id} " in message and "NEW → ACKNOWLEDGED" in message
    note, = hs2.query("SELECT note FROM ecommerce_mart.anomaly_status_log WHERE line_id = %(l)s", {"l": line_id})
    assert note == ("checked with the warehouse team",)


def test_every_page_works_with_the_network_limited_to_loopback(app_url, browser):
    """No request leaves the machine: the world map comes from the app, and draws a shape for every country
    with sales in the range; every page says how fresh its data is; tables carry labels and export as CSV."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    outside = []

    def loopback_only(route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in ("127.0.0.1", "localhost"):
            return route.continue_()
        outside.append(url)
        return route.abort()

    context.route("**/*", loopback_only)
    page = context.new_page()
    log_in(page, app_url, PASSWORD)
    wait_text(page, "Net revenue")
    (until, loaded), = hs2.query("SELECT max(window_end), max(finished_at) FROM ecommerce_db.batch_audit "
                                 "WHERE feed = 'transactions'")
    (ready_day, first_ready), = hs2.query(
        "SELECT invoice_date, coalesce(first_ready_at, ready_at) FROM ecommerce_mart.marts_ready "
        "ORDER BY invoice_date DESC, revision DESC LIMIT 1")
    first, last = map(day, hs2.query("SELECT min(invoice_date), max(invoice_date) "
                                     "FROM ecommerce_mart.mart_daily_sales")[0])
    start = max(first, last.replace(day=1))  # the pages' default range: the last month with sales
    for name in PAGES:
        if name != "Overview":
            browsing.act(page, page.get_by_role("link", name=name).click, name)
        no_dialog_or_error(page, name)
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert f"Data as of {until:%Y-%m-%d %H:%M}" in sidebar, name
        assert f"latest batch loaded {loaded:%Y-%m-%d %H:%M} UTC" in sidebar, name
        assert f"marts of {ready_day} ready at {first_ready:%Y-%m-%d %H:%M} UTC" in sidebar, name
        assert page.get_by_text("looks stalled").count() == 0, name  # batches were loaded minutes ago

    browsing.act(page, page.get_by_role("link", name="Geography").click, "Geography")
    world = {g.get("id") for g in json.loads(WORLD.read_text())["objects"]["countries"]["geometries"]} - {None}
    sold = hs2.query("SELECT DISTINCT c.iso3 FROM ecommerce_mart.mart_daily_sales d JOIN ecommerce_dw.dim_country c "
                     "ON d.country_key = c.country_key WHERE d.invoice_date BETWEEN %(a)s AND %(b)s",
                     {"a": str(start), "b": str(last)})
    on_map = {iso3 for iso3, in sold if iso3} & world
    assert on_map, "no country with sales has a shape on the world map"
    page.locator("path.choroplethlocation").first.wait_for(timeout=60_000)
    assert page.locator("path.choroplethlocation").count() == len(on_map)
    by_country = dict(hs2.query("SELECT country_name, sum(net_revenue) FROM ecommerce_mart.mart_daily_sales "
                                "WHERE invoice_date BETWEEN %(a)s AND %(b)s GROUP BY country_name",
                                {"a": str(start), "b": str(last)}))
    rows = {r["Country"]: Decimal(r["Net revenue"]) for r in download(page, "Download CSV")}
    assert set(rows) == set(by_country)
    assert all(abs(rows[c] - Decimal(v)) <= Decimal("0.005") for c, v in by_country.items()), rows
    page.screenshot(path=str(SHOTS / "geography_offline.png"), full_page=True)

    browsing.act(page, page.get_by_role("link", name="Pipeline and SLA").click, "Pipeline and SLA")
    run = page.get_by_role("combobox", name="Scheduled run").input_value()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC: ([2-9]|\d\d+) tasks, \d+ failed", run), run
    dq_first, dq_last = map(day, hs2.query("SELECT min(invoice_date), max(invoice_date) "
                                           "FROM ecommerce_mart.dq_results")[0])
    window = {"a": str(max(dq_first, dq_last - dt.timedelta(days=13))), "b": str(dq_last)}
    counts = dict(hs2.query("SELECT severity, count(*) FROM ecommerce_mart.dq_results "
                            "WHERE invoice_date BETWEEN %(a)s AND %(b)s GROUP BY severity", window))
    every_run = download(page, "Download every run (CSV)")
    assert len(every_run) == sum(counts.values()) and {r["Severity"] for r in every_run} == set(counts)
    browsing.act(page, page.get_by_role("button", name="Remove error").first.click, "Pipeline and SLA")
    warnings = download(page, "Download every run (CSV)")
    assert len(warnings) == counts.get("warn", 0) and {r["Severity"] for r in warnings} <= {"warn"}
    page.screenshot(path=str(SHOTS / "pipeline_offline.png"), full_page=True)
    shopper = context.new_page()
    browsing.open_url(shopper, auth.purchases_url(17850, app_url, SECRET), "My purchases")
    wait_text(shopper, "Customer 17850")
    no_dialog_or_error(shopper, "signed link")
    assert "£-" not in shopper.locator("body").inner_text() and "Amount" in headers(shopper)
    context.close()
    assert outside == []
