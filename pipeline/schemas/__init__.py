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


def split_columns(ddl: str) -> list[tuple[str, str]]:
    """``(name, Hive type)`` of each column of a declared list, in order: ``"a STRING, b DECIMAL(12, 3)"`` ->
    ``[("a", "STRING"), ("b", "DECIMAL(12, 3)")]`` (an empty list for ``""``)."""
    columns = (c.strip() for c in re.split(r",(?![^()]*\))", " ".join(ddl.split())))
    return [tuple(c.split(None, 1)) for c in columns if c]


def column_names(table: str) -> list[str]:
    """The data columns of ``db.table`` in declared order (partition columns not included)."""
    return [name for name, _ in split_columns(spec(table)["columns"])]


def partition_names(table_spec: dict) -> list[str]:
    """The partition columns of a table's declaration, in order (empty for an unpartitioned table)."""
    return [name for name, _ in split_columns(table_spec.get("partition", ""))]
