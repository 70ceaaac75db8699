"""Every table the pipeline publishes, declared once: ``SCHEMAS[database][table]`` holds its grain, its
columns as Hive DDL (``"a STRING, b DECIMAL(12,3)"``) and, for a partitioned table, its partition columns.

DDL (``warehouse.ensure_schema``), Arrow schemas (``io.arrow_tables``), the catalog rebuild and the
documentation read these declarations; nothing adds to them at import time.
"""

from __future__ import annotations

import re

from pipeline.schemas import dw, mart, raw

SCHEMAS: dict[str, dict[str, dict]] = {raw.DB: raw.TABLES, dw.DB: dw.TABLES, mart.DB: mart.TABLES}


def spec(table: str) -> dict:
    """The declaration of ``db.table``."""
    db, _, name = table.partition(".")
    return SCHEMAS[db][name]


def column_names(table: str) -> list[str]:
    """The data columns of ``db.table`` in declared order (partition columns not included)."""
    return [c.split()[0] for c in re.split(r",(?![^()]*\))", spec(table)["columns"])]
