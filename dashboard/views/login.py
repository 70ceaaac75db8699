"""Log in (analysts): user names and bcrypt hashes from ``[dashboard] users`` or ``$ECOM_DASHBOARD_USERS``."""

import streamlit as st

from dashboard import auth


def render() -> None:
    st.title("E-commerce warehouse")
    known = auth.users()
    if not known:
        st.error(f"No analyst account is configured: set ${auth.USERS_ENV} or [dashboard] users "
                 "(`python -m pipeline dashboard-user NAME` prints an entry).")
        return
    with st.form("login"):
        username = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        if auth.check_password(known, username, password):
            st.session_state["user"] = username
            st.rerun()
        else:
            st.error("Wrong user name or password.")


if __name__ == "__main__":
    render()
