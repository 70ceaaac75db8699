"""Who may see what: analysts log in with a bcrypt-hashed password; a shopper opens a signed, expiring link.

Users: ``[dashboard] users`` (JSON ``{"name": "<bcrypt hash>"}``) or ``$ECOM_DASHBOARD_USERS`` (same JSON,
takes precedence). The link secret comes only from ``$ECOM_DASHBOARD_SECRET``. No crypto here: bcrypt checks
passwords, itsdangerous signs and dates the links.
"""

from __future__ import annotations

import json
import os

import bcrypt
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

USERS_ENV, SECRET_ENV = "ECOM_DASHBOARD_USERS", "ECOM_DASHBOARD_SECRET"
SALT = "my-purchases"


class InvalidLink(ValueError):
    """A purchases link that is missing, tampered with or expired."""


def users() -> dict[str, str]:
    import luigi.configuration

    from pipeline import config

    config.load_profile()
    raw = os.environ.get(USERS_ENV) or luigi.configuration.get_config().get("dashboard", "users", "{}")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def check_password(known: dict[str, str], username: str, password: str) -> bool:
    hashed = known.get(username)
    if not hashed or not password:
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def _serializer(secret: str | None = None) -> URLSafeTimedSerializer:
    secret = secret or os.environ.get(SECRET_ENV, "")
    if not secret:
        raise InvalidLink(f"purchase links are not configured (set ${SECRET_ENV})")
    return URLSafeTimedSerializer(secret, salt=SALT)


def sign_customer(customer_id: int, secret: str | None = None) -> str:
    return _serializer(secret).dumps({"customer_id": int(customer_id)})


def read_token(token: str | None, max_age_s: int, secret: str | None = None) -> int:
    """The customer id a link was issued for; ``InvalidLink`` when missing, tampered or older than max_age_s."""
    if not token:
        raise InvalidLink("this page needs the link your account page gave you")
    try:
        payload = _serializer(secret).loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise InvalidLink("this link has expired: open your purchase history again from your account") from None
    except BadSignature:
        raise InvalidLink("this link is not valid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("customer_id"), int):
        raise InvalidLink("this link is not valid")
    return payload["customer_id"]


def purchases_url(customer_id: int, base_url: str, secret: str | None = None) -> str:
    return f"{base_url.rstrip('/')}/my_purchases?token={sign_customer(customer_id, secret)}"
