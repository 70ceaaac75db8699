"""Read-only queries over HiveServer2 (PyHive), the way analysts and the dashboard reach the warehouse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pyhive import hive

from pipeline import config


@contextlib.contextmanager
def cursor(host: str | None = None, port: int | None = None) -> Iterator[hive.Cursor]:
    config.load_profile()
    cfg = config.hiveserver2()
    conn = hive.connect(host=host or cfg.host, port=port or cfg.port, **cfg.login("pipeline"))
    try:
        cur = conn.cursor()
        yield cur
        cur.close()
    finally:
        conn.close()


def query(sql: str, params: dict | None = None) -> list[tuple]:
    with cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def url() -> str:
    cfg = config.hiveserver2()
    return f"hive://{cfg.host}:{cfg.port} (HiveServer2, auth={cfg.login('pipeline')['auth']})"
