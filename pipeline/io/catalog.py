"""The metastore catalog against the warehouse files: refusing to run on a lost catalog, rebuilding it.

The warehouse files are the truth: every publication ends with a ``_current`` pointer naming the live
version directory, in the table root (unpartitioned tables) or in each partition directory
(``<col>=<val>/_current``, nested for several partition columns). A catalog that has lost a database or a
table whose files carry such a pointer is *lost*, not *new*: creating empty tables over it would answer
every query with nothing while the markers say the work is done. ``refuse_if_lost`` stops that;
``rebuild`` registers every table and partition again at its live version.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from pipeline import config
from pipeline.io import backup_store, fs
from pipeline.schemas import SCHEMAS, partition_names

log = logging.getLogger(__name__)

POINTER = "_current"
INITIAL_VERSION = "v00000000_initial"
MARKERS = "_markers"
ADD_PARTITIONS_BATCH = 200
_VERSION_NAME = re.compile(r"v[\w.-]+")


class CatalogLost(RuntimeError):
    """The warehouse has published data and markers, but the catalog does not know its tables."""


# ---------------------------------------------------------------------------------------------- pure logic


def partition_columns(spec: dict) -> list[str]:
    """The partition column names of a table spec, in order (empty for an unpartitioned table)."""
    return partition_names(spec)


def parse_pointer(text: str) -> str:
    """The version directory a ``_current`` file names (one line, e.g. ``v20261127T171624123456_ab12cd``)."""
    name = text.strip()
    if not _VERSION_NAME.fullmatch(name):
        raise ValueError(f"not a version directory name: {text[:80]!r}")
    return name


def partition_values(relative: str, columns: list[str]) -> tuple[str, ...] | None:
    """Partition values of a partition directory path relative to the table root (``c1=v1/c2=v2``), in the
    order of ``columns``; None when the path is not a partition directory of exactly those columns.
    Values are unescaped the way Hive escapes them in directory names (``%3A`` -> ``:``)."""
    parts = relative.strip("/").split("/")
    if len(parts) != len(columns):
        return None
    values = []
    for part, column in zip(parts, columns, strict=True):
        key, sep, value = part.partition("=")
        if not sep or key != column:
            return None
        values.append(unquote(value))
    return tuple(values)


def partition_spec(columns: list[str], values: tuple[str, ...]) -> str:
    """The ``PARTITION (...)`` clause body for one partition (values quoted; Hive casts them to the type)."""
    return ", ".join(f"{c}='{_sql_string(v)}'" for c, v in zip(columns, values, strict=True))


def same_location(a: str | None, b: str | None) -> bool:
    """Whether two locations name the same directory (the metastore writes ``file:/x`` for ``file:///x``)."""
    if a is None or b is None:
        return a is b
    return normal_location(a) == normal_location(b)


def normal_location(location: str) -> str:
    """A location as one string whether written ``file:/x`` (Hadoop's form) or ``file:///x``."""
    return re.sub(r"^file:/+", "file:///", location).rstrip("/")


def _sql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def create_table_sql(db: str, table: str, spec: dict, location: str) -> str:
    """The DDL ``warehouse.ensure_schema`` creates a table with: columns, grain comment, partitioning, Parquet."""
    partition = f"PARTITIONED BY ({spec['partition']})" if "partition" in spec else ""
    grain = _sql_string(spec["grain"])
    return (f"CREATE TABLE IF NOT EXISTS {db}.{table} ({spec['columns']}) COMMENT 'grain: {grain}' "
            f"{partition} STORED AS PARQUET LOCATION '{location}'")


@dataclass
class LiveTable:
    """Where a table's published data lives according to its ``_current`` pointers."""

    db: str
    table: str
    root: str
    columns: list[str]
    location: str | None = None
    partitions: dict[tuple[str, ...], str] = field(default_factory=dict)
    unpublished: int = 0
    dangling: list[str] = field(default_factory=list)

    @property
    def published(self) -> bool:
        return self.location is not None or bool(self.partitions)


def plan_partitions(live: dict[tuple[str, ...], str],
                    registered: dict[tuple[str, ...], str]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Which live partitions the catalog lacks (to add) and which it has at another location (to move)."""
    add = sorted(v for v in live if v not in registered)
    move = sorted(v for v in live if v in registered and not same_location(live[v], registered[v]))
    return add, move


def batches(items: list, size: int) -> list[list]:
    """``items`` in consecutive chunks of at most ``size``."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def lost_message(db: str, missing: list[str], evidence: str, newest_backup: str | None) -> str:
    """What an operator reads when a catalog is refused: what is missing, the proof, and the two ways out."""
    what = f"database {db}" if not missing else f"table(s) {', '.join(f'{db}.{t}' for t in missing)}"
    restore = (f"`python -m pipeline restore {newest_backup}` (newest catalog backup, then re-pointed at the "
               "live versions)" if newest_backup else "`python -m pipeline restore <backup>` (no backup found "
               "under the state dir's backups/)")
    return (f"Hive catalog lost: the metastore has no {what}, but {evidence}. Refusing to create empty tables "
            f"over published data. Recover with {restore}, or rebuild the catalog from the warehouse files: "
            "`python -m pipeline catalog rebuild`. If the data was dropped on purpose, delete its directory "
            "(and its markers) before running again.")


# ------------------------------------------------------------------------------------------------------ I/O


def _spec(db: str, table: str) -> dict:
    return SCHEMAS[db][table]


def db_location(db: str) -> str:
    """Where a database's tables live: ``<warehouse>/<db>.db``."""
    return fs.join(config.warehouse().uri, f"{db}.db")


def table_location(db: str, table: str) -> str:
    """A table's root: its ``_current`` pointer (or its partitions' directories) and its versions are under it."""
    return fs.join(db_location(db), table)


def _has_pointer(uri: str, depth: int) -> bool:
    """Whether ``uri`` holds a ``_current`` pointer, or (``depth`` partition levels) any directory under it."""
    if depth == 0:
        return fs.target(fs.join(uri, POINTER)).exists()
    return any(_has_pointer(fs.join(uri, child), depth - 1) for child in fs.listdir(uri) if "=" in child)


def _published_tables(db: str, tables: list[str]) -> list[str]:
    """Tables of ``tables`` whose root holds a ``_current`` pointer anywhere (one listing of the db directory,
    then only the roots that exist; a partitioned table stops at its first published partition)."""
    present = set(fs.listdir(db_location(db)))
    out = []
    for table in tables:
        if table in present and _has_pointer(table_location(db, table), len(partition_columns(_spec(db, table)))):
            out.append(table)
    return out


def refuse_if_lost(spark, db: str, existing_tables: set[str] | None) -> None:
    """Raise ``CatalogLost`` when ``db`` (or one of its tables) is missing from the catalog while the
    warehouse holds published versions of it. ``existing_tables`` is None when the database is missing. The
    message names the newest backup to restore (``backup_store.newest_name``)."""
    tables = list(SCHEMAS[db])
    missing = tables if existing_tables is None else [t for t in tables if t not in existing_tables]
    if not missing:
        return
    published = _published_tables(db, missing)
    if published:
        shown = ", ".join(published[:5]) + (f" and {len(published) - 5} more" if len(published) > 5 else "")
        evidence = (f"the warehouse holds published versions of {shown} under {db_location(db)} "
                    f"(`{POINTER}` pointers)")
        raise CatalogLost(lost_message(db, [] if existing_tables is None else published, evidence,
                                       backup_store.newest_name()))
    if existing_tables is not None:
        return
    markers = fs.join(config.warehouse().uri, MARKERS)
    if not fs.listdir(markers):
        return
    databases = {r[0] for r in spark.sql("SHOW DATABASES").collect()}
    if databases & set(SCHEMAS):
        return
    evidence = f"Luigi markers under {markers} say work was done and no database of the pipeline is in the catalog"
    raise CatalogLost(lost_message(db, [], evidence, backup_store.newest_name()))


def walk_partitions(uri: str, columns: list[str], prefix: str = ""):
    """Relative paths of the partition directories under a table root (``c1=v1[/c2=v2]``)."""
    level = prefix.count("/") + (1 if prefix else 0)
    for child in fs.listdir(uri):
        if "=" not in child or not child.startswith(f"{columns[level]}="):
            continue
        rel = f"{prefix}/{child}" if prefix else child
        if level + 1 == len(columns):
            yield rel
        else:
            yield from walk_partitions(fs.join(uri, child), columns, rel)


def read_pointer(parent: str) -> str | None:
    """The live version directory of a table root or partition directory, None when never published."""
    target = fs.join(parent, POINTER)
    if not fs.target(target).exists():
        return None
    try:
        return fs.join(parent, parse_pointer(fs.read_text(target)))
    except ValueError as exc:
        raise CatalogLost(f"{target}: {exc}; fix or delete the pointer, then rebuild again") from None


def live_table(db: str, table: str) -> LiveTable:
    """Read the ``_current`` pointers of one table of ``SCHEMAS``."""
    return scan(db, table, table_location(db, table), partition_columns(_spec(db, table)))


def scan(db: str, table: str, root: str, columns: list[str]) -> LiveTable:
    """Read the ``_current`` pointers under a table root: the root's own (unpartitioned, ``columns`` empty) or
    every partition directory's. Partitions without a pointer were never published and are counted apart."""
    live = LiveTable(db, table, root, columns)
    if not live.columns:
        live.location = read_pointer(root)
        if live.location and not fs.target(live.location).exists():
            live.dangling.append(live.location)
        return live
    for rel in walk_partitions(root, live.columns):
        values = partition_values(rel, live.columns)
        location = read_pointer(fs.join(root, rel)) if values else None
        if location is None:
            live.unpublished += 1
            continue
        if not fs.target(location).exists():
            live.dangling.append(location)
        live.partitions[values] = location
    return live


def _external_catalog(spark):
    return spark._jsparkSession.sessionState().catalog().externalCatalog()


def _registered_partitions(spark, db: str, table: str, columns: list[str]) -> dict[tuple[str, ...], str]:
    """Partition values -> location as the catalog has them (one metastore call)."""
    jvm = spark._jvm
    parts = _external_catalog(spark).listPartitions(db, table, jvm.scala.Option.empty())
    out = {}
    for part in jvm.scala.jdk.javaapi.CollectionConverters.asJava(parts):
        spec = part.spec()
        values = tuple(str(spec.apply(c)) for c in columns)
        out[values] = str(part.location())
    return out


def _rebuild_table(spark, live: LiveTable, existing: set[str]) -> dict:
    """Register one table at its live version(s); an existing table is re-pointed where it differs."""
    db, table = live.db, live.table
    counts = {"created": 0, "repointed": 0, "partitions_added": 0, "partitions_repointed": 0}
    spec = _spec(db, table)
    if table not in existing:
        location = live.root if live.columns else (live.location or fs.join(live.root, INITIAL_VERSION))
        spark.sql(create_table_sql(db, table, spec, location))
        counts["created"] = 1
        registered: dict[tuple[str, ...], str] = {}
    elif not live.columns:
        current = str(_external_catalog(spark).getTable(db, table).location())
        if live.location and not same_location(current, live.location):
            spark.sql(f"ALTER TABLE {db}.{table} SET LOCATION '{live.location}'")
            counts["repointed"] = 1
        registered = {}
    else:
        registered = _registered_partitions(spark, db, table, live.columns)
    if not live.columns:
        return counts
    add, move = plan_partitions(live.partitions, registered)
    for chunk in batches(add, ADD_PARTITIONS_BATCH):
        specs = " ".join(f"PARTITION ({partition_spec(live.columns, v)}) LOCATION '{live.partitions[v]}'"
                         for v in chunk)
        spark.sql(f"ALTER TABLE {db}.{table} ADD IF NOT EXISTS {specs}")
    for values in move:
        spark.sql(f"ALTER TABLE {db}.{table} PARTITION ({partition_spec(live.columns, values)}) "
                  f"SET LOCATION '{live.partitions[values]}'")
    counts["partitions_added"], counts["partitions_repointed"] = len(add), len(move)
    return counts


def rebuild(spark) -> dict:
    """Register every database, table and partition of ``SCHEMAS`` again at the live versions the
    ``_current`` pointers name (idempotent: a healthy catalog is left as it is). Holds the warehouse lock,
    so no writer publishes meanwhile. Returns what it did, per kind and in total."""
    from pipeline.io.lock import warehouse_lock

    t0 = time.monotonic()
    totals = {"databases": 0, "tables": 0, "published_tables": 0, "partitions": 0, "created": 0,
              "repointed": 0, "partitions_added": 0, "partitions_repointed": 0, "unpublished_partitions": 0}
    dangling: list[str] = []
    with warehouse_lock("catalog rebuild"):
        for db, tables in SCHEMAS.items():
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {db} LOCATION '{db_location(db)}'")
            existing = {r.tableName for r in spark.sql(f"SHOW TABLES IN {db}").collect()}
            totals["databases"] += 1
            for table in tables:
                live = live_table(db, table)
                counts = _rebuild_table(spark, live, existing)
                for key, n in counts.items():
                    totals[key] += n
                totals["tables"] += 1
                totals["published_tables"] += int(live.published)
                totals["partitions"] += len(live.partitions)
                totals["unpublished_partitions"] += live.unpublished
                dangling += live.dangling
                log.info("catalog rebuild %s.%s: %s", db, table, counts)
    totals["seconds"] = round(time.monotonic() - t0, 1)
    if dangling:
        log.warning("catalog rebuild: %d pointer(s) name a missing version directory, e.g. %s",
                    len(dangling), dangling[0])
    totals["dangling_pointers"] = dangling
    return totals


def existing_tables(spark, db: str) -> set[str] | None:
    """The tables the catalog has in ``db`` (None: no such database), after refusing a catalog that lost
    published tables (``refuse_if_lost``)."""
    databases = {r[0] for r in spark.sql("SHOW DATABASES").collect()}
    existing = {r.tableName for r in spark.sql(f"SHOW TABLES IN {db}").collect()} if db in databases else None
    refuse_if_lost(spark, db, existing)
    return existing


def check(spark) -> dict:
    """Refuse (``CatalogLost``) when any database of ``SCHEMAS`` is lost; otherwise the tables it has."""
    return {db: sorted(existing_tables(spark, db) or []) for db in SCHEMAS}
