"""Products: top sellers, a product's list-price versions against the prices paid, and returns."""

import streamlit as st

from dashboard import charts, data, metrics, widgets

MEASURES = {"Revenue": "gross_revenue", "Units": "units"}


def render() -> None:
    st.title("Products")
    picked = widgets.date_range("products_dates")
    if picked is None:
        return
    by = MEASURES[st.sidebar.radio("Rank by", list(MEASURES), key="products_by")]
    n = st.sidebar.slider("Top N", 5, 50, 10, key="products_n")
    totals = data.product_totals(*picked)
    if totals.empty:
        st.info("No product sales published in this range.")
        return
    top = metrics.top_n(totals, by, n)
    st.plotly_chart(charts.top_products(top, by), width="stretch")
    names = dict(zip(top["stock_code"], top["description"].fillna(""), strict=True))
    code = st.selectbox("Price history of", list(names), format_func=lambda c: f"{c} {names[c]}",
                        key="products_code")
    widgets.section(lambda: _price_history(code, *picked))
    st.subheader("Returns by product")
    returns = metrics.top_n(totals[totals["returns_amount"] > 0], "returns_amount", n)
    widgets.table(returns[["stock_code", "description", "returned_units", "returns_amount", "units"]],
                  csv=f"returns_by_product_{picked[0]}_{picked[1]}.csv")


def _price_history(code: str, start, end) -> None:
    versions, paid = data.price_versions(code), data.prices_paid(code, start, end)
    st.plotly_chart(charts.price_history(versions, paid, end), width="stretch")
    widgets.table(versions)


if __name__ == "__main__":
    render()
