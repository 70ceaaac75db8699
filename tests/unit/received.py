"""Received transaction records as the loader hands them to ``classify_lines``, built from CSV text."""

from __future__ import annotations

from pipeline.sources.replay import HEADER
from pipeline.transforms import records
from pipeline.transforms import transactions as tx


def received(spark, lines: list[tuple], extra: str = ""):
    """``lines``: ``(batch_id, raw_line, *extra values)``; each line is parsed under the feed's header, so
    the frame holds the eight source fields and any record error, plus ``extra`` columns (a DDL list)."""
    rows = []
    for batch, line, *more in lines:
        parsed = records.parse_file(f"{HEADER}\n{line}\n", records.TRANSACTION_COLUMNS, 65536).records
        r = parsed[0]
        rows.append((batch, f"{batch}.csv", r.raw, *(r.fields[c] for c in tx.SOURCE_FIELDS),
                     *(r.error or (None, None)), *more))
    schema = ", ".join(f"{c} STRING" for c in tx.LINE_COLUMNS) + (f", {extra}" if extra else "")
    return spark.createDataFrame(rows, schema)
