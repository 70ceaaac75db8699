"""Small Hive tables without Spark: read them as Arrow or pandas, publish them as ``io.warehouse`` does.

The SLA monitor, alert delivery and the anomaly review read and rewrite tables of a few thousand rows; a Spark
session would cost them 10-40 s to start. Spark tasks publish a date's small results through it too
(``publish_collected``), without a Spark write job. This module asks the Hive metastore over Thrift
(``hmsclient``) where a table or partition lives and reads or writes its Parquet files itself (``pyarrow``), on
``file://`` or, through WebHDFS, ``hdfs://``.

Publication follows ``pipeline.io.warehouse`` step for step: one Parquet file (and ``_state.json`` when given) in a
fresh version directory per table or partition, crash point ``publish.written``, the metastore calls that swap
the locations (``alter_table``; ``add_partitions`` for new partitions, ``publish.partitions_added``, then
``alter_partitions`` for the others), ``publish.swapped``, the ``_current`` pointers, then the removal of replaced
versions older than ``[warehouse] gc_retention_s``. Callers hold the warehouse lock.

Spark tasks and HiveServer2 read these files as they read their own because the Arrow schema is the table's
declared columns (``pipeline.schemas``): names lower-case, DECIMAL(p,s) as decimal128(p,s), TIMESTAMP as
microseconds adjusted to UTC, DATE as date32. In pandas, timestamps are naive UTC (as in the pipeline's Spark
sessions, whose time zone is UTC), dates ``datetime.date``, decimals ``Decimal``, integers and booleans nullable.
Dates before 1582-10-15 and timestamps before 1900 are not supported (Spark would ask for a calendar rebase mode).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hmsclient.genthrift.hive_metastore.ttypes import MetaException, NoSuchObjectException

from pipeline import config
from pipeline.io import crash, fs
from pipeline.io import warehouse as wh
from pipeline.io.metastore_client import get_table, hadoop_location, metastore, partition_name, swap_partitions
from pipeline.schemas import split_columns

log = logging.getLogger(__name__)

HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
HIVE_TYPES = {
    "string": pa.string(), "varchar": pa.string(), "char": pa.string(),
    "tinyint": pa.int8(), "smallint": pa.int16(), "int": pa.int32(), "integer": pa.int32(), "bigint": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "boolean": pa.bool_(),
    "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"),
}
_DECIMAL = re.compile(r"decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE)
_NULLABLE = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
             pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}

PartitionValue = str | tuple[str, ...]


# ---------------------------------------------------------------------------------------------- pure logic


def arrow_type(hive_type: str) -> pa.DataType:
    """The Arrow type Spark reads back as the Hive column type ``hive_type`` (``DECIMAL(12,3)``, ``TIMESTAMP``...)."""
    text = hive_type.strip().lower()
    decimal = _DECIMAL.fullmatch(text)
    if decimal:
        return pa.decimal128(int(decimal[1]), int(decimal[2]))
    base = text.split("(")[0].strip()
    if base not in HIVE_TYPES:
        raise ValueError(f"no Arrow type for the Hive column type {hive_type!r}")
    return HIVE_TYPES[base]


@functools.cache
def parse_columns(ddl: str) -> pa.Schema:
    """The Arrow schema of a column list as declared in ``pipeline.schemas`` (``a STRING, b DECIMAL(12,3)``)."""
    return pa.schema([pa.field(name.lower(), arrow_type(hive_type)) for name, hive_type in split_columns(ddl)])


def _split(table: str) -> tuple[str, str]:
    """``(db, table)`` of ``db.table`` (a bare name is of ``ecommerce_db``)."""
    db, tbl = wh.name(table).split(".")
    return db, tbl


def schemas(table: str) -> tuple[pa.Schema, pa.Schema]:
    """The declared data columns and partition columns of ``table`` (``db.table``) as Arrow schemas."""
    db, tbl = _split(table)
    spec = wh.SCHEMAS[db][tbl]
    return parse_columns(spec["columns"]), parse_columns(spec.get("partition", ""))


def _is_null(value) -> bool:
    """Whether a pandas cell is missing (None, NaN, NaT, pd.NA)."""
    return value is None or (not isinstance(value, (str, bytes, Decimal)) and bool(pd.isna(value)))


def _array(values: pd.Series, field: pa.Field) -> pa.Array:
    """One column as ``field``'s Arrow type; a value that does not fit names the column."""
    kind = field.type
    data = values
    if pa.types.is_decimal(kind):
        step = Decimal(1).scaleb(-kind.scale)
        data = [None if _is_null(v) else Decimal(str(v)).quantize(step, ROUND_HALF_UP) for v in values]
    elif pa.types.is_timestamp(kind) and pd.api.types.is_datetime64_any_dtype(values):
        data = values.dt.floor("us")
    try:
        return pa.array(data, type=kind, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise ValueError(f"column {field.name} ({kind}): {exc}") from None


def to_arrow(rows: pd.DataFrame | pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with exactly the columns and types of ``schema`` (other columns are left out). Naive datetimes are
    UTC; None, NaN and NaT are null; decimals are rounded half up to the column's scale (as Spark casts them);
    every column of the schema must be there."""
    if isinstance(rows, pa.Table):
        return rows.select(schema.names).cast(schema)
    missing = [f.name for f in schema if f.name not in rows.columns]
    if missing:
        raise ValueError(f"rows lack the column(s) {', '.join(missing)}")
    rows = rows.reset_index(drop=True)
    return pa.Table.from_arrays([_array(rows[f.name], f) for f in schema], schema=schema)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """A table as pandas: timestamps naive UTC, dates ``datetime.date``, decimals ``Decimal``, integers and
    booleans as nullable pandas types."""
    naive = pa.schema([pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) else f
                       for f in table.schema])
    return table.cast(naive).to_pandas(types_mapper=_NULLABLE.get)


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """A Parquet file's columns as the declared ``schema``: matched by lower-case name, cast (Spark's INT96
    timestamps included), a column the file lacks (added to the table later) null."""
    present = {name.lower(): i for i, name in enumerate(data.column_names)}
    arrays = [data.column(present[f.name]).cast(f.type) if f.name in present else pa.nulls(len(data), f.type)
              for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def versions_to_remove(ages_s: dict[str, float], keep: set[str], retention_s: float) -> list[str]:
    """The version directories among ``ages_s`` (name -> seconds since last modified) that garbage collection
    deletes: not in ``keep`` and older than ``retention_s``."""
    return sorted(n for n, age in ages_s.items() if wh.VERSION.match(n) and n not in keep and age > retention_s)


def split_partitions(data: pa.Table, columns: list[str],
                     values: list[tuple[str, ...]]) -> dict[tuple[str, ...], pa.Table]:
    """The rows of ``data`` for each partition of ``values``, by its partition columns ``columns`` read as Hive
    names partitions (a date as ``2010-12-01``, a number in decimal, null as Hive's default partition). A value
    without rows gets none; a row of a partition not in ``values`` is an error, never dropped."""
    keys = [pc.fill_null(data.column(c).cast(pa.string()), HIVE_NULL_PARTITION) for c in columns]
    out, covered = {}, 0
    for value in values:
        mask = functools.reduce(pc.and_, [pc.equal(k, v) for k, v in zip(keys, value, strict=True)])
        out[value] = data.filter(mask)
        covered += out[value].num_rows
    if covered != data.num_rows:
        wanted = set(values)
        stray = sorted({v for v in zip(*(k.to_pylist() for k in keys), strict=True) if v not in wanted})
        raise ValueError(f"rows of partitions {stray[:5]} (columns {columns}), which are not being published")
    return out


# ------------------------------------------------------------------------------------------------------ I/O


def _get_table(ms, table: str):
    return get_table(ms, *_split(table))


def missing(tables: list[str]) -> list[str]:
    """The tables of ``tables`` (``db.table``) the catalog does not have (one metastore call per database)."""
    by_db: dict[str, list[str]] = {}
    for table in tables:
        db, tbl = _split(table)
        by_db.setdefault(db, []).append(tbl)
    out = []
    with metastore() as ms:
        for db, names in by_db.items():
            try:
                present = set(ms.get_all_tables(db))
            except (NoSuchObjectException, MetaException):
                present = set()
            out += [f"{db}.{t}" for t in names if t not in present]
    return out


def collect(parent: str, keep: set[str], retention_s: float) -> list[str]:
    """Delete the version directories of ``parent`` not in ``keep`` and older than ``retention_s``, and staging
    leftovers as old (what ``warehouse.HadoopFS.collect`` does, without a JVM)."""
    removed = versions_to_remove(fs.ages_s(parent), keep, retention_s)
    for name in removed:
        fs.delete(fs.join(parent, name))
    staging = fs.join(parent, wh.STAGING)
    for name, age in fs.ages_s(staging).items():
        if age > retention_s:
            fs.delete(fs.join(staging, name))
            removed.append(f"{wh.STAGING}/{name}")
    return removed


def _read_file(uri: str, columns: list[str] | None) -> pa.Table:
    """One Parquet file, only the columns named (lower-case) that it has."""
    source = fs.local_path(uri) if urlparse(uri).scheme in ("", "file") else io.BytesIO(fs.read_bytes(uri))
    parquet = pq.ParquetFile(source)
    names = parquet.schema_arrow.names
    wanted = None if columns is None else [n for n in names if n.lower() in columns]
    return parquet.read(columns=wanted)


def _read_location(location: str, schema: pa.Schema) -> list[pa.Table]:
    """The data files of a version directory (names starting with ``_`` or ``.`` are not data, as for Hadoop),
    each as ``schema``."""
    files = [fs.join(location, n) for n in fs.listdir(location) if not n.startswith(("_", "."))]
    return [conform(_read_file(f, schema.names), schema) for f in files]


def _with_partition(data: pa.Table, columns: pa.Schema, values: list[str]) -> pa.Table:
    """A partition's rows with its partition values as columns (Hive's null partition value as null)."""
    for field, value in zip(columns, values, strict=True):
        column = pa.array([None if value == HIVE_NULL_PARTITION else value] * len(data), pa.string())
        data = data.append_column(field, column.cast(field.type))
    return data


def _values(value: PartitionValue) -> tuple[str, ...]:
    """A partition's values as a tuple, whether given as one string or a tuple."""
    return (value,) if isinstance(value, str) else tuple(value)


def read_arrow(table: str, partitions: list[PartitionValue] | None = None,
               columns: list[str] | None = None) -> pa.Table:
    """The live rows of ``table`` (``db.table``) as Arrow, in its declared schema (partition columns last, as
    Spark reads them): of the whole table, or of the partitions ``partitions`` (values as strings, a tuple per
    partition for several partition columns; absent ones give no rows); ``columns`` to read fewer."""
    data_schema, part_schema = schemas(table)
    schema = pa.schema([*data_schema, *part_schema])
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    file_schema = pa.schema([f for f in schema if f.name not in part_schema.names])
    db, tbl = _split(table)
    with metastore() as ms:
        meta = _get_table(ms, table)
        if not part_schema:
            located = [(meta.sd.location, [])]
        elif partitions is None:
            located = [(p.sd.location, p.values) for p in ms.get_partitions(db, tbl, -1)]
        else:
            names = [partition_name(part_schema.names, _values(v)) for v in partitions]
            located = [(p.sd.location, p.values) for p in ms.get_partitions_by_names(db, tbl, names)] if names else []
    pieces = []
    for location, values in located:
        for data in _read_location(location, file_schema):
            full = _with_partition(data, part_schema, values) if part_schema else data
            pieces.append(full.select(schema.names))
    return pa.concat_tables(pieces) if pieces else schema.empty_table()


def read(table: str, partitions: list[PartitionValue] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """``read_arrow`` as pandas (``to_pandas``)."""
    return to_pandas(read_arrow(table, partitions, columns))


def _write_version(location: str, data: pa.Table, state: dict | None) -> None:
    """One Parquet file (snappy, as Spark writes) and the optional state into a new version directory."""
    uri = fs.join(location, f"part-00000-{uuid.uuid4()}-c000.snappy.parquet")
    if urlparse(uri).scheme == "hdfs":
        buffer = pa.BufferOutputStream()
        pq.write_table(data, buffer, compression="snappy")
        client = fs.webhdfs(uri).client
        client.makedirs(urlparse(location).path)
        client.write(urlparse(uri).path, data=buffer.getvalue().to_pybytes(), overwrite=False)
    else:
        os.makedirs(fs.local_path(location), exist_ok=True)
        pq.write_table(data, fs.local_path(uri), compression="snappy")
    if state is not None:
        fs.write_json(fs.join(location, wh.STATE_FILE), state)


def replace_table(rows: pd.DataFrame | pa.Table, table: str, state: dict | None = None) -> str:
    """Publish ``rows`` as the whole content of the unpartitioned ``table``: a new version, then one
    ``alter_table`` to its location (``warehouse.replace_table`` without Spark). Returns the location."""
    data_schema, part_schema = schemas(table)
    if part_schema:
        raise ValueError(f"{wh.name(table)} is partitioned: publish it with replace_partition")
    data = to_arrow(rows, data_schema)
    root = wh.table_root(table)
    location = fs.join(root, wh.new_version())
    _write_version(location, data, state)
    crash.point("publish.written")
    db, tbl = _split(table)
    with metastore() as ms:
        meta = _get_table(ms, table)
        meta.sd.location = hadoop_location(location)
        ms.alter_table(db, tbl, meta)
    crash.point("publish.swapped")
    wh._point_to(root, location)
    collect(root, {location.rsplit("/", 1)[-1]}, config.warehouse().gc_retention_s)
    log.info("published %s: %d rows at %s", wh.name(table), data.num_rows, location)
    return location


def replace_partitions(pieces: dict[PartitionValue, pd.DataFrame | pa.Table], table: str) -> dict[tuple[str, ...], str]:
    """Publish each of ``pieces`` (partition values as strings -> its rows; partition columns in the rows are
    ignored) as the full content of that partition of ``table``: a new version each, then one ``add_partitions``
    for the new ones and one ``alter_partitions`` for the others, so readers see all of them swapped or none
    (``warehouse.replace_partitions`` without Spark). Returns each partition's location."""
    data_schema, part_schema = schemas(table)
    columns = tuple(part_schema.names)
    by_value = {_values(v): to_arrow(rows, data_schema) for v, rows in pieces.items()}
    wrong = [list(v) for v in by_value if len(v) != len(columns)]
    if wrong or not columns:
        raise ValueError(f"{wh.name(table)} has partition columns {list(columns)}, given {wrong or list(by_value)}")
    if not by_value:
        return {}
    root = wh.table_root(table)
    version = wh.new_version()
    locations = {}
    for values, data in by_value.items():
        locations[values] = fs.join(root, wh._partition_dir(columns, values), version)
        _write_version(locations[values], data, None)
    crash.point("publish.written")
    swap_partitions(*_split(table), list(columns), locations)
    crash.point("publish.swapped")
    retention_s = config.warehouse().gc_retention_s
    for location in locations.values():
        part_dir = location.rsplit("/", 1)[0]
        wh._point_to(part_dir, location)
        collect(part_dir, {version}, retention_s)
    collect(root, set(), retention_s)
    log.info("published %s: %d partition(s), %d rows", wh.name(table), len(by_value),
             sum(d.num_rows for d in by_value.values()))
    return locations


def replace_partition(rows: pd.DataFrame | pa.Table, table: str, value: PartitionValue) -> str:
    """Publish ``rows`` as the full content of one partition of ``table`` (``value``: its partition values as
    strings; partition columns in ``rows`` are ignored). Returns the location."""
    return replace_partitions({value: rows}, table)[_values(value)]


def publish_collected(spark, df, table: str, partitions: list[PartitionValue] | None = None,
                      state: dict | None = None) -> None:
    """Publish a Spark DataFrame whose rows fit in the driver without a Spark write job: collected as Arrow,
    then ``replace_partitions`` (the partitions ``partitions``, by the rows' partition columns) or
    ``replace_table`` (with ``state``); the session's view of ``table`` is refreshed."""
    data = df.toArrow()
    _, part_schema = schemas(table)
    if part_schema:
        values = [_values(v) for v in partitions or []]
        replace_partitions(split_partitions(data, part_schema.names, values), table)
    else:
        replace_table(data, table, state)
    spark.catalog.refreshTable(wh.name(table))


def append(rows: pd.DataFrame, table: str) -> str:
    """Publish the unpartitioned ``table`` with ``rows`` added to its live rows (read, then ``replace_table``)."""
    data_schema, _ = schemas(table)
    return replace_table(pa.concat_tables([read_arrow(table), to_arrow(rows, data_schema)]), table)
