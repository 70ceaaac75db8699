"""Overview: KPI cards for a date range and countries, with the change against the previous period."""

import streamlit as st

from dashboard import charts, data, metrics, widgets

FORMATS = {
    "net_revenue": ("Net revenue", lambda v: f"£{v:,.0f}"),
    "orders": ("Orders", lambda v: f"{v:,}"),
    "avg_order_value": ("Average order value", lambda v: f"£{v:,.2f}"),
    "customers": ("Customers", lambda v: f"{v:,}"),
    "units": ("Units", lambda v: f"{v:,}"),
    "returns_rate": ("Returns rate", lambda v: f"{v:.1%}"),
}


def _delta(key, change):
    if change is None:
        return None
    return f"{change * 100:+.1f} pp" if key == "returns_rate" else f"{change:+.1%}"


def render() -> None:
    st.title("Overview")
    picked = widgets.date_range("overview_dates")
    if picked is None:
        return
    start, end = picked
    chosen = st.sidebar.multiselect("Countries", data.countries(), key="overview_countries")
    prev_start, prev_end = metrics.previous_period(start, end)
    both = data.daily_sales(prev_start, end)
    current = both[both["invoice_date"] >= start]
    previous = both[both["invoice_date"] <= prev_end]
    codes = None
    if chosen:
        current = current[current["country_name"].isin(chosen)]
        previous = previous[previous["country_name"].isin(chosen)]
        codes = sorted(set(current["country_code"]) | set(previous["country_code"])) or ["-"]
    customers_now, customers_before = data.distinct_customers([(start, end), (prev_start, prev_end)], codes)
    now_kpis, before = metrics.kpis(current, customers_now), metrics.kpis(previous, customers_before)
    if current.empty:
        st.info(f"No sales published between {start} and {end}.")
        return
    change = metrics.changes(now_kpis, before)
    st.caption(f"{start} to {end}, against {prev_start} to {prev_end}"
               + (f"; countries: {', '.join(chosen)}" if chosen else "; all countries"))
    for col, key in zip(st.columns(len(FORMATS)), FORMATS, strict=True):
        label, fmt = FORMATS[key]
        value = now_kpis[key]
        col.metric(label, "n/a" if value is None else fmt(value), _delta(key, change[key]),
                   delta_color="inverse" if key == "returns_rate" else "normal")
    st.plotly_chart(charts.revenue_trend(metrics.revenue_by_day(current)), width="stretch")


if __name__ == "__main__":
    render()
