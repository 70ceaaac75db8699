"""An analyst's review of a flagged line: the status change is appended to ``ecommerce_mart.anomaly_status_log``
and the line's date of ``ecommerce_mart.anomalies`` is republished with its new status, under the warehouse lock.

Python only (Arrow, pandas and the metastore's Thrift API), no Spark session and no Luigi task: the command line
(``python -m pipeline anomaly LINE_ID STATUS --by NAME``) and the dashboard's Anomalies page answer within a second.
"""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd

from pipeline import clock
from pipeline.io import arrow_tables, crash, lock
from pipeline.schemas import mart
from pipeline.transforms import anomaly_status as lifecycle

ANOMALIES, STATUS_LOG = f"{mart.DB}.anomalies", f"{mart.DB}.anomaly_status_log"


class UnknownAnomaly(LookupError):
    """No flagged line has the given id."""


def set_status(line_id: str, status: str, changed_by: str, note: str = "",
               invoice_date: str | dt.date | None = None, lock_timeout_s: float | None = None) -> dict:
    """Record a lifecycle change of a flagged line (who, when, why) and republish its date's partition of
    ``ecommerce_mart.anomalies`` with the line's new status; no Spark session (``pipeline.io.arrow_tables``).

    Holds the warehouse lock, waiting for another writer up to ``lock_timeout_s`` (default ``[warehouse]
    lock_timeout_s``). ``invoice_date``, when the caller knows the line's date, spares searching every date's
    flags. A change already at the end of the line's log (recorded by a call that died before republishing the
    partition) is not recorded twice.
    """
    if not changed_by.strip():
        raise lifecycle.InvalidTransition("say who changes the status (--by)")
    with _one_review_at_a_time, lock.warehouse_lock(f"anomaly status {line_id} by {changed_by}", lock_timeout_s):
        return _set_status(line_id, status, changed_by, note, invoice_date)


# The warehouse lock is re-entrant within a process, whichever thread holds it; the dashboard reviews lines on
# the threads of its browser sessions, so its reviews also queue here.
_one_review_at_a_time = threading.Lock()


def _flagged_date(line_id: str) -> str | None:
    """The invoice date whose flags hold ``line_id`` (the line id column of every date is read)."""
    ids = arrow_tables.read(ANOMALIES, columns=["line_id", "invoice_date"])
    found = ids.loc[ids["line_id"] == line_id, "invoice_date"]
    return str(found.iloc[0]) if len(found) else None


def _set_status(line_id: str, status: str, changed_by: str, note: str, invoice_date) -> dict:
    day = str(invoice_date) if invoice_date is not None else _flagged_date(line_id)
    flags = arrow_tables.read(ANOMALIES, [day]) if day else pd.DataFrame(columns=["line_id"])
    line = flags[flags["line_id"] == line_id]
    if line.empty:
        raise UnknownAnomaly(f"no flagged line with id {line_id!r} in {ANOMALIES}" + (f" on {day}" if day else ""))
    current = line["status"].iloc[0]
    lifecycle.check_transition(current, status)
    status_log = arrow_tables.read(STATUS_LOG)
    now = clock.now()
    last = lifecycle.latest_changes(status_log[status_log["line_id"] == line_id])
    if len(last) and (last["status"][0], last["changed_by"][0], last["note"][0]) == (status, changed_by, note):
        now = last["changed_at"][0]
    else:
        arrow_tables.append(pd.DataFrame([{"line_id": line_id, "invoice_date": line["invoice_date"].iloc[0],
                                           "status": status, "changed_by": changed_by, "changed_at": now,
                                           "note": note}]), STATUS_LOG)
        crash.point("anomaly.log_published")
        status_log = arrow_tables.read(STATUS_LOG)
    arrow_tables.replace_partition(lifecycle.apply_status(flags, status_log), ANOMALIES, day)
    return {"line_id": line_id, "invoice_date": day, "from": current, "to": status, "by": changed_by,
            "at": f"{now:%Y-%m-%d %H:%M:%S}"}


def describe_change(change: dict) -> str:
    """What a status change did, in one line (the command line prints it, the dashboard shows it)."""
    return (f"anomaly {change['line_id']} ({change['invoice_date']}): {change['from']} -> {change['to']} "
            f"by {change['by']} at {change['at']} UTC")
