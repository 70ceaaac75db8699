"""Dashboard sign-in and purchase links, hardened: the sign-in throttle (fake clock), one bcrypt check whether
or not the user exists, the link secret's minimum length, key rotation and the configured link lifetime, as pure
functions and on the pages (Streamlit's AppTest) and in the CLI that issues links."""

import datetime as dt
import json
import os
import subprocess
import sys
import time
import types

import bcrypt
import pytest
from itsdangerous.timed import TimestampSigner
from streamlit.testing.v1 import AppTest

from dashboard import auth
from pipeline import config

APP = str(config.PROJECT_ROOT / "dashboard" / "app.py")
CURRENT, OLD, OTHER = "c" * 40, "o" * 40, "x" * 40  # 40-byte keys
NOT_CONFIGURED = "purchase links are not configured: ECOM_DASHBOARD_SECRET must be at least 32 bytes"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# --- rule 1: failed sign-ins are throttled per user name and per client -----------------------------------------


def test_five_failures_for_a_name_refuse_that_name_from_any_client_for_the_back_off():
    clock = Clock()
    gate = auth.LoginThrottle(max_failures=5, window_s=900, lockout_s=900, clock=clock)
    for n in range(4):
        assert gate.failed("alice", f"10.0.0.{n}") == 0
        clock.now += 10
    assert gate.failed("alice", "10.0.0.4") == 900  # the fifth
    assert gate.wait_s("alice", "192.0.2.1") == 900  # any client
    assert gate.wait_s("bob", "192.0.2.1") == 0  # any other name
    clock.now += 899
    assert gate.wait_s("alice", None) == 1
    clock.now += 1
    assert gate.wait_s("alice", None) == 0
    assert gate.failed("alice", "10.0.0.9") == 0  # a fresh count after the back-off


def test_five_failures_from_a_client_refuse_that_client_for_any_name():
    clock = Clock()
    gate = auth.LoginThrottle(clock=clock)
    assert [gate.failed(f"guess{n}", "203.0.113.7") for n in range(5)] == [0, 0, 0, 0, 900]
    assert gate.wait_s("alice", "203.0.113.7") == 900
    assert gate.wait_s("alice", "203.0.113.8") == 0
    assert gate.wait_s("guess1", "203.0.113.8") == 0  # one failure for that name: not refused elsewhere


def test_only_failures_within_the_window_count():
    clock = Clock()
    gate = auth.LoginThrottle(max_failures=5, window_s=900, lockout_s=600, clock=clock)
    for _ in range(4):
        gate.failed("alice", None)
    clock.now += 900  # those four are now out of the window
    assert [gate.failed("alice", None) for _ in range(5)] == [0, 0, 0, 0, 600]


def test_a_success_resets_the_names_count_but_not_the_clients():
    clock = Clock()
    gate = auth.LoginThrottle(clock=clock)
    for _ in range(4):
        gate.failed("alice", "10.0.0.1")
    gate.succeeded("alice")
    assert [gate.failed("alice", f"10.0.1.{n}") for n in range(4)] == [0, 0, 0, 0]
    # the client that failed four times is one failure from its back-off, success or not
    assert gate.failed("bob", "10.0.0.1") == 900
    assert gate.wait_s("alice", "10.0.0.1") == 900 and gate.wait_s("alice", "10.0.0.2") == 0


def test_attempts_still_being_checked_count_toward_the_limit():
    clock = Clock()
    gate = auth.LoginThrottle(clock=clock)
    assert [gate.begin("alice", f"10.0.0.{n}") for n in range(5)] == [0] * 5  # five sessions at once
    assert gate.begin("alice", "10.0.0.9") > 0  # a sixth must wait for those five to be decided
    assert [gate.failed("alice", f"10.0.0.{n}") for n in range(5)] == [0, 0, 0, 0, 900]
    assert gate.begin("alice", "10.0.0.9") == 900
    assert gate.begin("bob", "10.0.0.9") == 0
    gate.succeeded("bob", "10.0.0.9")  # decided: no longer in progress
    assert [gate.begin("bob", f"10.0.1.{n}") for n in range(5)] == [0] * 5


def test_guessing_at_many_names_keeps_the_state_bounded():
    clock = Clock()
    gate = auth.LoginThrottle(clock=clock, max_keys=50)
    for n in range(1000):
        gate.failed(f"name{n}", f"198.51.100.{n % 200}")
        clock.now += 0.01
    assert len(gate._failures) + len(gate._locked_until) <= 100


def test_the_throttle_message_rounds_up_to_minutes():
    assert auth.throttle_message(900) == "too many failed sign-ins, try again in 15 minutes"
    assert auth.throttle_message(61) == "too many failed sign-ins, try again in 2 minutes"
    assert auth.throttle_message(5) == "too many failed sign-ins, try again in 1 minute"


def test_the_client_is_the_peer_address_or_behind_a_local_proxy_its_last_forwarded_hop():
    assert auth.client_key("198.51.100.4", {"X-Forwarded-For": "1.2.3.4"}) == "198.51.100.4"  # no spoofing
    assert auth.client_key(None, {"X-Forwarded-For": "1.2.3.4, 203.0.113.9"}) == "forwarded:203.0.113.9"
    assert auth.client_key(None, {}) == auth.client_key(None, None) == "local"


def test_the_throttle_settings_come_from_the_dashboard_section():
    assert auth.throttle_settings() == {"max_failures": 5, "window_s": 900.0, "lockout_s": 900.0}
    assert config.dashboard().link_max_age_hours == 24.0


@pytest.fixture
def analysts(monkeypatch):
    from dashboard.views import login

    monkeypatch.setenv(auth.USERS_ENV, json.dumps({"alice": bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4))
                                                   .decode()}))
    login.throttle.clear()  # one throttle per process: start each test from none
    yield
    login.throttle.clear()


def sign_in(app, user, password):
    app.text_input(key="login_user").input(user)
    app.text_input(key="login_password").input(password)
    app.button[0].click().run()
    return [e.value for e in app.error]


def test_on_the_login_page_the_sixth_attempt_is_refused_even_with_the_right_password(analysts):
    app = AppTest.from_file(APP, default_timeout=60).run()
    for _ in range(4):
        assert sign_in(app, "alice", "wrong") == ["Wrong user name or password."]
    assert sign_in(app, "alice", "wrong") == ["Too many failed sign-ins, try again in 15 minutes."]
    assert sign_in(app, "alice", "correct horse") == ["Too many failed sign-ins, try again in 15 minutes."]
    assert "user" not in app.session_state
    other = AppTest.from_file(APP, default_timeout=60).run()  # another browser session of the same process
    assert sign_in(other, "alice", "correct horse") == ["Too many failed sign-ins, try again in 15 minutes."]


def test_on_the_login_page_a_success_resets_the_count(analysts, monkeypatch, warehouse_down):
    from dashboard.views import login

    clients = iter(f"10.1.0.{n}" for n in range(100))  # a new client each attempt: only the name's count
    monkeypatch.setattr(login, "client", lambda: next(clients))
    app = AppTest.from_file(APP, default_timeout=60).run()
    for _ in range(4):
        sign_in(app, "alice", "wrong")
    errors = sign_in(app, "alice", "correct horse")  # signed in: the overview says the warehouse is down
    assert app.session_state["user"] == "alice" and not [e for e in errors if "sign-ins" in e or "Wrong" in e]
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert [sign_in(app, "alice", "wrong") for _ in range(4)] == [["Wrong user name or password."]] * 4


# --- rule 2: the password check takes one bcrypt check whether or not the user exists ----------------------------


def _fastest(check, n=3):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        check()
        best = min(best, time.perf_counter() - t0)
    return best


def test_an_unknown_user_costs_the_same_bcrypt_time_as_a_known_one():
    known = {"alice": auth.hash_password("correct horse")}  # the cost the CLI's dashboard-user uses
    auth.check_password(known, "mallory", "warm-up")  # a dummy hash may be made once per process, not per check
    known_s = _fastest(lambda: auth.check_password(known, "alice", "wrong password"))
    unknown_s = _fastest(lambda: auth.check_password(known, "mallory", "wrong password"))
    assert known_s > 0.010 and unknown_s > 0.010, (known_s, unknown_s)
    assert 0.5 < unknown_s / known_s < 2, (known_s, unknown_s)


def test_every_check_is_exactly_one_bcrypt_check_of_the_known_hashes_cost(monkeypatch):
    known = {"alice": bcrypt.hashpw(b"correct horse", bcrypt.gensalt(5)).decode(), "bob": "not a hash"}
    seen = []
    real = bcrypt.checkpw

    def spy(password, hashed):
        seen.append(hashed[:7])
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    assert auth.check_password(known, "alice", "correct horse")
    assert not auth.check_password(known, "alice", "wrong")
    assert not auth.check_password(known, "mallory", "correct horse")
    assert not auth.check_password(known, "bob", "x")  # a malformed hash matches nothing, after the same work
    assert not auth.check_password(known, "mallory", "")
    assert seen == [b"$2b$05$"] * 5
    assert not auth.check_password(known, "alice", "x" * 73)  # longer than bcrypt reads: refused for every name


# --- rule 3: the link secret is at least 32 bytes ---------------------------------------------------------------


def test_a_secret_shorter_than_32_bytes_is_refused_for_signing_and_reading(monkeypatch):
    monkeypatch.setenv(auth.SECRET_ENV, "s" * 31)
    with pytest.raises(auth.LinksNotConfigured, match=f"^{NOT_CONFIGURED}$"):
        auth.sign_customer(17850)
    with pytest.raises(auth.LinksNotConfigured, match=f"^{NOT_CONFIGURED}$"):
        auth.read_token("anything", 60)
    monkeypatch.setenv(auth.SECRET_ENV, "é" * 16)  # 16 characters, 32 bytes
    assert auth.read_token(auth.sign_customer(17850), 60) == 17850
    monkeypatch.setenv(auth.PREVIOUS_SECRET_ENV, "short")
    with pytest.raises(auth.LinksNotConfigured, match="ECOM_DASHBOARD_SECRET_PREVIOUS must be at least 32 bytes"):
        auth.sign_customer(17850)
    monkeypatch.delenv(auth.SECRET_ENV)
    with pytest.raises(auth.LinksNotConfigured, match="not configured: set ECOM_DASHBOARD_SECRET"):
        auth.sign_customer(17850)


def open_link(token):
    app = AppTest.from_file(APP, default_timeout=60)
    app.query_params["token"] = token
    app.run()
    assert not app.exception and [t.value for t in app.title] == ["My purchases"]
    return [e.value for e in app.error], [c.value for c in app.caption]


def test_the_page_says_links_are_not_configured_with_a_short_secret(monkeypatch, warehouse_down):
    monkeypatch.setenv(auth.SECRET_ENV, "test-secret")
    errors, captions = open_link(auth.sign_customer(17850, "test-secret"))
    assert errors == [f"Sorry, {NOT_CONFIGURED}."] and captions == []


def run_cli(tmp_path, *args, **env):
    base = {k: v for k, v in os.environ.items() if k not in (auth.SECRET_ENV, auth.PREVIOUS_SECRET_ENV)}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=config.PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(base, ECOM_STATE_DIR=str(tmp_path), **env))


def test_the_cli_refuses_to_issue_a_link_with_a_short_secret(tmp_path):
    proc = run_cli(tmp_path, "purchases-link", "17850", **{auth.SECRET_ENV: "s" * 31})
    assert (proc.returncode, proc.stdout) == (2, "")
    assert f"error: {NOT_CONFIGURED}" in proc.stderr


def test_the_cli_prints_only_the_user_entry_on_stdout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline", "dashboard-user", "alice", "--password-stdin"],
                          cwd=config.PROJECT_ROOT, input="correct horse\n", capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, ECOM_STATE_DIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    users = json.loads(proc.stdout)  # what `export ECOM_DASHBOARD_USERS=$(...)` takes
    assert list(users) == ["alice"]
    assert auth.check_password(users, "alice", "correct horse")
    assert not auth.check_password(users, "alice", "wrong horse")
    assert auth.USERS_ENV in proc.stderr


# --- rule 4: rotation: links signed with the previous secret open while it is set --------------------------------


def test_links_signed_with_the_previous_secret_open_only_while_it_is_set(monkeypatch):
    old_link = auth.sign_customer(17850, OLD)
    monkeypatch.setenv(auth.SECRET_ENV, CURRENT)
    monkeypatch.setenv(auth.PREVIOUS_SECRET_ENV, OLD)
    assert auth.read_token(old_link, 60) == 17850
    new_link = auth.sign_customer(12346)  # always signed with the current secret
    assert auth.read_token(new_link, 60, CURRENT) == 12346
    with pytest.raises(auth.InvalidLink, match="^this link is not valid$"):
        auth.read_token(new_link, 60, OLD)
    with pytest.raises(auth.InvalidLink, match="^this link is not valid$"):
        auth.read_token(auth.sign_customer(17850, OTHER), 60)  # signed with neither
    monkeypatch.delenv(auth.PREVIOUS_SECRET_ENV)  # the rotation window closes: old links are revoked
    with pytest.raises(auth.InvalidLink, match="^this link is not valid$"):
        auth.read_token(old_link, 60)
    assert auth.read_token(new_link, 60) == 12346


def signed_hours_ago(hours, customer_id, secret):
    ago = int(time.time() - hours * 3600)
    original = TimestampSigner.get_timestamp
    TimestampSigner.get_timestamp = lambda self: ago
    try:
        return auth.sign_customer(customer_id, secret)
    finally:
        TimestampSigner.get_timestamp = original


def test_an_expired_link_from_the_previous_secret_says_expired(monkeypatch):
    monkeypatch.setenv(auth.SECRET_ENV, CURRENT)
    monkeypatch.setenv(auth.PREVIOUS_SECRET_ENV, OLD)
    with pytest.raises(auth.InvalidLink, match="^this link has expired"):
        auth.read_token(signed_hours_ago(2, 17850, OLD), 3600)


def test_the_page_opens_a_previous_secret_link_and_refuses_it_after_the_rotation(monkeypatch, warehouse_down):
    monkeypatch.setenv(auth.SECRET_ENV, CURRENT)
    monkeypatch.setenv(auth.PREVIOUS_SECRET_ENV, OLD)
    old_link = auth.sign_customer(17850, OLD)
    errors, captions = open_link(old_link)
    assert captions == ["Customer 17850"] and errors == ["Your purchase history is not available right now. "
                                                         "Please try again later."]
    monkeypatch.delenv(auth.PREVIOUS_SECRET_ENV)
    assert open_link(old_link) == (["Sorry, this link is not valid."], [])


# --- rule 5: the link lifetime is [dashboard] link_max_age_hours, on the page and in the CLI ----------------------


def test_the_lifetime_is_the_configured_hours(monkeypatch):
    assert auth.link_max_age_s() == 24 * 3600  # the repository's luigi.cfg, as before
    real = config.dashboard
    monkeypatch.setattr(config, "dashboard", lambda: types.SimpleNamespace(link_max_age_hours=1.5))
    assert auth.link_max_age_s() == 5400
    monkeypatch.setattr(config, "dashboard", lambda: types.SimpleNamespace(link_max_age_hours=0.0))
    with pytest.raises(auth.LinksNotConfigured, match="link_max_age_hours must be more than 0"):
        auth.link_max_age_s()
    monkeypatch.setattr(config, "dashboard", real)


def test_the_page_expires_links_after_the_configured_hours(monkeypatch, warehouse_down):
    monkeypatch.setenv(auth.SECRET_ENV, CURRENT)
    monkeypatch.delenv(auth.PREVIOUS_SECRET_ENV, raising=False)
    two_hours_old = signed_hours_ago(2, 17850, CURRENT)
    assert open_link(two_hours_old)[1] == ["Customer 17850"]  # 24 hours by default
    monkeypatch.setattr(config, "dashboard", lambda: types.SimpleNamespace(link_max_age_hours=1.0))
    assert open_link(two_hours_old) == (
        ["Sorry, this link has expired: open your purchase history again from your account."], [])


def test_the_cli_prints_the_link_on_stdout_and_its_configured_expiry_on_stderr(tmp_path):
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text("[dashboard]\nlink_max_age_hours = 2\n")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    proc = run_cli(tmp_path, "purchases-link", "17850", "--base-url", "http://shop.example/",
                   **{auth.SECRET_ENV: CURRENT, auth.PREVIOUS_SECRET_ENV: OLD, config.OVERLAY_ENV: str(overlay)})
    assert proc.returncode == 0, proc.stderr
    url, = proc.stdout.splitlines()
    assert url.startswith("http://shop.example/my_purchases?token=")
    assert auth.read_token(url.partition("token=")[2], 60, CURRENT) == 17850  # signed with the current secret
    expiry = next(line for line in proc.stderr.splitlines() if line.startswith("expires "))
    assert expiry.endswith(" UTC ([dashboard] link_max_age_hours = 2)")
    expires = dt.datetime.strptime(expiry[8:27], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    assert before + dt.timedelta(hours=2) <= expires <= before + dt.timedelta(hours=2, seconds=60)
    assert f"${auth.PREVIOUS_SECRET_ENV} are still accepted" in proc.stderr


def test_a_lockout_reads_as_its_configured_minutes_whatever_the_clock_reads():
    now = 65120.721830445305   # a monotonic clock reading where (now + 900) - now is 900.0000000000073
    throttle = auth.LoginThrottle(max_failures=1, window_s=900, lockout_s=900, clock=lambda: now)
    assert throttle.begin("alice", None) == 0
    assert auth.throttle_message(throttle.failed("alice", None)).endswith("try again in 15 minutes")
