"""Read-only queries over HiveServer2 (PyHive), the way analysts and the dashboard reach the warehouse."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from pyhive import hive

from pipeline import config

log = logging.getLogger(__name__)
WARMED_DATABASES = ("ecommerce_mart", "ecommerce_dw", "ecommerce_db")


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


def warm(cur: hive.Cursor, databases: tuple[str, ...] = WARMED_DATABASES) -> dict[str, float]:
    """Count every table of ``databases`` once, so a freshly started server has compiled its query code, listed
    each table's partitions and files and opened its metastore connection before the first analyst asks.
    Returns the seconds each table took; a table that cannot be read is logged and skipped."""
    took = {}
    cur.execute("SHOW DATABASES")
    present = {row[0] for row in cur.fetchall()}
    for database in databases:
        if database not in present:
            log.info("warming: no database %s yet", database)
            continue
        cur.execute(f"SHOW TABLES IN {database}")
        for row in cur.fetchall():
            table = f"{database}.{row[1]}"
            t0 = time.monotonic()
            try:
                cur.execute(f"SELECT count(*) FROM {table}")
                cur.fetchall()
            except Exception as exc:  # noqa: BLE001  (a table being rewritten is read on first use instead)
                log.warning("warming %s failed: %s", table, exc)
                continue
            took[table] = round(time.monotonic() - t0, 3)
    return took
