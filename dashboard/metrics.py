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
