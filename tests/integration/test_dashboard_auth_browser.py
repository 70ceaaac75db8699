"""The hardened sign-in and purchase links in a real browser (Debian chromium driven by Playwright) against the
real app on loopback, with no warehouse: the pages under test need none (a purchases link that opens shows the
customer and "not available right now"; the analysts' overview says the warehouse is not answering).

Repeated wrong passwords for one name, or from one client, lead to the throttle message; a link signed with the
previous secret opens while ``$ECOM_DASHBOARD_SECRET_PREVIOUS`` is set and is refused once Streamlit is restarted
without it; tampered and expired links (lifetime from ``[dashboard] link_max_age_hours``) and a too-short secret
show plain messages. Each client signs in through its own reverse proxy on loopback, which adds its
``X-Forwarded-For`` hop to every request and to the WebSocket handshake, as nginx on the same host does.
"""

import contextlib
import json
import os
import secrets
import socket
import threading
import time

import pytest

from dashboard import auth
from dashboard import browser as browsing
from pipeline import config
from tests.integration.conftest import free_port, streamlit_app

pytestmark = pytest.mark.integration

PASSWORDS = {"analyst": secrets.token_urlsafe(16), "carol": secrets.token_urlsafe(16)}  # per run, never stored
CURRENT, PREVIOUS = secrets.token_urlsafe(32), secrets.token_urlsafe(32)  # 43 bytes each
PREVIOUS_ENV = "ECOM_DASHBOARD_SECRET_PREVIOUS"  # spelled out: the name operators set
THROTTLED = "Too many failed sign-ins, try again in 15 minutes."
LOGIN = "E-commerce warehouse"


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _forward_requests(browser_side: socket.socket, app_side: socket.socket, client: str) -> None:
    """Copy HTTP/1.1 requests to the app, each head with ``X-Forwarded-For: client`` added; after a WebSocket
    upgrade, copy bytes as they come."""
    buffered = b""
    with contextlib.suppress(OSError):
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = browser_side.recv(65536)
                if not chunk:
                    return app_side.shutdown(socket.SHUT_WR)
                buffered += chunk
            head, buffered = buffered.split(b"\r\n\r\n", 1)
            app_side.sendall(head + f"\r\nX-Forwarded-For: {client}\r\n\r\n".encode())
            fields = {k.strip().lower(): v.strip().lower() for k, _, v in
                      (line.decode("latin-1").partition(":") for line in head.split(b"\r\n")[1:])}
            if fields.get("upgrade") == "websocket":
                app_side.sendall(buffered)
                return _pipe(browser_side, app_side)
            body = int(fields.get("content-length", "0"))
            while len(buffered) < body:
                chunk = browser_side.recv(65536)
                if not chunk:
                    return app_side.shutdown(socket.SHUT_WR)
                buffered += chunk
            app_side.sendall(buffered[:body])
            buffered = buffered[body:]


@contextlib.contextmanager
def reverse_proxy(url: str, client: str):
    """A reverse proxy on a free loopback port in front of the app at ``url`` for one client address; yields
    its URL."""
    app_port = int(url.rsplit(":", 1)[1])
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                browser_side, _ = listener.accept()
                app_side = socket.create_connection(("127.0.0.1", app_port))
                connections.extend((browser_side, app_side))
                threading.Thread(target=_forward_requests, args=(browser_side, app_side, client), daemon=True).start()
                threading.Thread(target=_pipe, args=(app_side, browser_side), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.close()


@contextlib.contextmanager
def streamlit(tmp_path, name: str, **secret_env: str):
    """The dashboard on a free loopback port with only ``secret_env`` of the link secrets set, its warehouse a
    closed port, links valid one hour."""
    state = tmp_path / name
    (state / "logs").mkdir(parents=True)
    overlay = state / "overlay.cfg"
    overlay.write_text(f"[state]\ndir = {state}\n[hiveserver2]\nport = {free_port()}\n"
                       "[dashboard]\nlink_max_age_hours = 1\n")
    env = {k: v for k, v in os.environ.items()
           if k not in (auth.SECRET_ENV, PREVIOUS_ENV, auth.USERS_ENV, "ECOM_STATE_DIR")}
    env.update({config.OVERLAY_ENV: str(overlay), **secret_env,
                auth.USERS_ENV: json.dumps({u: auth.hash_password(p) for u, p in PASSWORDS.items()})})
    with streamlit_app(env, state / "logs" / "dashboard.log") as url:
        yield url


@pytest.fixture(scope="module")
def rotating(tmp_path_factory):
    """The dashboard during a key rotation: current and previous secrets both set."""
    with streamlit(tmp_path_factory.mktemp("auth"), "rotating",
                   **{auth.SECRET_ENV: CURRENT, PREVIOUS_ENV: PREVIOUS}) as url:
        yield url


def alerts(page) -> list[str]:
    return [a.inner_text().strip() for a in page.locator('[data-testid="stAlert"]').all()]


def sign_in(browser, url, client: str, user: str, password: str, heading: str = LOGIN) -> list[str]:
    """Sign in from a new browser through ``client``'s reverse proxy; the messages shown."""
    context = browser.new_context()
    page = context.new_page()
    with reverse_proxy(url, client) as proxied:
        try:
            return _sign_in(page, proxied, user, password, heading)
        finally:
            context.close()


def _sign_in(page, url: str, user: str, password: str, heading: str) -> list[str]:
    browsing.open_url(page, url, LOGIN, content=False)
    page.get_by_label("User", exact=True).fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    # not browsing.act: a refused attempt's run is so short that the app's script state may never be seen to
    # change. A fresh page has no message and no Overview: wait for the one the click brings
    if heading == LOGIN:
        page.locator('[data-testid="stAlert"]').first.wait_for(timeout=120_000)
    browsing.finish(page, heading, content=heading != LOGIN)
    return alerts(page)


def open_link(browser, url: str, token: str) -> tuple[list[str], list[str]]:
    """The messages and captions the purchases page shows for ``token``."""
    page = browser.new_page()
    try:
        browsing.open_url(page, f"{url}/my_purchases?token={token}", "My purchases")
        captions = [c.inner_text().strip() for c in page.locator('[data-testid="stCaptionContainer"]').all()]
        return alerts(page), captions
    finally:
        page.close()


def signed_hours_ago(hours: float, customer_id: int, secret: str) -> str:
    from itsdangerous.timed import TimestampSigner

    ago, original = int(time.time() - hours * 3600), TimestampSigner.get_timestamp
    TimestampSigner.get_timestamp = lambda self: ago
    try:
        return auth.sign_customer(customer_id, secret)
    finally:
        TimestampSigner.get_timestamp = original


def test_repeated_wrong_passwords_for_one_name_from_any_clients_lead_to_the_throttle_message(rotating, browser):
    shown = [sign_in(browser, rotating, f"198.51.100.{n}", "analyst", "not the password") for n in range(5)]
    assert shown == [["Wrong user name or password."]] * 4 + [[THROTTLED]]
    assert sign_in(browser, rotating, "198.51.100.9", "analyst", PASSWORDS["analyst"]) == [THROTTLED]
    # neither that client nor the app as a whole is refused: another name signs in from it
    assert sign_in(browser, rotating, "198.51.100.9", "carol", PASSWORDS["carol"], heading="Overview")


def test_repeated_wrong_passwords_from_one_client_lead_to_the_throttle_message(rotating, browser):
    client = "203.0.113.7"
    shown = [sign_in(browser, rotating, client, f"guess{n}", "not the password") for n in range(5)]
    assert shown == [["Wrong user name or password."]] * 4 + [[THROTTLED]]
    assert sign_in(browser, rotating, client, "carol", PASSWORDS["carol"]) == [THROTTLED]
    assert sign_in(browser, rotating, "203.0.113.8", "carol", PASSWORDS["carol"], heading="Overview")


def test_a_link_signed_with_the_previous_secret_opens_during_the_rotation(rotating, browser):
    assert open_link(browser, rotating, auth.sign_customer(17850, PREVIOUS)) == (
        ["Your purchase history is not available right now. Please try again later."], ["Customer 17850"])
    assert open_link(browser, rotating, auth.sign_customer(12346, CURRENT))[1] == ["Customer 12346"]


def test_a_tampered_link_and_an_expired_link_show_plain_messages(rotating, browser):
    token = auth.sign_customer(17850, CURRENT)
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert open_link(browser, rotating, tampered) == (["Sorry, this link is not valid."], [])
    assert open_link(browser, rotating, auth.sign_customer(17850, "n" * 40)) == (["Sorry, this link is not valid."],
                                                                                 [])
    # [dashboard] link_max_age_hours = 1 in this app's configuration: 50 minutes old opens, 2 hours old does not
    assert open_link(browser, rotating, signed_hours_ago(50 / 60, 17850, CURRENT))[1] == ["Customer 17850"]
    assert open_link(browser, rotating, signed_hours_ago(2, 17850, PREVIOUS)) == (
        ["Sorry, this link has expired: open your purchase history again from your account."], [])


def test_after_the_rotation_a_link_signed_with_the_previous_secret_is_refused(tmp_path, browser):
    old, new = auth.sign_customer(17850, PREVIOUS), auth.sign_customer(12346, CURRENT)
    with streamlit(tmp_path, "rotated", **{auth.SECRET_ENV: CURRENT}) as url:  # restarted without the previous
        assert open_link(browser, url, old) == (["Sorry, this link is not valid."], [])
        assert open_link(browser, url, new)[1] == ["Customer 12346"]


def test_a_short_secret_says_purchase_links_are_not_configured(tmp_path, browser):
    with streamlit(tmp_path, "short", **{auth.SECRET_ENV: "s" * 31}) as url:
        assert open_link(browser, url, auth.sign_customer(17850, "s" * 31)) == (
            ["Sorry, purchase links are not configured: ECOM_DASHBOARD_SECRET must be at least 32 bytes."], [])
