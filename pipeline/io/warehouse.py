"""Thin I/O for Hive tables: DDL, reads, and atomic publication.

Every write lands in a fresh version directory and is then swapped in with one metastore call
(``ALTER TABLE ... SET LOCATION`` for whole tables, ``ADD PARTITION ... LOCATION`` or
``PARTITION ... SET LOCATION`` for partitions). A reader sees the old or the new data, never a mix, and a
job that reads a table it rewrites never overwrites the files it reads (no ``UNSUPPORTED_OVERWRITE``).

State that says a step was applied travels with the data: ``replace_table(..., state=...)`` writes it as
``_state.json`` inside the new version directory, so the same metastore call publishes both
(``table_state`` reads it back from the live version). After each swap a ``_current`` file in the table
root (or the partition directory) names the live version, so the catalog can be rebuilt from the files
(``pipeline.io.catalog``). A replaced version is deleted only when it is not live and older than
``[warehouse] gc_retention_s``, so queries planned before a swap keep their files.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pipeline import config
from pipeline.io import catalog, crash, fs, metastore_client
from pipeline.schemas import SCHEMAS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

DB = "ecommerce_db"
STATE_FILE = "_state.json"
STAGING = "_staging"
VERSION = re.compile(r"v\d{8}(T\d{12}_[0-9a-f]{6}|_initial)$")

def _split(table: str) -> tuple[str, str]:
    """``db.table`` or a bare ``table`` of ``ecommerce_db``."""
    db, _, tbl = table.rpartition(".")
    return db or DB, tbl


def name(table: str) -> str:
    return ".".join(_split(table))


def table_root(table: str) -> str:
    return catalog.table_location(*_split(table))


def new_version() -> str:
    return f"v{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}_{uuid.uuid4().hex[:6]}"


class SchemaMismatch(RuntimeError):
    """A table exists with other partition columns than this version of the pipeline publishes."""


_checked: set[tuple[str, str]] = set()
_ensured: set[tuple[str, frozenset[str]]] = set()


def forget_checks() -> None:
    """Check the catalog again at the next ``ensure_schema`` (each build of a long-lived process does)."""
    _checked.clear()
    _ensured.clear()


def _check_table(spark: SparkSession, db: str, table: str, spec: dict, data_columns: list[str],
                 partition_columns: list[str]) -> None:
    """Refuse a table partitioned otherwise than its spec; add the spec's columns it lacks (the catalog's
    ``data_columns`` and ``partition_columns``)."""
    expected = catalog.partition_columns(spec)
    if partition_columns != expected:
        raise SchemaMismatch(
            f"{db}.{table} is partitioned by ({', '.join(partition_columns) or 'nothing'}) but this version "
            f"publishes it partitioned by ({', '.join(expected) or 'nothing'}). It is derived data: drop it "
            f"(DROP TABLE {db}.{table}) and remove its markers under <warehouse>/_markers to rebuild it, or start "
            "from a clean state dir (make clean)")
    present = {c.lower() for c in data_columns + partition_columns}
    added = [c for c in re.split(r"\s*,\s*(?![^()]*\))", " ".join(spec["columns"].split()))
             if c and c.split()[0].lower() not in present]
    if added:
        log.info("adding columns to %s.%s: %s", db, table, ", ".join(added))
        spark.sql(f"ALTER TABLE {db}.{table} ADD COLUMNS ({', '.join(added)})")
    _checked.add((db, table))


def catalog_tables(spark: SparkSession, db: str) -> set[str] | None:
    """The tables the catalog has in ``db`` (None: no such database), after refusing a catalog that lost
    published tables (``catalog.CatalogLost``, which names the newest backup to restore)."""
    return catalog.existing_tables(spark, db)


def ensure_schema(spark: SparkSession, db: str = DB) -> None:
    """Create a database of ``SCHEMAS`` and every table of it if missing (idempotent).

    An existing table with other partition columns than its spec is refused with ``SchemaMismatch``;
    columns added to the spec since the table was created are added to it (``ALTER TABLE ADD COLUMNS``).
    A database is checked once per process until ``forget_checks``.
    """
    ensured = (db, frozenset(SCHEMAS[db]))
    if ensured in _ensured:
        return
    existing = catalog_tables(spark, db)
    if existing is None:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {db} LOCATION '{catalog.db_location(db)}'")
        existing = set()
    columns = metastore_client.table_columns(db, [t for t in SCHEMAS[db] if t in existing
                                                  and (db, t) not in _checked])
    for table, spec in SCHEMAS[db].items():
        if (db, table) in _checked and table in existing:
            continue
        if table in columns:
            _check_table(spark, db, table, spec, *columns[table])
            continue
        partition = f"PARTITIONED BY ({spec['partition']})" if "partition" in spec else ""
        root = table_root(f"{db}.{table}")
        location = root if "partition" in spec else fs.join(root, catalog.INITIAL_VERSION)
        grain = spec["grain"].replace("\\", "\\\\").replace("'", "\\'")
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {db}.{table} ({spec['columns']}) COMMENT 'grain: {grain}' "
            f"{partition} STORED AS PARQUET LOCATION '{location}'"
        )
    _ensured.add(ensured)


class HadoopFS:
    """Hadoop FileSystem calls through the JVM (``hdfs://``). A local warehouse (``file://``) is handled by
    this process with the same semantics: a backfill publishes thousands of partitions, and each call
    through the JVM is a round trip."""

    def __init__(self, spark: SparkSession):
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()

    def _fs(self, path):
        return path.getFileSystem(self._conf)

    def path(self, uri: str):
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    @staticmethod
    def _local(uri: str) -> str | None:
        return fs.local_path(uri) if urlparse(uri).scheme in ("", "file") else None

    def exists(self, uri: str) -> bool:
        if (local := self._local(uri)) is not None:
            return os.path.lexists(local)
        p = self.path(uri)
        return self._fs(p).exists(p)

    def mkdirs(self, uri: str) -> None:
        if (local := self._local(uri)) is not None:
            os.makedirs(local, exist_ok=True)
            return
        p = self.path(uri)
        self._fs(p).mkdirs(p)

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, which must not exist."""
        if (local := self._local(src)) is not None:
            target = fs.local_path(dst)
            if os.path.lexists(target):
                raise OSError(f"rename {src} -> {dst} failed: the destination exists")
            os.rename(local, target)
            return
        s, d = self.path(src), self.path(dst)
        if not self._fs(s).rename(s, d):
            raise OSError(f"rename {src} -> {dst} failed")

    def children(self, uri: str) -> list[str]:
        if self._local(uri) is not None:
            return fs.listdir(uri)
        p = self.path(uri)
        fsys = self._fs(p)
        if not fsys.exists(p):
            return []
        return sorted(st.getPath().getName() for st in fsys.listStatus(p))

    def delete(self, uri: str) -> None:
        """Delete a file or a directory with its content; nothing when it does not exist."""
        if self._local(uri) is not None:
            fs.delete(uri)
            return
        p = self.path(uri)
        self._fs(p).delete(p, True)

    def ages_s(self, uri: str) -> dict[str, float]:
        """Seconds since each child of ``uri`` was last modified, by the file system's clock. A local directory
        is listed by this process (a table's root holds a child per partition: through the JVM, that is three
        calls per child)."""
        if self._local(uri) is not None:
            return fs.ages_s(uri)
        p = self.path(uri)
        fsys = self._fs(p)
        if not fsys.exists(p):
            return {}
        now_ms = dt.datetime.now(dt.UTC).timestamp() * 1000
        return {st.getPath().getName(): (now_ms - st.getModificationTime()) / 1000 for st in fsys.listStatus(p)}

    def collect(self, parent: str, keep: set[str], retention_s: float) -> list[str]:
        """Delete the version directories of ``parent`` not in ``keep`` and older than ``retention_s``, and
        staging leftovers as old."""
        removed = []
        for child, age in self.ages_s(parent).items():
            if VERSION.match(child) and child not in keep and age > retention_s:
                self.delete(fs.join(parent, child))
                removed.append(child)
        staging = fs.join(parent, STAGING)
        for child, age in self.ages_s(staging).items():
            if age > retention_s:
                self.delete(fs.join(staging, child))
                removed.append(f"{STAGING}/{child}")
        return removed


def _version_of(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


def _point_to(parent: str, location: str) -> None:
    fs.write_text(fs.join(parent, catalog.POINTER), _version_of(location) + "\n")


def table_location(spark: SparkSession, table: str) -> str:
    """Where the catalog says ``table`` lives now (one metastore call)."""
    db, tbl = _split(table)
    return str(spark._jsparkSession.sessionState().catalog().externalCatalog().getTable(db, tbl).location())


def table_state(spark: SparkSession, table: str) -> dict:
    """The state published with the live version of ``table`` (``replace_table(..., state=...)``), or {}."""
    uri = fs.join(table_location(spark, table), STATE_FILE)
    return fs.read_json(uri) if fs.target(uri).exists() else {}


def replace_table(spark: SparkSession, df: DataFrame, table: str, state: dict | None = None) -> str:
    """Publish ``df`` as the whole content of ``table``: write a new version, then swap its location.

    ``state`` (JSON) is written into the version before the swap, so it is published with the data.
    """
    root = table_root(table)
    location = fs.join(root, new_version())
    df.write.mode("errorifexists").parquet(location)
    if state is not None:
        fs.write_json(fs.join(location, STATE_FILE), state)
    crash.point("publish.written")
    spark.sql(f"ALTER TABLE {name(table)} SET LOCATION '{location}'")
    crash.point("publish.swapped")
    _point_to(root, location)
    HadoopFS(spark).collect(root, {_version_of(location)}, config.warehouse().gc_retention_s)
    return location


PartitionValue = str | tuple[str, ...]


def _partition_dir(columns: tuple[str, ...], value: tuple[str, ...]) -> str:
    return "/".join(f"{c}={v}" for c, v in zip(columns, value, strict=True))


def replace_partitions(
    spark: SparkSession, df: DataFrame, table: str, column: str | tuple[str, ...], values: list[PartitionValue]
) -> None:
    """Publish ``df`` as the full content of the partitions ``values`` of ``table`` (others untouched).

    ``column`` is the partition column, or a tuple of them with tuple ``values``. Each partition gets a new
    version directory; new partitions are added and existing ones swapped with one metastore call each. A
    value without rows becomes an empty partition.
    """
    if not values:
        return
    columns = (column,) if isinstance(column, str) else tuple(column)
    tuples = [(v,) if isinstance(v, str) else tuple(v) for v in values]
    hfs = HadoopFS(spark)
    version = new_version()
    staging = fs.join(table_root(table), "_staging", version)
    df.write.partitionBy(*columns).mode("errorifexists").parquet(staging)
    locations = {}
    for value in tuples:
        part_dir = fs.join(table_root(table), _partition_dir(columns, value))
        target = fs.join(part_dir, version)
        hfs.mkdirs(part_dir)
        src = fs.join(staging, _partition_dir(columns, value))
        if hfs.exists(src):
            hfs.rename(src, target)
        else:
            hfs.mkdirs(target)
        locations[value] = target
    hfs.delete(staging)
    crash.point("publish.written")
    metastore_client.swap_partitions(*_split(table), list(columns), locations)
    spark.catalog.refreshTable(name(table))
    crash.point("publish.swapped")
    retention_s = config.warehouse().gc_retention_s
    for v in tuples:
        part_dir = fs.join(table_root(table), _partition_dir(columns, v))
        _point_to(part_dir, locations[v])
        hfs.collect(part_dir, {version}, retention_s)
    hfs.collect(table_root(table), set(), retention_s)


def live_locations(spark: SparkSession, table: str) -> list[str]:
    """Every location the metastore points at for ``table``: the table's and each partition's."""
    db, tbl = _split(table)
    external = spark._jsparkSession.sessionState().catalog().externalCatalog()
    meta = external.getTable(db, tbl)
    if meta.partitionColumnNames().isEmpty():
        return [str(meta.location())]
    partitions = external.listPartitions(db, tbl, getattr(spark._jvm, "scala.Option").apply(None)).iterator()
    out = []
    while partitions.hasNext():
        out.append(str(partitions.next().location()))
    return out


def collect_garbage(spark: SparkSession, retention_s: float) -> dict[str, int]:
    """Delete every version directory, of every table and partition, that the metastore does not point at
    and that is older than ``retention_s``, and staging leftovers as old. Returns removals per table.

    Only tables the catalog has are collected, and a catalog that lost published tables is refused
    (``CatalogLost``): without it every version would look unreferenced."""
    hfs = HadoopFS(spark)
    removed: dict[str, int] = {}
    for db, tables in SCHEMAS.items():
        existing = catalog_tables(spark, db)
        for table in sorted(set(tables) & (existing or set())):
            qualified = f"{db}.{table}"
            live = {catalog.normal_location(loc) for loc in live_locations(spark, qualified)}
            parents: dict[str, str | None] = {catalog.normal_location(table_root(qualified)): None}
            for loc in live:
                parents[loc.rsplit("/", 1)[0]] = _version_of(loc)
            root = catalog.normal_location(table_root(qualified))
            columns = catalog.partition_columns(tables[table])
            for relative in catalog.walk_partitions(root, columns) if columns else ():
                parents.setdefault(fs.join(root, relative), None)
            count = 0
            for parent, version in parents.items():
                pointer = catalog.read_pointer(parent)  # never delete what the pointer names either
                keep = {version, pointer and _version_of(pointer)} - {None}
                count += len(hfs.collect(parent, keep, retention_s))
            if count:
                removed[qualified] = count
    return removed


def read(spark: SparkSession, table: str) -> DataFrame:
    return spark.table(name(table))
