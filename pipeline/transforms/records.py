"""Landed feed files -> records (pure Python, no I/O): encoding, RFC 4180 records, columns by header name.

A feed file is decoded as UTF-8 (with or without a byte-order mark); bytes that are not UTF-8 are decoded as
cp1252, or latin-1 when cp1252 cannot map them, and the encoding is reported, so nothing is ever replaced
by U+FFFD. Records follow RFC 4180: a quoted field may hold commas, doubled quotes and line breaks. Columns
are found by their header names in any order (case, spaces and underscores do not matter); a column the
feed does not define is reported and ignored, and a file without a required column is refused whole.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

UTF8_ENCODINGS = ("utf-8", "utf-8-sig")
TRANSACTION_COLUMNS = {"invoice_no": "InvoiceNo", "stock_code": "StockCode", "description": "Description",
                       "quantity": "Quantity", "invoice_date": "InvoiceDate", "unit_price": "UnitPrice",
                       "customer_id": "CustomerID", "country": "Country"}
PRODUCT_COLUMNS = ("stock_code", "description", "unit_price")
COUNTRY_COLUMNS = ("source_country_name", "country_code", "iso3", "country_name", "region", "continent")


class RefusedFile(ValueError):
    """A feed file that cannot be read as its feed at all (no header, a required column missing)."""

    encoding: str | None = None  # what the file was decoded as, when the reader knows


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a feed file: its text as landed and its fields by column, or why it has none.

    ``error`` is ``(reason_code, detail)`` for a record that cannot be split into the header's fields.
    """

    raw: str
    fields: dict[str, str | None]
    error: tuple[str, str] | None = None


@dataclass
class ParsedFile:
    header: list[str]
    extra_columns: list[str]
    records: list[Record] = field(default_factory=list)


def _single_byte(line: bytes) -> tuple[str, str]:
    try:
        return line.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return line.decode("latin-1"), "latin-1"


def decode(data: bytes) -> tuple[str, str]:
    """The text of a landed file and the encoding it was read with.

    A file that is not UTF-8 is decoded line by line: a line that is valid UTF-8 stays so, the others are
    read as cp1252 (latin-1 where cp1252 has no character). The encoding says which happened, for example
    ``cp1252`` or, when a UTF-8 file carries a few single-byte lines, ``utf-8+cp1252``.
    """
    bom = data.startswith(codecs.BOM_UTF8)
    if bom:
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8"), "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError:
        pass
    if not bom and data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    lines, used = [], set()
    for line in data.split(b"\n"):
        try:
            text = line.decode("utf-8")
            if not line.isascii():
                used.add("utf-8")
        except UnicodeDecodeError:
            text, kind = _single_byte(line)
            used.add(kind)
        lines.append(text)
    order = ["utf-8", "cp1252", "latin-1"]
    return "\n".join(lines), "+".join(e for e in order if e in used)


def split_records(text: str, max_chars: int) -> Iterator[tuple[str, str | None]]:
    """RFC 4180 records of ``text`` as ``(raw text, error code)``; blank lines are not records.

    A record spans physical lines while a quoted field is open. A record longer than ``max_chars`` is
    returned at once with ``LINE_TOO_LONG`` (its quotes are not parsed, so a pathological record costs one
    pass), and reading resumes at the next physical line; a quote still open at the end of the file gives
    ``UNPARSEABLE_ROW``.
    """
    parts: list[str] = []
    size = 0
    open_quote = False
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if not parts and not line.strip():
            continue
        parts.append(line)
        size += len(line) + 1
        if size > max_chars:
            yield "\n".join(parts), "LINE_TOO_LONG"
            parts, size, open_quote = [], 0, False
            continue
        open_quote ^= line.count('"') % 2 == 1
        if not open_quote:
            yield "\n".join(parts), None
            parts, size = [], 0
    if parts:
        yield "\n".join(parts), "UNPARSEABLE_ROW"


def _column_key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def parse_fields(raw: str) -> list[str] | None:
    """The fields of one record, or None when its quoting is malformed."""
    if '"' not in raw:
        return raw.split(",")
    try:
        rows = list(csv.reader([raw], strict=True))
    except csv.Error:
        return None
    return rows[0] if rows else []


def parse_file(text: str, columns: dict[str, str], max_chars: int) -> ParsedFile:
    """The records of a feed file whose header names ``columns`` (field -> header name), in any order.
    An empty field is None.

    Raises ``RefusedFile`` for an empty file or a header without a required column. Grain of ``records``:
    one per data record; a repeat of the header line is not a record.
    """
    records = split_records(text, max_chars)
    first = next(records, None)
    if first is None:
        raise RefusedFile("the file is empty: no header line")
    header_raw, header_error = first
    header = parse_fields(header_raw) if header_error is None else None
    if not header:
        raise RefusedFile(f"the header line cannot be read: {header_raw[:200]!r}")
    position = {_column_key(h): i for i, h in reversed(list(enumerate(header)))}
    missing = [name for name in columns.values() if _column_key(name) not in position]
    if missing:
        raise RefusedFile(f"required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                          f"missing from the header ({', '.join(header)})")
    wanted = {f: position[_column_key(name)] for f, name in columns.items()}
    known = {_column_key(name) for name in columns.values()}
    extra = [h for h in header if _column_key(h) not in known]
    parsed = ParsedFile(header, extra)
    empty = dict.fromkeys(columns)
    for raw, error in records:
        if raw == header_raw:
            continue
        if error == "LINE_TOO_LONG":
            parsed.records.append(Record(raw, empty, (error, f"record of {len(raw)} characters is longer than "
                                                            f"the limit of {max_chars}")))
            continue
        if error is not None:
            parsed.records.append(Record(raw, empty, (error, "a quoted field is not closed before the end "
                                                            "of the file")))
            continue
        values = parse_fields(raw)
        if values is None:
            parsed.records.append(Record(raw, empty, ("UNPARSEABLE_ROW", "malformed quoting")))
            continue
        if len(values) != len(header):
            fields = {f: (values[i] or None) if i < len(values) else None for f, i in wanted.items()}
            parsed.records.append(Record(raw, fields, ("UNPARSEABLE_ROW", f"expected {len(header)} fields, "
                                                                        f"found {len(values)}")))
            continue
        parsed.records.append(Record(raw, {f: values[i] or None for f, i in wanted.items()}))
    return parsed
