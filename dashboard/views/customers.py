"""Customers: cohort retention, RFM segments and new against returning customers."""

import streamlit as st

from dashboard import charts, data, metrics


def render() -> None:
    st.title("Customers")
    as_of = data.latest_as_of("mart_cohort_retention")
    if as_of is None:
        st.info("No customer marts are published yet: run the pipeline first (`make run`).")
        return
    cohorts, segments = data.cohort_retention(as_of), data.rfm_segments(as_of)
    monthly = metrics.new_vs_returning(cohorts)
    st.caption(f"As of {as_of}")
    st.plotly_chart(charts.cohort_heatmap(cohorts), width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(charts.rfm_segments(segments), width="stretch")
    right.plotly_chart(charts.new_vs_returning(monthly), width="stretch")


if __name__ == "__main__":
    render()
