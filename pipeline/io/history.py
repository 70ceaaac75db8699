"""Read Luigi's task history: events with each task's family and date.

Embedded, luigid keeps it in SQLite under the state dir; on a cluster in PostgreSQL, named by a SQLAlchemy
URL without a password (``postgresql://luigi@postgres:5432/luigi``; libpq takes it from ``PGPASSWORD``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from pipeline import config

COLUMNS = ["event_id", "task_row_id", "task_family", "task_date", "event_name", "ts"]


EVENTS_SQL = ("SELECT e.id AS event_id, t.id AS task_row_id, t.name AS task_family, p.value AS task_date, "
              "e.event_name, e.ts FROM task_events e JOIN tasks t ON t.id = e.task_id "
              "LEFT JOIN task_parameters p ON p.task_id = t.id AND p.name = 'date' WHERE e.ts >= {since}")


def database(configured: str = "") -> Path | str:
    """The history database: ``configured`` (``[sla] task_history_db``: a path, or a SQLAlchemy URL such as
    ``postgresql://luigi@postgres:5432/luigi``) or the embedded luigid's SQLite file."""
    if "://" in configured:
        if urlparse(configured).password:
            raise ValueError("[sla] task_history_db must not carry a password: set PGPASSWORD instead")
        return configured
    if configured:
        return config.resolve_path(configured)
    return config.state().path / "luigid" / "task-history.db"


def events(source: Path | str, since: dt.datetime) -> pd.DataFrame:
    """Task events since ``since`` (luigid's local clock). ``FileNotFoundError`` when there is no history."""
    stamp = since.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(source, str):
        import sqlalchemy

        engine = sqlalchemy.create_engine(source)
        try:
            with engine.connect() as conn:  # pandas 2.3 only takes SQLAlchemy 2 connections; luigid needs 1.4
                rows = conn.execute(sqlalchemy.text(EVENTS_SQL.format(since=":since")), {"since": stamp}).fetchall()
            df = pd.DataFrame([tuple(r) for r in rows], columns=COLUMNS)
        finally:
            engine.dispose()
    else:
        if not source.exists():
            raise FileNotFoundError(f"no Luigi task history at {source}")
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as conn:
            df = pd.read_sql(EVENTS_SQL.format(since="?"), conn, params=(stamp,))
    df["ts"] = pd.to_datetime(df["ts"], format="mixed")
    return df[COLUMNS]
