import socket
import types

import pytest


@pytest.fixture
def warehouse_down(monkeypatch, tmp_path):
    """HiveServer2 pointed at a closed loopback port, no task history, the dashboard's caches empty; yields the
    closed port."""
    import streamlit as st

    from pipeline import config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setattr(config, "hiveserver2", lambda: types.SimpleNamespace(
        host="127.0.0.1", port=closed, login=lambda user: {"auth": "NOSASL", "username": user}))
    monkeypatch.setattr(config, "state", lambda: types.SimpleNamespace(path=tmp_path))
    st.cache_data.clear()
    st.cache_resource.clear()
    return closed
