"""Controls and page sections shared by pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import streamlit as st

from dashboard import data


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
