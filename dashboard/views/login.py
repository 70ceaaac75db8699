"""Log in (analysts): user names and bcrypt hashes from ``[dashboard] users`` or ``$ECOM_DASHBOARD_USERS``.

Failed sign-ins are throttled per user name and per client (``auth.LoginThrottle``, one per process, shared by
every browser session): a refused attempt does not check the password at all.
"""

import streamlit as st

from dashboard import auth


@st.cache_resource
def throttle(max_failures: int, window_s: float, lockout_s: float) -> auth.LoginThrottle:
    """The process's throttle (a new one only when its settings change)."""
    return auth.LoginThrottle(max_failures, window_s, lockout_s)


def client() -> str:
    try:
        return auth.client_key(st.context.ip_address, st.context.headers)
    except Exception:  # no browser connection (e.g. under AppTest): one local client
        return auth.client_key(None, None)


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
    if not submitted:
        return
    gate, who = throttle(**auth.throttle_settings()), client()
    wait_s = gate.begin(username, who)
    if wait_s:  # refused: the password is not even checked
        st.error(auth.throttle_message(wait_s).capitalize() + ".")
        return
    ok = False
    try:
        ok = auth.check_password(known, username, password)
    finally:
        if ok:
            gate.succeeded(username, who)
        else:
            wait_s = gate.failed(username, who)
    if ok:
        st.session_state["user"] = username
        st.rerun()
    st.error(auth.throttle_message(wait_s).capitalize() + "." if wait_s else "Wrong user name or password.")


if __name__ == "__main__":
    render()
