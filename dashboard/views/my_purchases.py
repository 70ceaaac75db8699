"""My purchases (shoppers): one customer's invoices and lines, opened only with a signed, expiring link
(``dashboard.auth``: lifetime ``[dashboard] link_max_age_hours``)."""

import streamlit as st

from dashboard import auth, data, formats, metrics, widgets


def render() -> None:
    st.title("My purchases")
    try:  # valid [dashboard] link_max_age_hours, signed with $ECOM_DASHBOARD_SECRET or ..._PREVIOUS
        customer_id = auth.read_token(st.query_params.get("token"), auth.link_max_age_s())
    except auth.InvalidLink as exc:
        st.error(f"Sorry, {exc}.")
        return
    st.caption(f"Customer {customer_id}")
    try:
        lines = data.purchase_history(customer_id)
    except data.DataUnavailable:
        st.error("Your purchase history is not available right now. Please try again later.")
        return
    if lines.empty:
        st.info("No purchases yet.")
        return
    totals = metrics.purchase_totals(lines)
    cols = st.columns(4)
    cols[0].metric("Orders", f"{totals['invoices']:,}")
    cols[1].metric("Spent", formats.gbp(totals["spent_gbp"]))
    cols[2].metric("Returned", formats.gbp(totals["returned_gbp"]))
    cols[3].metric("Net", formats.gbp(totals["net_gbp"]))
    st.subheader("Invoices")
    widgets.table(metrics.invoices(lines))
    st.subheader("Lines")
    widgets.table(lines)


if __name__ == "__main__":
    render()
