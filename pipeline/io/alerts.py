"""Alert delivery: e-mail over SMTP and a JSON webhook, recorded in ``ecommerce_mart.alerts`` (read and rewritten
without Spark, through ``pipeline.io.arrow_tables``).

SMTP settings are Luigi's own ``[smtp]`` section (host, port, ssl, no_tls, username, timeout), so Luigi's
failure e-mails and these alerts use one server; the password comes only from ``$ECOM_SMTP_PASSWORD``
(see ``config.load_profile``) and the webhook URL, which carries a token, only from
``$ECOM_ALERT_WEBHOOK_URL``. Recipients default to ``[email] receiver``.

A delivery is retried ``[alerts] retries`` times; a failure is recorded and logged, never raised: alerting
must not fail the pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import time
import urllib.request
import uuid
from email.message import EmailMessage

import luigi
import luigi.notifications
import pandas as pd

from pipeline import clock, config, schemas
from pipeline.io import arrow_tables, crash
from pipeline.io import warehouse as wh
from pipeline.transforms.alerting import Alert, compose, due, webhook_payload

log = logging.getLogger(__name__)

MART = "ecommerce_mart"
TABLE = f"{MART}.alerts"
COLUMNS = schemas.column_names(TABLE)


def send_email(subject: str, body: str, recipients: list[str], timeout_s: float) -> None:
    cfg, sender = luigi.notifications.smtp(), luigi.notifications.email().sender
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(recipients), subject
    msg.set_content(body)
    kwargs = {"host": cfg.host, "port": cfg.port, "timeout": cfg.timeout or timeout_s}
    with (smtplib.SMTP_SSL(**kwargs) if cfg.ssl else smtplib.SMTP(**kwargs)) as conn:
        conn.ehlo_or_helo_if_needed()
        if not cfg.ssl and conn.has_extn("starttls") and not cfg.no_tls:
            conn.starttls()
        if cfg.username and cfg.password:
            conn.login(cfg.username, cfg.password)
        conn.send_message(msg)


def post_webhook(url: str, payload: dict, timeout_s: float) -> None:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        if resp.status >= 300:
            raise OSError(f"webhook answered HTTP {resp.status}")


def _deliver(send, subject: str, body: str, retries: int, delay_s: float) -> tuple[int, str]:
    """Try ``send(subject, body)`` up to ``retries`` times: (attempts, error or '')."""
    error = ""
    for attempt in range(1, max(retries, 1) + 1):
        try:
            send(subject, body)
            return attempt, ""
        except Exception as exc:  # noqa: BLE001  (any delivery failure is recorded, none is raised)
            error = f"{type(exc).__name__}: {exc}"
            log.warning("alert delivery attempt %d/%d failed: %s", attempt, retries, error)
            if attempt < retries:
                time.sleep(delay_s)
    return retries, error


def channels(cfg: config.alerts) -> dict:
    """The configured channels: name -> send(subject, body)."""
    out = {}
    if cfg.recipients:
        out["email"] = lambda s, b: send_email(s, b, cfg.recipients, cfg.timeout_s)
    if cfg.webhook_url:
        out["webhook"] = lambda s, b: post_webhook(cfg.webhook_url, webhook_payload(s, b), cfg.timeout_s)
    return out


def notify(spark, candidates: list[Alert], now: dt.datetime | None = None) -> list[dict]:
    """Send the candidates that are due, batched per channel, and record them in ``ecommerce_mart.alerts``;
    never raises. No Spark session is needed (``pipeline.io.arrow_tables``): ``spark``, when the caller has one,
    only creates the marts' tables on a warehouse that has none yet."""
    try:
        return _notify(spark, candidates, now or clock.now())
    except Exception:  # noqa: BLE001
        log.exception("alerting failed; the pipeline goes on")
        return []


def _notify(spark, candidates: list[Alert], now: dt.datetime) -> list[dict]:
    if not candidates:
        return []
    cfg = config.alerts()
    configured = channels(cfg)
    if not configured:
        log.warning("%d alerts but no alert channel is configured ([alerts]/[email] receiver, $%s): %s",
                    len(candidates), config.ALERT_WEBHOOK_ENV, "; ".join(a.subject for a in candidates))
        return []
    if spark is not None and arrow_tables.missing([TABLE]):
        wh.ensure_schema(spark, MART)
    sent = arrow_tables.read(TABLE, columns=["channel", "dedupe_key", "alert_condition", "delivery_status",
                                             "created_at"]) \
        .rename(columns={"alert_condition": "condition", "created_at": "alerted_at"})
    records = []
    for name, send in configured.items():
        batch = due(candidates, sent, name, now, dt.timedelta(minutes=cfg.renotify_minutes))
        if not batch:
            continue
        subject, body = compose(batch, cfg.subject_prefix)
        attempts, error = _deliver(send, subject, body, cfg.retries, cfg.retry_delay_s)
        batch_id = uuid.uuid4().hex[:12]
        sent_at = clock.now()
        for a in batch:
            records.append({"alert_id": uuid.uuid4().hex[:16], "batch_id": batch_id, "kind": a.kind,
                            "severity": a.severity, "subject": a.subject, "body": a.body, "channel": name,
                            "dedupe_key": a.dedupe_key, "alert_condition": a.condition, "created_at": now,
                            "sent_at": sent_at, "delivery_status": "FAILED" if error else "SENT",
                            "attempts": attempts, "error": error})
        log.info("alert batch %s on %s: %d alerts, %s", batch_id, name, len(batch), error or "sent")
        crash.point("alerts.delivered")
    if records:
        arrow_tables.append(pd.DataFrame(records, columns=COLUMNS), TABLE)
    return records
