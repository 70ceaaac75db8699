"""Pipeline and SLA: each day's SLA state, the task runs of each scheduled run, data-quality results over
dates and severities, republications and batch accounting."""

import datetime as dt

import streamlit as st

from dashboard import charts, data, metrics, widgets
from pipeline import config
from pipeline.schemas.mart import DQ_SEVERITIES
from pipeline.transforms import sla as sla_rules


def render() -> None:
    st.title("Pipeline and SLA")
    config.load_profile()
    url = config.scheduler_ui().url
    st.markdown(f"Luigi visualizer: [{url}]({url}) (Prometheus metrics: {url.rstrip('/')}/metrics)")
    for part in (_sla, _sla_changes, _runs, _quality, _revisions, _batches):
        widgets.section(part)


def _section(title: str, frame, empty: str, chart=None, csv: str | None = None) -> bool:
    """A titled table (with its chart above it), or ``empty`` when there are no rows; whether rows were shown."""
    st.subheader(title)
    if frame.empty:
        st.info(empty)
        return False
    if chart:
        st.plotly_chart(chart(frame), width="stretch")
    widgets.table(frame, csv=csv)
    return True


def _sla() -> None:
    status = data.sla_status().sort_values("invoice_date", ascending=False)
    if _section("SLA", status, "The SLA monitor has not run yet: `python -m pipeline sla`.", charts.sla_strip,
                "sla_status.csv"):
        st.caption("Ready at: when the day's marts were first ready (the SLA is judged on it); republished at and "
                   "republications: later publications after late lines or an invalidation.")


def _sla_changes() -> None:
    _section("SLA state changes", data.sla_history(), "No SLA state recorded yet.")


def _runs() -> None:
    st.subheader("Task runs")
    events = data.task_history(dt.datetime.now() - dt.timedelta(days=30))
    dated = events[events["task_date"].notna()]  # the pipeline's tasks, not the SLA monitor's evaluations
    runs = metrics.scheduled_runs(sla_rules.task_runs(dated))
    if runs.empty:
        st.info("No dated task has run in the last 30 days.")
        return
    summary = metrics.run_summary(runs)
    by_run = summary.set_index("run")
    # the newest run that built a day (more than one task), not an ad-hoc single task
    full = summary.index[summary["tasks"] > 1]

    def label(run: str) -> str:
        row = by_run.loc[run]
        return f"{run} UTC: {row['tasks']} tasks, {row['failed']} failed ({row['dates'] or 'undated'})"

    chosen = st.selectbox("Scheduled run", summary["run"].tolist(), index=int(full[0]) if len(full) else 0,
                          format_func=label, key="pipeline_run")
    this = runs[runs["run"] == chosen]
    st.plotly_chart(charts.run_timeline(this), width="stretch")
    tries = this.assign(failed=this["outcome"] == "FAILED").groupby("task_row_id").agg(
        task=("task_family", "first"), runs=("outcome", "size"), failed=("failed", "sum"))
    retried = tries[(tries["runs"] > 1) | (tries["failed"] > 0)]
    if not retried.empty:
        st.write("Failures and retries in this run")
        widgets.table(retried)
    with st.expander("Every scheduled run of the last 30 days"):
        widgets.table(summary, csv="scheduled_runs.csv")


def _quality() -> None:
    st.subheader("Data-quality results")
    bounds = data.dq_bounds()
    if bounds is None:
        st.info("No data-quality checks have run yet.")
        return
    first, last = bounds
    left, right = st.columns([2, 1])
    picked = left.date_input("Check dates", value=(max(first, last - dt.timedelta(days=13)), last),
                             min_value=first, max_value=last, key="dq_dates")
    severities = right.multiselect("Severity", list(DQ_SEVERITIES), default=list(DQ_SEVERITIES),
                                   key="dq_severity")
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.info("Pick a start and an end date.")
        return
    results = data.dq_results(*picked, severities)
    if results.empty:
        st.info("No results for these dates and severities.")
        return
    st.plotly_chart(charts.dq_failures(metrics.dq_failures_per_day(results), *picked), width="stretch")
    latest = metrics.latest_dq_runs(results)
    if st.toggle("Failed checks only", key="dq_failed_only"):
        latest = latest[latest["status"] == "FAIL"]
    st.caption("Each date's latest run; earlier runs are in the download.")
    widgets.table(latest)
    widgets.csv_button(results, f"dq_results_{picked[0]}_{picked[1]}.csv", "Download every run (CSV)")


def _revisions() -> None:
    _section("Republished days", data.mart_revisions(),
             "No day has been republished: every day's marts are as first published.")


def _batches() -> None:
    _section("Batch accounting (latest batches)", data.batch_accounting(), "No batch loaded yet.",
             charts.batch_accounting, "batch_accounting.csv")


if __name__ == "__main__":
    render()
