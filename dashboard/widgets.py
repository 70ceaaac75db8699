"""Controls and page sections shared by pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import streamlit as st

from dashboard import data, formats, metrics

NUMBER_FORMATS = {"int": "%,d", "number": "%,.2f", "money": "£%,.2f", "price": "£%,.2f", "duration": "%.1f s"}


def column_config(columns) -> dict:
    """Streamlit's column settings for these columns: the label, help and format of ``formats.COLUMNS``."""
    out = {}
    for name in columns:
        spec = formats.column(name)
        kw = {"label": spec.label, "help": spec.help or None}
        if spec.kind in NUMBER_FORMATS:
            out[name] = st.column_config.NumberColumn(format=NUMBER_FORMATS[spec.kind], **kw)
        elif spec.kind == "date":
            out[name] = st.column_config.DateColumn(format="YYYY-MM-DD", **kw)
        elif spec.kind == "datetime":
            out[name] = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", **kw)
        elif spec.kind == "flag":
            out[name] = st.column_config.CheckboxColumn(**kw)
        else:
            out[name] = st.column_config.TextColumn(**kw)
    return out


def table(df: pd.DataFrame, csv: str | None = None, index: bool = False) -> None:
    """``df`` with labelled, formatted columns; with ``csv`` (a file name) a button downloads it, headed by the
    same labels."""
    shown = formats.for_display(df)
    st.dataframe(shown, width="stretch", hide_index=not index, column_config=column_config(shown.columns))
    if csv:
        _download(shown, csv, "Download CSV")


def csv_button(df: pd.DataFrame, file_name: str, label: str = "Download CSV") -> None:
    """A button that downloads ``df`` as CSV, as ``table`` shows it, its columns headed by their labels."""
    _download(formats.for_display(df), file_name, label)


def _download(shown: pd.DataFrame, file_name: str, label: str) -> None:
    export = shown.rename(columns={c: formats.column(c).label for c in shown.columns})
    st.download_button(label, export.to_csv(index=False).encode(), file_name=file_name, mime="text/csv",
                       key=f"csv_{file_name}", on_click="ignore")


def date_range(key: str) -> tuple[dt.date, dt.date] | None:
    """A date range within the published sales (default: the last month); None when the pick is incomplete."""
    first, last = data.date_bounds()
    picked = st.sidebar.date_input("Dates", value=(max(first, last.replace(day=1)), last), min_value=first,
                                   max_value=last, key=key)
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.info("Pick a start and an end date.")
        return None
    return picked


def section(render: Callable[[], None]) -> None:
    """Run one section of a page; if its data is unavailable, say so there and let the next section run."""
    try:
        render()
    except data.DataUnavailable as exc:
        st.error(str(exc))


def freshness(pipeline_page, now: dt.datetime | None = None) -> None:
    """"Data as of" in the sidebar; above the page, a warning linking to ``pipeline_page`` when no batch has been
    loaded for more than ``metrics.STALE_AFTER_HOURS`` of trading days."""
    fresh = data.freshness()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    loaded = fresh["loaded_at"]
    lines = [f"**Data as of** {fresh['data_until']:%Y-%m-%d %H:%M}" if fresh["data_until"] else "**No batch loaded**"]
    if loaded:
        lines.append(f"latest batch loaded {loaded:%Y-%m-%d %H:%M} UTC")
    if fresh["ready_date"]:
        ready = fresh["first_ready_at"]
        lines.append(f"marts of {fresh['ready_date']} ready" + (f" at {ready:%Y-%m-%d %H:%M} UTC" if ready else ""))
    st.sidebar.caption("  \n".join(lines))
    if metrics.is_stale(loaded, now, fresh["trading_weekdays"]):
        since = f"since {loaded:%Y-%m-%d %H:%M} UTC" if loaded else "yet"
        st.warning(f"The pipeline looks stalled: no batch loaded {since}, more than "
                   f"{metrics.STALE_AFTER_HOURS:g} hours of trading days. These figures may be out of date.")
        st.page_link(pipeline_page, label="See Pipeline and SLA")
