"""The anomaly lifecycle on pandas rows (pure, no Spark): ``NEW -> ACKNOWLEDGED -> RESOLVED``, or
``FALSE_POSITIVE``. A line's status is its latest change in ``ecommerce_mart.anomaly_status_log``; the review
(``pipeline.io.anomaly_review``), the dashboard and Spark (``transforms.anomalies.with_status``) use these
functions as they are.
"""

from __future__ import annotations

import pandas as pd

STATUSES = ("NEW", "ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE")
INITIAL_STATUS = "NEW"
STATUS_COLUMNS = ("status", "status_changed_by", "status_changed_at")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "NEW": ("ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE"),
    "ACKNOWLEDGED": ("RESOLVED", "FALSE_POSITIVE"),
    "RESOLVED": (),
    "FALSE_POSITIVE": (),
}


class InvalidTransition(ValueError):
    """An anomaly status change the lifecycle does not allow."""


def check_transition(current: str, new: str) -> None:
    """``NEW -> ACKNOWLEDGED -> RESOLVED``; ``NEW`` or ``ACKNOWLEDGED`` may also become ``FALSE_POSITIVE``."""
    if new not in STATUSES:
        raise InvalidTransition(f"unknown status {new!r}: use one of {', '.join(STATUSES)}")
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final)"
        raise InvalidTransition(f"an anomaly in status {current} cannot become {new}; allowed: {allowed}")


def latest_changes(status_log: pd.DataFrame) -> pd.DataFrame:
    """The lifecycle rule: a line's status is its latest change in ``status_log`` (by ``changed_at``; on a tie
    the later one in the log). The log rows that say so, one per line that has changes."""
    return status_log.sort_values("changed_at", kind="stable").drop_duplicates("line_id", keep="last") \
        .reset_index(drop=True)


def statuses(status_log: pd.DataFrame) -> pd.DataFrame:
    """The current status of every line with changes: ``line_id, status, status_changed_by, status_changed_at``."""
    latest = latest_changes(status_log)
    return pd.DataFrame({
        "line_id": latest["line_id"].astype(object), "status": latest["status"].astype(object),
        "status_changed_by": latest["changed_by"].astype(object),
        "status_changed_at": pd.to_datetime(latest["changed_at"])})


def apply_status(flags: pd.DataFrame, status_log: pd.DataFrame) -> pd.DataFrame:
    """Flagged lines with their lifecycle status: the line's latest change (``latest_changes``), or ``NEW``, by
    no one, when nobody has changed it. Status columns already in ``flags`` are replaced."""
    base = flags.drop(columns=[c for c in STATUS_COLUMNS if c in flags.columns])
    out = base.merge(statuses(status_log), on="line_id", how="left")
    out["status"] = out["status"].fillna(INITIAL_STATUS)
    return out
