"""The dashboard in a real browser (Debian chromium driven by Playwright) against the real app on loopback,
reading the integration days' marts over HiveServer2: log in, visit every page, compare the KPIs with the
marts queried directly, open a signed purchases link, refuse a tampered link and a wrong password.
Screenshots of every page go to ``test-artifacts/screenshots``. Only reads; its name sorts it after the modules
that ingest and publish (``test_ingestion`` counts the markers of the days it ingested).
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

import pytest

from dashboard import auth
from pipeline import hs2
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration
playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
USER = "analyst"
PASSWORD, SECRET = secrets.token_urlsafe(16), secrets.token_urlsafe(32)  # per run, never stored
SHOTS = ROOT / "test-artifacts" / "screenshots"
CONTENT = ", ".join(f'[data-testid="{t}"]' for t in ("stPlotlyChart", "stDataFrame", "stAlert", "stMetric"))
PAGES = ("Overview", "Geography", "Products", "Customers", "Anomalies", "Pipeline and SLA")


@pytest.fixture(scope="module")
def app_url(marts):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, ECOM_CONFIG_OVERLAY=str(marts["overlay"]),
               **{auth.USERS_ENV: json.dumps({USER: auth.hash_password(PASSWORD)}), auth.SECRET_ENV: SECRET})
    log = open(marts["state"] / "logs" / "dashboard.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"streamlit did not start: {(marts['state'] / 'logs' / 'dashboard.log').read_text()}")
        time.sleep(1)
    yield url
    proc.terminate()
    proc.wait(30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def metrics(page) -> dict[str, str]:
    out = {}
    for m in page.locator('[data-testid="stMetric"]').all():
        out[m.locator('[data-testid="stMetricLabel"]').inner_text().strip()] = \
            m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def wait_text(page, text, timeout=120_000):
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    settled(page)


def settled(page, timeout=120_000):
    """Streamlit has run the page: its status widget came and went, and some content is shown."""
    try:
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="attached", timeout=3000)
    except playwright.TimeoutError:
        pass  # the run may already be over
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    page.locator(CONTENT).first.wait_for(timeout=timeout)


def log_in(page, url, password):
    page.goto(url)
    page.get_by_label("User", exact=True).fill(USER)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_wrong_password_is_refused(app_url, browser):
    page = browser.new_page()
    log_in(page, app_url, "not the password")
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
        page.get_by_role("link", name=name).click()
        page.get_by_role("heading", name=name).wait_for(timeout=120_000)
        settled(page)
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
    page.goto(auth.purchases_url(customer, app_url, SECRET))
    wait_text(page, f"Customer {customer}")
    shown = metrics(page)
    assert shown["Orders"] == f"{orders:,}" and shown["Spent"] == f"£{spent:,.2f}"
    assert page.get_by_role("link", name="Overview").count() == 0  # the shopper sees no analyst page
    page.screenshot(path=str(SHOTS / "my_purchases.png"), full_page=True)
    token = auth.sign_customer(customer, SECRET)
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    page.goto(f"{app_url}/my_purchases?token={tampered}")
    wait_text(page, "this link is not valid")
    assert page.get_by_text(f"Customer {customer}").count() == 0
    assert metrics(page) == {}
    page.close()
