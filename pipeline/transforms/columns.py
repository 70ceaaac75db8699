"""Column expressions shared by the transforms and the I/O module (pure: no session, no I/O)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pyspark.sql import Column
from pyspark.sql import functions as F


def non_product_flag(stock_code: str, patterns: list[str]) -> Column:
    """Whether ``stock_code`` matches one of the non-product code patterns (SQL ``LIKE``: postage, fees...);
    false for a null code."""
    flag = F.lit(False)
    for pattern in patterns:
        flag = flag | F.col(stock_code).like(pattern)
    return F.coalesce(flag, F.lit(False))


def date_key(date: str) -> Column:
    """The ``dim_date`` key of a date column: ``yyyymmdd`` as an integer (20101201)."""
    return (F.year(date) * 10000 + F.month(date) * 100 + F.dayofmonth(date)).cast("int")


def sql_literal(value: dt.date | int | str) -> str:
    """A value as a Spark SQL literal: ``DATE'2010-12-01'``, ``42``, or a quoted string with ``\\`` and ``'``
    escaped."""
    if isinstance(value, dt.datetime):
        raise TypeError(f"no SQL literal for a timestamp ({value!r}): give a date")
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"no SQL literal for {type(value).__name__} {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_values(expression: str, values: Iterable[dt.date | int | str]) -> Column:
    """``expression IN (values)`` (``expression``: a column name or SQL expression), built as one SQL expression:
    one call to the JVM however many values, where ``Column.isin`` makes several per value (a backfill filters
    on hundreds of dates or batches). No values: false, as ``isin`` of none."""
    literals = [sql_literal(v) for v in values]
    return F.expr(f"{expression} IN ({', '.join(literals)})") if literals else F.lit(False)
