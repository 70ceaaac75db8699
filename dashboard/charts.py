"""Chart builders: pure functions from DataFrames to Plotly figures."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

# Plotly's config for maps: the world topojson the app serves (dashboard/static/, Streamlit's static serving),
# relative to the page, instead of Plotly's CDN, which a browser without internet access cannot reach
MAP_CONFIG = {"topojsonURL": "app/static/topojson/"}


def revenue_trend(by_day: pd.DataFrame) -> go.Figure:
    """Daily net revenue with gross revenue for reference (``metrics.revenue_by_day``)."""
    fig = go.Figure()
    fig.add_scatter(x=by_day["invoice_date"], y=by_day["net_revenue"], name="net revenue (GBP)", mode="lines+markers")
    fig.add_scatter(x=by_day["invoice_date"], y=by_day["gross_revenue"], name="gross revenue (GBP)",
                    mode="lines", line={"dash": "dot"})
    fig.update_layout(title="Daily revenue", xaxis_title="invoice date", yaxis_title="GBP", hovermode="x unified",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def country_choropleth(by_country: pd.DataFrame) -> go.Figure:
    """Net revenue by country on a world map (ISO alpha-3); countries without a code are left off the map."""
    mapped = by_country[by_country["iso3"].notna() & (by_country["iso3"] != "")]
    fig = go.Figure(go.Choropleth(locations=mapped["iso3"], z=mapped["net_revenue"], text=mapped["country_name"],
                                  colorscale="Blues", colorbar_title="GBP", locationmode="ISO-3"))
    fig.update_layout(title="Net revenue by country", margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      geo={"projection_type": "natural earth", "showframe": False})
    return fig


def uk_split(by_country: pd.DataFrame) -> go.Figure:
    """United Kingdom vs the rest of the world, net revenue."""
    uk = float(by_country.loc[by_country["country_code"] == "GB", "net_revenue"].sum())
    rest = float(by_country.loc[by_country["country_code"] != "GB", "net_revenue"].sum())
    fig = go.Figure(go.Pie(labels=["United Kingdom", "Rest of the world"], values=[uk, rest], hole=0.5,
                           sort=False))
    fig.update_layout(title="UK vs rest of the world", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def top_products(top: pd.DataFrame, measure: str) -> go.Figure:
    """Horizontal bars of the top products by ``measure`` (largest on top)."""
    ordered = top.sort_values(measure)
    fig = go.Figure(go.Bar(x=ordered[measure], y=ordered["stock_code"] + " " + ordered["description"].fillna(""),
                           orientation="h"))
    fig.update_layout(title=f"Top {len(top)} products by {measure.replace('_', ' ')}",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=max(300, 24 * len(top)))
    return fig


def price_history(versions: pd.DataFrame, paid: pd.DataFrame, last_day=None) -> go.Figure:
    """List-price versions as steps (SCD2 ``valid_from``/``valid_to``) against the average price paid per day."""
    fig = go.Figure()
    xs, ys = [], []
    for v in versions.itertuples():
        end = v.valid_to if v.valid_to is not None and str(v.valid_to) < "9999" else (last_day or v.valid_from)
        xs += [v.valid_from, end, None]
        ys += [v.unit_price, v.unit_price, None]
    fig.add_scatter(x=xs, y=ys, mode="lines", name="list price (versions)", line={"width": 3})
    fig.add_scatter(x=paid["invoice_date"], y=paid["avg_price_paid"], mode="markers", name="average price paid")
    fig.update_layout(title="Price history", yaxis_title="GBP", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def cohort_heatmap(cohorts: pd.DataFrame) -> go.Figure:
    """Retention rate by first-purchase month (rows) and months since it (columns)."""
    grid = cohorts.pivot_table(index="cohort_month", columns="months_since", values="retention_rate")
    fig = go.Figure(go.Heatmap(z=grid.values, x=list(grid.columns), y=[str(i) for i in grid.index],
                               colorscale="Blues", zmin=0, zmax=1, colorbar_title="retained"))
    fig.update_layout(title="Cohort retention", xaxis_title="months since first purchase",
                      yaxis_title="cohort (first purchase month)", yaxis_autorange="reversed",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def rfm_segments(segments: pd.DataFrame) -> go.Figure:
    """Customers and their value per RFM segment."""
    ordered = segments.sort_values("monetary_gbp", ascending=False)
    fig = go.Figure()
    fig.add_bar(x=ordered["segment"], y=ordered["customers"], name="customers")
    fig.add_bar(x=ordered["segment"], y=ordered["monetary_gbp"], name="value (GBP)", yaxis="y2", opacity=0.6)
    fig.update_layout(title="RFM segments", barmode="group", yaxis={"title": "customers"},
                      yaxis2={"title": "GBP", "overlaying": "y", "side": "right"},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def new_vs_returning(monthly: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=monthly["month"], y=monthly["new_customers"], name="new")
    fig.add_bar(x=monthly["month"], y=monthly["returning_customers"], name="returning")
    fig.update_layout(title="New vs returning customers per month", barmode="stack",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


SLA_COLOURS = {"MET": "#2e7d32", "ON_TRACK": "#90caf9", "AT_RISK": "#f9a825", "MISSED": "#c62828"}


def sla_strip(status: pd.DataFrame) -> go.Figure:
    """One coloured cell per business day and mart group: MET, ON_TRACK, AT_RISK or MISSED."""
    fig = go.Figure()
    for state, colour in SLA_COLOURS.items():
        rows = status[status["state"] == state]
        fig.add_scatter(x=rows["invoice_date"], y=rows["mart_group"], mode="markers", name=state,
                        marker={"symbol": "square", "size": 18, "color": colour}, text=rows["evidence"],
                        hovertemplate="%{x}: " + state + "<br>%{text}<extra></extra>")
    fig.update_layout(title="SLA per business day", margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=220)
    return fig


def run_timeline(runs: pd.DataFrame) -> go.Figure:
    """Gantt of task runs (``task_runs``): one bar per run, coloured by outcome."""
    colours = {"DONE": "#2e7d32", "FAILED": "#c62828", "RUNNING": "#1565c0", "LOST": "#757575"}
    fig = go.Figure()
    for outcome, colour in colours.items():
        rows = runs[runs["outcome"] == outcome]
        if rows.empty:
            continue
        end = rows["finished_at"].fillna(rows["started_at"])
        fig.add_bar(base=rows["started_at"], x=(end - rows["started_at"]).dt.total_seconds() * 1000,
                    y=rows["task_family"], orientation="h", name=outcome, marker_color=colour,
                    hovertext=rows["duration_s"].round(1).astype(str) + " s")
    fig.update_layout(title="Task runs", xaxis={"type": "date"}, barmode="overlay",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=max(300, 22 * runs["task_family"].nunique()))
    return fig


def batch_accounting(batches: pd.DataFrame) -> go.Figure:
    """Per batch: loaded, quarantined and duplicate rows stacked (they add up to the rows received)."""
    ordered = batches.sort_values("batch_id")
    fig = go.Figure()
    for col, name in (("rows_loaded", "loaded"), ("rows_quarantined", "quarantined"), ("rows_duplicate", "duplicate")):
        fig.add_bar(x=ordered["batch_id"], y=ordered[col], name=name)
    fig.update_layout(title="Batch accounting", barmode="stack", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


SEVERITY_COLOURS = {"error": "#c62828", "warn": "#f9a825"}


def dq_failures(per_day: pd.DataFrame, start, end) -> go.Figure:
    """Failed data-quality checks per date and severity (``metrics.dq_failures_per_day``), stacked; a date
    without failures shows no bar."""
    fig = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():
        rows = per_day[per_day["severity"] == severity]
        fig.add_bar(x=rows["invoice_date"], y=rows["failed_checks"], name=severity, marker_color=colour)
    fig.update_layout(title="Failed checks per day", barmode="stack", xaxis={"type": "date", "range": [
        pd.Timestamp(start) - pd.Timedelta(hours=12), pd.Timestamp(end) + pd.Timedelta(hours=12)]},
        yaxis={"title": "failed checks", "rangemode": "tozero"}, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=260)
    return fig
