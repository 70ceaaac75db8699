"""How the pages show values: money in GBP, and every table column's label and kind (pure, no Streamlit).

A table column is named as in the marts (``invoice_no``, ``amount_gbp``); ``COLUMNS`` gives what a person reads
instead ("Invoice", "Amount") and how the value is shown. ``widgets.table`` turns it into Streamlit's
``column_config``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd


class Column(NamedTuple):
    label: str
    kind: str  # one of KINDS
    help: str = ""


KINDS = ("text", "int", "number", "money", "price", "date", "datetime", "flag", "duration")

COLUMNS: dict[str, Column] = {c: Column(*spec) for c, spec in {
    # sales and products
    "invoice_no": ("Invoice", "text"),
    "invoice_ts": ("Date and time", "datetime"),
    "invoice_date": ("Date", "date"),
    "items": ("Items", "int", "lines on the invoice"),
    "amount_gbp": ("Amount", "money"),
    "stock_code": ("Stock code", "text"),
    "description": ("Product", "text"),
    "quantity": ("Quantity", "int"),
    "unit_price_paid": ("Unit price", "price"),
    "unit_price": ("List price", "price"),
    "line_amount": ("Amount", "money"),
    "is_cancellation": ("Returned", "flag", "a cancellation: the goods came back"),
    "country_name": ("Country", "text"),
    "country_code": ("Code", "text"),
    "iso3": ("ISO code", "text"),
    "net_revenue": ("Net revenue", "money", "sales less returns"),
    "gross_revenue": ("Revenue", "money"),
    "returns_amount": ("Returns", "money"),
    "returned_units": ("Units returned", "int"),
    "orders": ("Orders", "int"),
    "units": ("Units", "int"),
    "customers": ("Customers", "int"),
    "valid_from": ("Valid from", "date"),
    "valid_to": ("Valid to", "date"),
    "is_current": ("Current", "flag"),
    # anomalies
    "line_id": ("Line", "text"),
    "metric": ("Measure", "text"),
    "value": ("Value", "number"),
    "baseline_scope": ("Baseline", "text", "the product's own history, or the store's for a new product"),
    "baseline_lines": ("Baseline lines", "int"),
    "baseline_median": ("Baseline median", "number"),
    "baseline_spread": ("Baseline spread", "number"),
    "rule": ("Rule", "text"),
    "score": ("Score", "number"),
    "status": ("Status", "text"),
    "status_changed_by": ("Changed by", "text"),
    "status_changed_at": ("Changed at", "datetime"),
    "detected_at": ("Detected at", "datetime"),
    # pipeline and SLA
    "mart_group": ("Marts", "text"),
    "state": ("SLA state", "text"),
    "deadline_at": ("Deadline", "datetime"),
    "ready_at": ("Ready at", "datetime", "when the day's marts were first ready: the SLA is judged on it"),
    "first_ready_at": ("First ready at", "datetime"),
    "republished_at": ("Republished at", "datetime"),
    "revisions": ("Republications", "int"),
    "revision": ("Revision", "int"),
    "reason": ("Reason", "text"),
    "expected_finish_at": ("Expected ready", "datetime"),
    "evidence": ("Evidence", "text"),
    "checked_at": ("Checked at", "datetime"),
    "since": ("Since", "datetime"),
    "batch_id": ("Batch", "text"),
    "window_start": ("Window start", "datetime"),
    "rows_received": ("Received", "int"),
    "rows_loaded": ("Loaded", "int"),
    "rows_quarantined": ("Quarantined", "int"),
    "rows_duplicate": ("Duplicates", "int"),
    "rows_released": ("Released", "int"),
    "check_name": ("Check", "text"),
    "check_type": ("Type", "text"),
    "table_name": ("Table", "text"),
    "severity": ("Severity", "text"),
    "failing_rows": ("Failing rows", "int"),
    "sample_keys": ("Examples", "text"),
    "run_id": ("Run", "text"),
    "task": ("Task", "text"),
    "runs": ("Runs", "int"),
    "failed": ("Failed", "int"),
    "run": ("Scheduled run", "text", "the run's date and start time (UTC)"),
    "tasks": ("Tasks", "int"),
    "started_at": ("Started", "datetime"),
    "finished_at": ("Finished", "datetime"),
    "duration_s": ("Duration", "duration"),
    "failed_checks": ("Failed checks", "int"),
    "dates": ("Dates", "text", "the invoice dates the run worked on"),
    "outcome": ("Outcome", "text"),
    # customers
    "segment": ("Segment", "text"),
    "monetary_gbp": ("Spend", "money"),
}.items()}


def column(name: str) -> Column:
    """The column's label and kind; a column not listed reads as its words ("rows_loaded" -> "Rows loaded")."""
    return COLUMNS.get(name) or Column(name.replace("_", " ").strip().capitalize(), "text")


def gbp(value: float | None, decimals: int = 2) -> str:
    """An amount in pounds: "£1,234.50", "-£12.00"; never a negative zero; "n/a" for no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    rounded = round(float(value), decimals) + 0.0  # -0.0 + 0.0 is 0.0
    return f"{'-' if rounded < 0 else ''}£{abs(rounded):,.{decimals}f}"


def for_display(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its money columns rounded to pence and without negative zeros (a copy)."""
    out = df.copy()
    for name in out.columns:
        kind = column(name).kind
        if kind in ("money", "price") and pd.api.types.is_numeric_dtype(out[name]):
            out[name] = out[name].astype(float).round(2 if kind == "money" else 3) + 0.0
    return out
