"""Who may see what: analysts log in with a bcrypt-hashed password; a shopper opens a signed, expiring link.

Users: ``[dashboard] users`` (JSON ``{"name": "<bcrypt hash>"}``) or ``$ECOM_DASHBOARD_USERS`` (same JSON,
takes precedence). No crypto here: bcrypt checks passwords, itsdangerous signs and dates the links.

Sign-in: a password is checked with bcrypt whether or not the user exists (an unknown name is checked against a
dummy hash of the same cost), so the answer's timing does not tell which names exist. Failed sign-ins are
counted per user name and per client by ``LoginThrottle``; after ``[dashboard] login_max_failures`` within
``login_window_minutes`` further attempts for that name or from that client are refused for
``login_lockout_minutes``.

Links: signed with ``$ECOM_DASHBOARD_SECRET`` (at least 32 bytes), valid ``[dashboard] link_max_age_hours``.
Rotating the secret revokes every link issued with the old one; during a rotation window the old secret may be
kept in ``$ECOM_DASHBOARD_SECRET_PREVIOUS``: links signed with it are still accepted while it is set, and new
links are always signed with the current secret.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

import bcrypt
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

USERS_ENV, SECRET_ENV = "ECOM_DASHBOARD_USERS", "ECOM_DASHBOARD_SECRET"
PREVIOUS_SECRET_ENV = "ECOM_DASHBOARD_SECRET_PREVIOUS"
MIN_SECRET_BYTES = 32
SALT = "my-purchases"
DEFAULT_COST = 12  # bcrypt.gensalt()'s, what hash_password uses
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further (and bcrypt 5 refuses longer ones)


class InvalidLink(ValueError):
    """A purchases link that is missing, tampered with or expired (or links are not configured)."""


class LinksNotConfigured(InvalidLink):
    """No usable link secret or lifetime: the operator's mistake, not the shopper's."""


def users() -> dict[str, str]:

    from pipeline import config

    config.load_profile()
    raw = os.environ.get(USERS_ENV) or config.dashboard().users
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def _cost(hashed: str) -> int | None:
    match = re.match(r"^\$2[abxy]?\$(\d\d)\$", hashed)
    return int(match.group(1)) if match and 4 <= int(match.group(1)) <= 31 else None


@functools.lru_cache(maxsize=4)
def dummy_hash(cost: int = DEFAULT_COST) -> bytes:
    """A hash no password is known for, of the given cost: unknown users are checked against it."""
    return bcrypt.hashpw(b"no user has this password", bcrypt.gensalt(cost))


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed hash: no password matches it
        return False


def check_password(known: dict[str, str], username: str, password: str) -> bool:
    """True when ``password`` is ``username``'s. Takes one bcrypt check whether or not the user exists (unknown
    names are checked against a dummy hash of the known hashes' cost), so its time tells nothing about names."""
    secret = password.encode()
    if len(secret) > MAX_PASSWORD_BYTES:  # bcrypt refuses them, for every name alike
        return False
    dummy = dummy_hash(max((c for c in map(_cost, known.values()) if c is not None), default=DEFAULT_COST))
    hashed = known.get(username)
    if hashed and _cost(hashed) is not None and _checkpw(secret, hashed.encode()):
        return bool(password)
    if not hashed or _cost(hashed) is None:
        _checkpw(secret, dummy)  # the same work as a known user's check
    return False


# --- sign-in throttle -----------------------------------------------------------------------------------------


class LoginThrottle:
    """Failed sign-ins per user name and per client; thread-safe (one instance serves every session of the
    process). After ``max_failures`` failures within ``window_s`` for a name, or from a client, attempts for that
    name or from that client are refused for ``lockout_s``. A success resets the name's count (not the client's:
    one good account must not clear a client that guesses at others). ``clock`` is injected for tests.

    An attempt is ``begin``, then ``failed`` or ``succeeded``: attempts still being checked count toward the limit,
    so parallel sessions cannot get more guesses in than one session can."""

    def __init__(self, max_failures: int = 5, window_s: float = 900.0, lockout_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000):
        if max_failures < 1 or window_s <= 0 or lockout_s <= 0:
            raise ValueError("the sign-in throttle needs max_failures >= 1 and a positive window and lockout")
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self._clock, self._max_keys = clock, max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(user: str, client: str | None) -> list[tuple[str, str]]:
        return [("user", user)] + ([("client", client)] if client else [])

    def _wait(self, keys: list[tuple[str, str]], now: float) -> float:
        return max([self._locked_until.get(k, now) - now for k in keys] + [0.0])

    def _recent(self, key: tuple[str, str], now: float) -> int:
        recent = self._failures.get(key)
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        return len(recent or ())

    def wait_s(self, user: str, client: str | None) -> float:
        """Seconds before a sign-in for ``user`` from ``client`` may be tried again; 0: it may be tried now."""
        with self._lock:
            return self._wait(self._keys(user, client), self._clock())

    def begin(self, user: str, client: str | None) -> float:
        """Start an attempt: 0 when it may go ahead (then call ``failed`` or ``succeeded``), else the seconds to
        wait (nothing to call). Attempts in progress count as failures until they are decided."""
        with self._lock:
            now, keys = self._clock(), self._keys(user, client)
            wait = self._wait(keys, now)
            if wait:
                return wait
            if any(self._recent(k, now) + self._pending.get(k, 0) >= self.max_failures for k in keys):
                return 1.0  # the last allowed attempts are still being checked
            for key in keys:
                self._pending[key] = self._pending.get(key, 0) + 1
            return 0.0

    def _release(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            left = self._pending.pop(key, 0) - 1
            if left > 0:
                self._pending[key] = left

    def failed(self, user: str, client: str | None) -> float:
        """Count a failed sign-in; returns the wait it caused (0: none)."""
        with self._lock:
            now, keys = self._clock(), self._keys(user, client)
            self._release(keys)
            self._prune(now)
            for key in keys:
                self._recent(key, now)
                recent = self._failures.setdefault(key, deque())
                recent.append(now)
                if len(recent) >= self.max_failures:
                    self._locked_until[key] = now + self.lockout_s
                    del self._failures[key]  # after the back-off, a fresh count
            return self._wait(keys, now)

    def succeeded(self, user: str, client: str | None = None) -> None:
        with self._lock:
            self._release(self._keys(user, client))
            self._failures.pop(("user", user), None)

    def _prune(self, now: float) -> None:
        """Forget what no longer counts, so guessing at many names cannot grow the state without bound."""
        if len(self._failures) + len(self._locked_until) < self._max_keys:
            return
        self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}
        self._failures = {k: q for k, q in self._failures.items() if q and q[-1] > now - self.window_s}
        while len(self._failures) >= self._max_keys:  # still full: drop the oldest counts first
            del self._failures[min(self._failures, key=lambda k: self._failures[k][-1])]


def throttle_message(wait_s: float) -> str:
    minutes = max(1, math.ceil(round(wait_s, 3) / 60))  # (t + 900) - t can be 900.000...07
    return f"too many failed sign-ins, try again in {minutes} minute{'' if minutes == 1 else 's'}"


def client_key(ip_address: str | None, headers: Mapping[str, str] | None) -> str:
    """Who is signing in, for the throttle. Streamlit gives the peer's address except for a loopback peer
    (``st.context.ip_address`` is None): that is a local browser or a reverse proxy on this host, whose
    ``X-Forwarded-For`` last hop is the address it saw; with no such header every local client is one."""
    if ip_address:
        return ip_address
    forwarded = (headers or {}).get("X-Forwarded-For", "") or ""
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    return f"forwarded:{hops[-1]}" if hops else "local"


def throttle_settings() -> dict:
    from pipeline import config

    config.load_profile()
    cfg = config.dashboard()
    return {"max_failures": cfg.login_max_failures, "window_s": cfg.login_window_minutes * 60,
            "lockout_s": cfg.login_lockout_minutes * 60}


# --- purchase links -------------------------------------------------------------------------------------------


def _env_secret(name: str, required: bool) -> str:
    value = os.environ.get(name, "")
    if not value:
        if required:
            raise LinksNotConfigured(f"purchase links are not configured: set {name}")
        return ""
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise LinksNotConfigured(f"purchase links are not configured: {name} must be at least "
                                 f"{MIN_SECRET_BYTES} bytes")
    return value


def link_secrets(secret: str | None = None, previous: str | None = None) -> list[str]:
    """The keys links are checked with, oldest first; the last one signs. Without ``secret``, both come from
    ``$ECOM_DASHBOARD_SECRET`` and ``$ECOM_DASHBOARD_SECRET_PREVIOUS`` (each at least 32 bytes)."""
    if secret is None:
        secret = _env_secret(SECRET_ENV, required=True)
        if previous is None:
            previous = _env_secret(PREVIOUS_SECRET_ENV, required=False)
    if not secret:
        raise LinksNotConfigured(f"purchase links are not configured: set {SECRET_ENV}")
    return [previous, secret] if previous and previous != secret else [secret]


def _serializer(secret: str | None = None, previous: str | None = None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(link_secrets(secret, previous), salt=SALT)


def link_max_age_s() -> int:
    """How long a link is accepted after it was issued: ``[dashboard] link_max_age_hours``."""
    from pipeline import config

    config.load_profile()
    hours = config.dashboard().link_max_age_hours
    if not hours > 0:
        raise LinksNotConfigured("purchase links are not configured: [dashboard] link_max_age_hours must be "
                                 "more than 0")
    return max(1, round(hours * 3600))


def sign_customer(customer_id: int, secret: str | None = None) -> str:
    return _serializer(secret).dumps({"customer_id": int(customer_id)})


def read_token(token: str | None, max_age_s: int, secret: str | None = None, previous: str | None = None) -> int:
    """The customer id a link was issued for; ``InvalidLink`` when missing, tampered, signed with neither the
    current nor the previous secret, or older than max_age_s."""
    if not token:
        raise InvalidLink("this page needs the link your account page gave you")
    serializer = _serializer(secret, previous)
    try:
        payload = serializer.loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise InvalidLink("this link has expired: open your purchase history again from your account") from None
    except BadSignature:
        raise InvalidLink("this link is not valid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("customer_id"), int):
        raise InvalidLink("this link is not valid")
    return payload["customer_id"]


def purchases_url(customer_id: int, base_url: str, secret: str | None = None) -> str:
    return f"{base_url.rstrip('/')}/my_purchases?token={sign_customer(customer_id, secret)}"


def issue_link(customer_id: int, base_url: str, max_age_s: int, secret: str | None = None
               ) -> tuple[str, dt.datetime]:
    """A purchases link signed with the current secret and the UTC time it stops being accepted."""
    token = sign_customer(customer_id, secret)
    _, issued = _serializer(secret).loads(token, return_timestamp=True)
    return (f"{base_url.rstrip('/')}/my_purchases?token={token}",
            issued.astimezone(dt.UTC) + dt.timedelta(seconds=max_age_s))
