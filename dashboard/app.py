"""The analysts' and operators' web app: ``make dashboard`` (``streamlit run dashboard/app.py``, 127.0.0.1:8501).

One file per page under ``views/``; each has a ``render()`` that runs when Streamlit runs the page (not on
import) and may raise ``DataUnavailable``, which is shown as a message. A request carrying a purchases link
(``?token=``) sees only "My purchases"; anyone else sees the login page until they log in as an analyst. The
login lives in the server-side session, never in the URL. The folder must not be called ``pages/``: Streamlit
serves a ``pages/`` folder beside the main script as an old-style multipage app, to anyone, before any login.
"""

from pathlib import Path

import streamlit as st

from dashboard import data, widgets

PAGES = Path(__file__).parent / "views"
PIPELINE_PAGE = PAGES / "pipeline_sla.py"


def pages() -> dict:
    if "token" in st.query_params:
        from dashboard.views import my_purchases

        # a link opens the page at the root or at /my_purchases (a default page's URL is the root only)
        return [st.Page(PAGES / "my_purchases.py", title="My purchases", url_path="purchases", default=True),
                st.Page(my_purchases.render, title="My purchases", url_path="my_purchases", visibility="hidden")]
    return {
        "Business": [
            st.Page(PAGES / "overview.py", title="Overview", url_path="overview", default=True),
            st.Page(PAGES / "geography.py", title="Geography", url_path="geography"),
            st.Page(PAGES / "products.py", title="Products", url_path="products"),
            st.Page(PAGES / "customers.py", title="Customers", url_path="customers"),
        ],
        "Operations": [
            st.Page(PAGES / "anomalies.py", title="Anomalies", url_path="anomalies"),
            st.Page(PIPELINE_PAGE, title="Pipeline and SLA", url_path="pipeline"),
        ],
    }


def main() -> None:
    st.set_page_config(page_title="E-commerce warehouse", layout="wide")
    if "token" not in st.query_params and not st.session_state.get("user"):
        from dashboard.views import login

        login.render()  # no navigation until logged in: no page is reachable by its URL
        return
    page = st.navigation(pages(), position="hidden" if "token" in st.query_params else "sidebar")
    if st.session_state.get("user") and "token" not in st.query_params:
        st.sidebar.caption(f"Signed in as {st.session_state['user']}")
        if st.sidebar.button("Refresh data", help=f"Query results are kept {data.TTL_S // 60} minutes"):
            data.query.clear()
        if st.sidebar.button("Log out"):
            st.session_state.clear()
            st.rerun()
        widgets.section(lambda: widgets.freshness(PIPELINE_PAGE))
    widgets.section(page.run)


if __name__ == "__main__":
    main()
