"""Geography: net revenue by country on a map, a ranked table, and the UK against the rest of the world."""

import streamlit as st

from dashboard import charts, data, metrics, widgets


def render() -> None:
    st.title("Geography")
    picked = widgets.date_range("geography_dates")
    if picked is None:
        return
    by_country = data.sales_by_country(*picked)
    if by_country.empty:
        st.info("No sales published in this range.")
        return
    left, right = st.columns([3, 1])
    left.plotly_chart(charts.country_choropleth(by_country), width="stretch", config=charts.MAP_CONFIG)
    right.plotly_chart(charts.uk_split(by_country), width="stretch")
    share = metrics.uk_share(by_country)
    right.metric("UK share of net revenue", "n/a" if share is None else f"{share:.1%}")
    ranked = by_country.sort_values("net_revenue", ascending=False, ignore_index=True)
    widgets.table(ranked[["country_name", "country_code", "iso3", "net_revenue", "orders", "units"]],
                  csv=f"net_revenue_by_country_{picked[0]}_{picked[1]}.csv")


if __name__ == "__main__":
    render()
