"""Which alerts to send and how to batch them (pure; delivery is ``pipeline.io.alerts``).

An alert has a ``dedupe_key`` naming the thing it is about (``sla:all_marts:2010-12-05``) and a
``condition`` (``AT_RISK``). It is sent on a channel unless the latest alert successfully sent there with
the same key had the same condition and was raised less than ``renotify`` ago (by the clock of the run that
raised it, so a replayed clock dedupes as the real one would); an alert with ``repeat`` false is never sent
again for an unchanged condition. An alert that ``resolves`` conditions (a recovery) is sent only when the
latest alert sent with its key had one of them. Alerts due at once go out as one message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

SEVERITY_ORDER = {"error": 0, "warn": 1, "info": 2}


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str
    subject: str
    body: str
    dedupe_key: str
    condition: str
    repeat: bool = True
    resolves: tuple[str, ...] = ()


def due(candidates: list[Alert], sent: pd.DataFrame, channel: str, now: dt.datetime,
        renotify: dt.timedelta) -> list[Alert]:
    """The candidates to send on ``channel``. ``sent``: earlier alerts (channel, dedupe_key, condition,
    delivery_status, alerted_at); only ``SENT`` ones count, so a failed delivery is tried again."""
    ok = sent[(sent["channel"] == channel) & (sent["delivery_status"] == "SENT")]
    latest = ok.sort_values("alerted_at").groupby("dedupe_key").tail(1).set_index("dedupe_key")
    out, seen = [], set()
    for alert in candidates:
        if alert.dedupe_key in seen:
            continue
        seen.add(alert.dedupe_key)
        last = latest.loc[alert.dedupe_key] if alert.dedupe_key in latest.index else None
        if alert.resolves and (last is None or last["condition"] not in alert.resolves):
            continue
        if last is not None and last["condition"] == alert.condition and (
                not alert.repeat or now - last["alerted_at"] < renotify):
            continue
        out.append(alert)
    return out


def compose(alerts: list[Alert], prefix: str = "[ecommerce-dw]") -> tuple[str, str]:
    """One message for several alerts: (subject, plain-text body), most severe first."""
    ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.dedupe_key))
    if len(ordered) == 1:
        subject = f"{prefix} {ordered[0].severity.upper()}: {ordered[0].subject}"
    else:
        counts = ", ".join(f"{sum(a.severity == s for a in ordered)} {s}" for s in SEVERITY_ORDER
                           if any(a.severity == s for a in ordered))
        subject = f"{prefix} {len(ordered)} alerts ({counts}): {ordered[0].subject}"
    body = "\n\n".join(f"{a.severity.upper()} {a.subject}\n{a.body}" for a in ordered)
    return subject, body


def webhook_payload(subject: str, body: str) -> dict:
    """A Slack-compatible incoming-webhook payload."""
    return {"text": f"*{subject}*\n{body}"}
