"""Read Luigi's task history (luigid's SQLite database): events with each task's family and date."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pandas as pd

from pipeline import config

COLUMNS = ["event_id", "task_row_id", "task_family", "task_date", "event_name", "ts"]


def database(configured: str = "") -> Path:
    """The history database: ``configured`` (``[sla] task_history_db``) or the embedded luigid's."""
    if configured:
        return config.resolve_path(configured)
    return config.state().path / "luigid" / "task-history.db"


def events(path: Path, since: dt.datetime) -> pd.DataFrame:
    """Task events since ``since`` (luigid's local clock). ``FileNotFoundError`` when there is no history."""
    if not path.exists():
        raise FileNotFoundError(f"no Luigi task history at {path}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        df = pd.read_sql(
            "SELECT e.id AS event_id, t.id AS task_row_id, t.name AS task_family, p.value AS task_date, "
            "e.event_name, e.ts FROM task_events e JOIN tasks t ON t.id = e.task_id "
            "LEFT JOIN task_parameters p ON p.task_id = t.id AND p.name = 'date' WHERE e.ts >= ?",
            conn, params=(since.strftime("%Y-%m-%d %H:%M:%S"),))
    df["ts"] = pd.to_datetime(df["ts"], format="mixed")
    return df[COLUMNS]
