"""The Hive metastore's Thrift API, for catalog calls that need no Spark session (``hmsclient``)."""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from urllib.parse import urlparse

from hmsclient.genthrift.hive_metastore import ThriftHiveMetastore
from hmsclient.genthrift.hive_metastore.ttypes import NoSuchObjectException, Partition
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

from pipeline import config
from pipeline.io import crash

CALL_TIMEOUT_S = 60.0
# up to this many partitions are looked up by name; more are found in one listing of the table's partitions
PARTITION_LOOKUPS = 16
# characters Hive escapes (%XX) in a partition's directory and name
_HIVE_ESCAPED = set('"#%\'*/:=?\\\x7f{[]^')


class MetastoreUnavailable(RuntimeError):
    """The configured Hive metastore cannot be reached; no Spark session falls back to a private catalog."""


class TableMissing(LookupError):
    """A table being read or published is not in the Hive catalog."""


@contextlib.contextmanager
def metastore() -> Iterator[ThriftHiveMetastore.Client]:
    """A connection to the configured Hive metastore (``[metastore] uri``) for the calls of one block;
    ``MetastoreUnavailable`` when it cannot be reached or drops the connection."""
    config.load_profile()
    cfg = config.metastore()
    parsed = urlparse(cfg.uri)
    if parsed.scheme != "thrift" or not parsed.hostname or not parsed.port:
        raise MetastoreUnavailable(f"metastore URI {cfg.uri!r} is not of the form thrift://host:port")
    sock = TSocket.TSocket(parsed.hostname, parsed.port)
    sock.setTimeout(cfg.connect_timeout_s * 1000)
    transport = TTransport.TBufferedTransport(sock)
    try:
        transport.open()
    except TTransport.TTransportException as exc:
        raise MetastoreUnavailable(
            f"Hive metastore at {cfg.uri} is not reachable ({exc}). Start it with `python -m pipeline services "
            "start` (or fix [metastore] uri in luigi.cfg)") from None
    sock.setTimeout(CALL_TIMEOUT_S * 1000)
    try:
        yield ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(transport))
    except (TTransport.TTransportException, ConnectionError, TimeoutError) as exc:
        raise MetastoreUnavailable(f"Hive metastore at {cfg.uri} stopped answering ({exc})") from None
    finally:
        transport.close()


def table_columns(db: str, tables: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """``{table: (data columns, partition columns)}`` of those of ``tables`` the catalog has in ``db``, in one
    metastore call (names as the catalog keeps them: lower case)."""
    if not tables:
        return {}
    with metastore() as ms:
        found = ms.get_table_objects_by_name(db, tables)
    return {t.tableName: ([c.name for c in t.sd.cols], [c.name for c in t.partitionKeys]) for t in found}


def hadoop_location(uri: str) -> str:
    """A location as Hadoop and the metastore write it: ``file:/x`` for ``file:///x``, other URIs unchanged."""
    return re.sub(r"^file:/+", "file:/", uri)


def partition_name(columns: list[str], values: tuple[str, ...]) -> str:
    """The metastore's name of a partition (``c1=v1/c2=v2``, values escaped as Hive escapes directory names)."""
    def escape(value: str) -> str:
        return "".join(f"%{ord(c):02X}" if c in _HIVE_ESCAPED or ord(c) < 0x20 else c for c in value)

    return "/".join(f"{c}={escape(v)}" for c, v in zip(columns, values, strict=True))


def get_table(ms: ThriftHiveMetastore.Client, db: str, table: str):
    """The metastore's record of ``db.table`` (its location, storage and parameters); ``TableMissing`` if none."""
    try:
        return ms.get_table(db, table)
    except NoSuchObjectException:
        raise TableMissing(f"{db}.{table} is not in the Hive catalog; `python -m pipeline run` creates the "
                           "warehouse's tables") from None


def swap_partitions(db: str, table: str, columns: list[str], locations: dict[tuple[str, ...], str]) -> None:
    """Point partitions of ``db.table`` (values as strings -> the URI of their new version) at their locations:
    one ``add_partitions`` for those the catalog does not have, then one ``alter_partitions`` for the others, so
    readers see each call's partitions all at once."""
    if not locations:
        return
    with metastore() as ms:
        meta = get_table(ms, db, table)
        if len(locations) > PARTITION_LOOKUPS:
            listed = ms.get_partitions(db, table, -1)
        else:
            listed = ms.get_partitions_by_names(db, table, [partition_name(columns, v) for v in locations])
        existing = {tuple(p.values): p for p in listed if tuple(p.values) in locations}
        new = []
        for values, location in locations.items():
            if values not in existing:
                sd = copy.deepcopy(meta.sd)
                sd.location = hadoop_location(location)
                new.append(Partition(values=list(values), dbName=db, tableName=table, sd=sd, parameters={}))
        if new:
            ms.add_partitions(new)
            crash.point("publish.partitions_added")
        for values, part in existing.items():
            part.sd.location = hadoop_location(locations[values])
        if existing:
            ms.alter_partitions(db, table, list(existing.values()))
