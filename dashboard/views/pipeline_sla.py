"""Pipeline and SLA: each day's SLA state, the latest day's task runs, batch accounting, data-quality results."""

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import charts, data, widgets
from pipeline import config
from pipeline.transforms import sla as sla_rules


def render() -> None:
    st.title("Pipeline and SLA")
    config.load_profile()
    ui = config.scheduler_ui()
    st.markdown(f"Luigi visualizer: [http://{ui.host}:{ui.port}/](http://{ui.host}:{ui.port}/)")
    st.caption(f"luigid's Prometheus metrics: http://{ui.host}:{ui.port}/metrics")
    for part in (_sla, _sla_changes, _revisions, _runs, _batches):
        widgets.section(part)


def _sla() -> None:
    _chart_and_table("SLA", data.sla_status, "The SLA monitor has not run yet: `python -m pipeline sla`.",
                     charts.sla_strip, lambda status: status.sort_values("invoice_date", ascending=False))
    st.caption("ready_at: when the day's marts were first ready (the SLA is judged on it); republished_at and "
               "revisions: later publications after late lines or an invalidation.")


def _sla_changes() -> None:
    _table("SLA state changes", data.sla_history, "No SLA state recorded yet.")


def _revisions() -> None:
    _table("Republished days", data.mart_revisions,
           "No day has been republished: every day's marts are as first published.")


def _table(title: str, load, empty: str) -> None:
    st.subheader(title)
    frame = load()
    if frame.empty:
        st.info(empty)
        return
    st.dataframe(frame, width="stretch", hide_index=True)


def _runs() -> None:
    st.subheader("Task runs of the latest day")
    events = data.task_history(dt.datetime.now() - dt.timedelta(days=30))
    dated = events[events["task_date"].notna()]
    if dated.empty:
        st.info("No dated task has run yet.")
        return
    day = dated["task_date"].max()
    runs = sla_rules.task_runs(dated[dated["task_date"] == day])
    st.caption(f"Tasks of {day}: {len(runs)} runs, {int((runs['outcome'] == 'FAILED').sum())} failed")
    st.plotly_chart(charts.run_timeline(runs), width="stretch")
    tries = runs.assign(failed=runs["outcome"] == "FAILED").groupby("task_row_id").agg(
        task=("task_family", "first"), runs=("outcome", "size"), failed=("failed", "sum"))
    retried = tries[(tries["runs"] > 1) | (tries["failed"] > 0)]
    if not retried.empty:
        st.write("Failures and retries")
        st.dataframe(retried, width="stretch", hide_index=True)
    st.subheader(f"Data-quality results of {day}")
    widgets.section(lambda: st.dataframe(data.dq_results(pd.Timestamp(day).date()), width="stretch",
                                         hide_index=True))


def _batches() -> None:
    _chart_and_table("Batch accounting (latest batches)", data.batch_accounting, "No batch loaded yet.",
                     charts.batch_accounting)


def _chart_and_table(title: str, load, empty: str, chart, order=lambda df: df) -> None:
    st.subheader(title)
    frame = load()
    if frame.empty:
        st.info(empty)
        return
    st.plotly_chart(chart(frame), width="stretch")
    st.dataframe(order(frame), width="stretch", hide_index=True)


if __name__ == "__main__":
    render()
