"""Pure computations over mart rows for the pages (no I/O, no Streamlit)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

KPIS = ("net_revenue", "orders", "avg_order_value", "customers", "units", "returns_rate")


def previous_period(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The period of the same length just before ``[start, end]``."""
    days = (end - start).days + 1
    return start - dt.timedelta(days=days), start - dt.timedelta(days=1)


def kpis(daily: pd.DataFrame, customers: int) -> dict[str, float | None]:
    """Net revenue, orders, average order value (gross / orders), customers, units and returns rate
    (returns / gross) of ``mart_daily_sales`` rows; ``customers`` is counted distinct elsewhere."""
    gross = float(daily["gross_revenue"].sum())
    orders = int(daily["orders"].sum())
    return {
        "net_revenue": float(daily["net_revenue"].sum()),
        "orders": orders,
        "avg_order_value": gross / orders if orders else None,
        "customers": customers,
        "units": int(daily["units"].sum()),
        "returns_rate": float(daily["returns_amount"].sum()) / gross if gross else None,
    }


def changes(current: dict, previous: dict) -> dict[str, float | None]:
    """Relative change of each KPI against the previous period (None without a base); the returns rate
    changes in percentage points."""
    out = {}
    for k in KPIS:
        cur, prev = current.get(k), previous.get(k)
        if cur is None or prev is None:
            out[k] = None
        elif k == "returns_rate":
            out[k] = cur - prev
        else:
            out[k] = (cur - prev) / prev if prev else None
    return out


def new_vs_returning(cohorts: pd.DataFrame) -> pd.DataFrame:
    """Per month from ``mart_cohort_retention``: customers ordering for the first time (their cohort's month 0)
    and customers ordering again (active in a later month of their cohort)."""
    active = cohorts.assign(is_new=cohorts["months_since"] == 0)
    monthly = active.pivot_table(index="activity_month", columns="is_new", values="customers_active",
                                 aggfunc="sum", fill_value=0).reindex(columns=[True, False], fill_value=0)
    return pd.DataFrame({"month": monthly.index, "new_customers": monthly[True].astype(int).to_numpy(),
                         "returning_customers": monthly[False].astype(int).to_numpy()}).sort_values("month")


def revenue_by_day(daily: pd.DataFrame) -> pd.DataFrame:
    """Net, gross revenue and returns per invoice date."""
    cols = ["gross_revenue", "returns_amount", "net_revenue"]
    return daily.groupby("invoice_date", as_index=False)[cols].sum().sort_values("invoice_date")


def top_n(totals: pd.DataFrame, measure: str, n: int) -> pd.DataFrame:
    """The ``n`` products with the largest ``measure`` (ties by stock code)."""
    return totals.sort_values([measure, "stock_code"], ascending=[False, True]).head(n)


def uk_share(by_country: pd.DataFrame) -> float | None:
    total = float(by_country["net_revenue"].sum())
    return float(by_country.loc[by_country["country_code"] == "GB", "net_revenue"].sum()) / total if total else None


def purchase_totals(lines: pd.DataFrame) -> dict:
    """A customer's invoices, spend (sales lines), returns (cancellation lines, positive) and net."""
    sales = lines[~lines["is_cancellation"].astype(bool)]
    returns = lines[lines["is_cancellation"].astype(bool)]
    spent, returned = float(sales["line_amount"].sum()), float(-returns["line_amount"].sum())
    return {"invoices": int(sales["invoice_no"].nunique()), "returns": int(returns["invoice_no"].nunique()),
            "spent_gbp": spent, "returned_gbp": returned, "net_gbp": spent - returned}


def invoices(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per invoice of a customer's lines, newest first: its time, lines, amount and whether it is a
    return (a cancellation invoice)."""
    return lines.assign(is_cancellation=lines["is_cancellation"].astype(bool)).groupby(
        ["invoice_no", "invoice_ts"], as_index=False).agg(
        items=("stock_code", "size"), amount_gbp=("line_amount", "sum"), is_cancellation=("is_cancellation", "any"),
    ).sort_values(["invoice_ts", "invoice_no"], ascending=False, ignore_index=True)


STALE_AFTER_HOURS = 8.0  # batches land every 4 hours: two missed windows in a row


def trading_hours_between(start: dt.datetime, end: dt.datetime, trading_weekdays: set[int]) -> float:
    """Hours from ``start`` to ``end`` that fall on trading days (``weekday()`` numbers, Monday 0)."""
    hours, t = 0.0, start
    while t < end:
        next_midnight = dt.datetime.combine(t.date() + dt.timedelta(days=1), dt.time(), t.tzinfo)
        step_end = min(end, next_midnight)
        if t.weekday() in trading_weekdays:
            hours += (step_end - t).total_seconds() / 3600
        t = step_end
    return hours


def is_stale(last_loaded_at: dt.datetime | None, now: dt.datetime, trading_weekdays: set[int],
             after_hours: float = STALE_AFTER_HOURS) -> bool:
    """Whether no batch has been loaded for more than ``after_hours`` of trading days (never loaded: stale)."""
    if last_loaded_at is None:
        return True
    return trading_hours_between(last_loaded_at, now, trading_weekdays) > after_hours


def scheduled_runs(runs: pd.DataFrame, gap_minutes: float = 15.0) -> pd.DataFrame:
    """Task runs (``sla.task_runs``) with the scheduled run each belongs to, ``run`` ("YYYY-MM-DD HH:MM", its
    start): a run is the tasks that follow one another with less than ``gap_minutes`` between the end of
    the ones before and the start of the next."""
    if runs.empty:
        return runs.assign(run=pd.Series(dtype=str))
    ordered = runs.sort_values("started_at", ignore_index=True)
    ends = ordered["finished_at"].fillna(ordered["started_at"]).cummax().shift()
    new = ends.isna() | (ordered["started_at"] - ends > pd.Timedelta(minutes=gap_minutes))
    starts = ordered["started_at"].where(new).ffill()
    return ordered.assign(run=starts.dt.strftime("%Y-%m-%d %H:%M"))


def run_summary(grouped: pd.DataFrame) -> pd.DataFrame:
    """One row per scheduled run (``scheduled_runs``), newest first: start, end, duration, tasks, failures and
    the invoice dates it worked on."""
    if grouped.empty:
        return pd.DataFrame(columns=["run", "started_at", "finished_at", "duration_s", "tasks", "failed", "dates"])
    out = grouped.assign(is_failed=grouped["outcome"] == "FAILED").groupby("run", as_index=False).agg(
        started_at=("started_at", "min"), finished_at=("finished_at", "max"), tasks=("task_family", "size"),
        failed=("is_failed", "sum"),
        dates=("task_date", lambda d: ", ".join(sorted({str(v) for v in d.dropna()}))))
    out["duration_s"] = (out["finished_at"] - out["started_at"]).dt.total_seconds()
    return out[["run", "started_at", "finished_at", "duration_s", "tasks", "failed", "dates"]] \
        .sort_values("started_at", ascending=False, ignore_index=True)


def latest_dq_runs(results: pd.DataFrame) -> pd.DataFrame:
    """Of ``dq_results`` rows, those of each date's latest run."""
    if results.empty:
        return results
    latest = results.groupby("invoice_date")["checked_at"].transform("max")
    return results[results["checked_at"] == latest]


def dq_failures_per_day(results: pd.DataFrame) -> pd.DataFrame:
    """Failed checks per date and severity in each date's latest run: invoice_date, severity, failed_checks."""
    latest = latest_dq_runs(results)
    failed = latest[latest["status"] == "FAIL"]
    return failed.groupby(["invoice_date", "severity"], as_index=False).size() \
        .rename(columns={"size": "failed_checks"}).sort_values(["invoice_date", "severity"], ignore_index=True)
