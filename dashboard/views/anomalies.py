"""Anomalies: flagged lines with their baseline and score; analysts move them through their lifecycle."""

import logging

import streamlit as st

from dashboard import data, widgets
from pipeline import config
from pipeline.io import anomaly_review
from pipeline.io.lock import WarehouseLockTimeout
from pipeline.io.metastore_client import MetastoreUnavailable, TableMissing
from pipeline.transforms.anomaly_status import TRANSITIONS, InvalidTransition

log = logging.getLogger(__name__)

NEXT = {status: list(allowed) for status, allowed in TRANSITIONS.items() if allowed}
LOCK_WAIT_S = 30.0  # a review waits this long for a pipeline run holding the warehouse lock, then says so


def change_status(line_id: str, status: str, by: str, note: str, invoice_date=None) -> tuple[bool, str]:
    """Record the change in this process, as ``python -m pipeline anomaly`` does (who and when, under the
    warehouse lock): (done, what happened or why not, as one plain sentence)."""
    config.load_profile()
    try:
        change = anomaly_review.set_status(line_id, status, by, note, invoice_date=invoice_date,
                                           lock_timeout_s=LOCK_WAIT_S)
    except (InvalidTransition, anomaly_review.UnknownAnomaly, TableMissing, MetastoreUnavailable,
            WarehouseLockTimeout) as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001  (the page shows a sentence, never a stack trace)
        log.exception("status change of anomaly %s to %s by %s failed", line_id, status, by)
        return False, (f"The change was not recorded: {type(exc).__name__}. Details are in the dashboard's log; "
                       "try again, or use `python -m pipeline anomaly`.")
    return True, anomaly_review.describe_change(change)


def render() -> None:
    st.title("Anomalies")
    statuses = st.sidebar.multiselect("Status", data.ANOMALY_STATUSES, default=["NEW", "ACKNOWLEDGED"],
                                      key="anomaly_status")
    flagged = data.anomalies(statuses)
    if flagged.empty:
        st.info("No flagged lines in these statuses.")
        return
    widgets.table(flagged, csv="anomalies.csv")
    open_lines = flagged[flagged["status"].isin(list(NEXT))]
    if open_lines.empty:
        return
    st.subheader("Review a line")
    with st.form("review"):
        line_id = st.selectbox("Line", open_lines["line_id"].unique().tolist(), key="review_line")
        chosen = open_lines.loc[open_lines["line_id"] == line_id].iloc[0]
        status = st.selectbox("New status", NEXT[chosen["status"]], key="review_status")
        note = st.text_input("Note", key="review_note")
        submitted = st.form_submit_button("Record")
    if submitted:
        with st.spinner("Recording..."):
            ok, message = change_status(line_id, status, auth_user(), note, chosen["invoice_date"])
        (st.success if ok else st.error)(message)
        if ok:
            data.query.clear()


def auth_user() -> str:
    return st.session_state.get("user", "")


if __name__ == "__main__":
    render()
