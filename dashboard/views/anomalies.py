"""Anomalies: flagged lines with their baseline and score; analysts move them through their lifecycle."""

import subprocess
import sys

import streamlit as st

from dashboard import data
from pipeline import config

NEXT = {"NEW": ["ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE"], "ACKNOWLEDGED": ["RESOLVED", "FALSE_POSITIVE"]}


def change_status(line_id: str, status: str, by: str, note: str) -> tuple[bool, str]:
    """Through the same command analysts use (``python -m pipeline anomaly``), so who and when are recorded."""
    proc = subprocess.run([sys.executable, "-m", "pipeline", "anomaly", line_id, status, "--by", by, "--note", note],
                          cwd=config.PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    return proc.returncode == 0, (proc.stdout if proc.returncode == 0 else proc.stderr).strip().splitlines()[-1:]


def render() -> None:
    st.title("Anomalies")
    statuses = st.sidebar.multiselect("Status", data.ANOMALY_STATUSES, default=["NEW", "ACKNOWLEDGED"],
                                      key="anomaly_status")
    flagged = data.anomalies(statuses)
    if flagged.empty:
        st.info("No flagged lines in these statuses.")
        return
    st.dataframe(flagged, width="stretch", hide_index=True)
    open_lines = flagged[flagged["status"].isin(list(NEXT))]
    if open_lines.empty:
        return
    st.subheader("Review a line")
    with st.form("review"):
        line_id = st.selectbox("Line", open_lines["line_id"].unique().tolist(), key="review_line")
        current = open_lines.loc[open_lines["line_id"] == line_id, "status"].iloc[0]
        status = st.selectbox("New status", NEXT[current], key="review_status")
        note = st.text_input("Note", key="review_note")
        submitted = st.form_submit_button("Record")
    if submitted:
        ok, message = change_status(line_id, status, auth_user(), note)
        (st.success if ok else st.error)(" ".join(message) or "done")
        if ok:
            data.query.clear()


def auth_user() -> str:
    return st.session_state.get("user", "")


if __name__ == "__main__":
    render()
