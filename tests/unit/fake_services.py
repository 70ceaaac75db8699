"""Stand-ins for the services ``pipeline.io.arrow_tables`` talks to: an in-memory Hive metastore (its Thrift calls)
and a WebHDFS client backed by a local directory (the calls of the ``hdfs`` library the pipeline makes)."""

import contextlib
import os
import shutil
import types
from pathlib import Path

from hmsclient.genthrift.hive_metastore.ttypes import NoSuchObjectException, StorageDescriptor, Table

from pipeline import config
from pipeline.io import arrow_tables, catalog, crash, fs, metastore_client
from pipeline.io import warehouse as wh


class FakeMetastore:
    """Tables and partitions by name; each swap is recorded with the names of the files its location held then,
    crash points in the order they are reached."""

    def __init__(self):
        self.tables: dict[tuple[str, str], Table] = {}
        self.partitions: dict[tuple[str, str, tuple], object] = {}
        self.calls: list[tuple] = []

    def create(self, table: str) -> None:
        """Register ``db.table`` of ``warehouse.SCHEMAS`` as ``warehouse.ensure_schema`` creates it."""
        db, name = table.split(".")
        partitioned = "partition" in wh.SCHEMAS[db][name]
        root = wh.table_root(table)
        location = root if partitioned else f"{root}/v00000000_initial"
        sd = StorageDescriptor(location=metastore_client.hadoop_location(location), cols=[])
        self.tables[(db, name)] = Table(dbName=db, tableName=name, parameters={"EXTERNAL": "TRUE"}, sd=sd)

    def get_table(self, db, table):
        if (db, table) not in self.tables:
            raise NoSuchObjectException(message=f"{db}.{table} table not found")
        return self.tables[(db, table)]

    def get_all_tables(self, db):
        return [t for d, t in self.tables if d == db]

    def alter_table(self, db, table, meta):
        local = meta.sd.location.startswith("file:")
        files = sorted(os.listdir(meta.sd.location.removeprefix("file:"))) if local else None
        self.calls.append(("alter_table", meta.sd.location, files))
        self.tables[(db, table)] = meta

    def add_partitions(self, parts):
        self.calls.append(("add_partitions", [(p.values, p.sd.location) for p in parts]))
        for part in parts:
            self.partitions[(part.dbName, part.tableName, tuple(part.values))] = part

    def alter_partitions(self, db, table, parts):
        self.calls.append(("alter_partitions", [(p.values, p.sd.location) for p in parts]))
        for part in parts:
            self.partitions[(db, table, tuple(part.values))] = part

    def get_partitions_by_names(self, db, table, names):
        columns = catalog.partition_columns(wh.SCHEMAS[db][table])
        return [p for (d, t, v), p in self.partitions.items()
                if (d, t) == (db, table) and metastore_client.partition_name(columns, v) in names]

    def get_partitions(self, db, table, limit):
        return [p for (d, t, _), p in self.partitions.items() if (d, t) == (db, table)]


class FakeWebHdfs:
    """``hdfs://namenode:8020/<path>`` kept in ``root/<path>``: the ``hdfs.InsecureClient`` calls of the pipeline
    (``client``) and Luigi's ``WebHdfsClient.exists``."""

    def __init__(self, root: Path):
        self.root = root
        self.client = self

    def _local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def exists(self, path: str) -> bool:
        return self._local(path).exists()

    def status(self, path: str, strict: bool = True):
        local = self._local(path)
        if not local.exists():
            if strict:
                raise FileNotFoundError(path)
            return None
        return {"type": "DIRECTORY" if local.is_dir() else "FILE", "modificationTime": local.stat().st_mtime * 1000}

    def list(self, path: str, status: bool = False):
        names = sorted(p.name for p in self._local(path).iterdir())
        return [(n, self.status(f"{path}/{n}")) for n in names] if status else names

    def makedirs(self, path: str) -> None:
        self._local(path).mkdir(parents=True, exist_ok=True)

    def write(self, path: str, data, overwrite: bool = False, encoding: str | None = None) -> None:
        local = self._local(path)
        if local.exists() and not overwrite:
            raise FileExistsError(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data.encode(encoding or "utf-8") if isinstance(data, str) else data)

    @contextlib.contextmanager
    def read(self, path: str, encoding: str | None = None):
        with open(self._local(path), "r" if encoding else "rb", encoding=encoding) as fh:
            yield fh

    def delete(self, path: str, recursive: bool = False) -> bool:
        local = self._local(path)
        if local.is_dir():
            shutil.rmtree(local) if recursive else local.rmdir()
        elif local.exists():
            local.unlink()
        return True

    def rename(self, src: str, dst: str) -> None:
        self._local(src).rename(self._local(dst))


def install(monkeypatch, warehouse_dir, tables: list[str], hdfs: bool = False) -> FakeMetastore:
    """A warehouse in ``warehouse_dir`` (``file://``, or ``hdfs://namenode:8020/warehouse`` through
    ``FakeWebHdfs`` with ``hdfs``) whose metastore is a ``FakeMetastore`` holding ``tables``; its lock is a local
    file; crash points are recorded, not fired."""
    uri = "hdfs://namenode:8020/warehouse" if hdfs else warehouse_dir.as_uri()
    if hdfs:
        webhdfs = FakeWebHdfs(warehouse_dir.parent)
        monkeypatch.setattr(fs, "webhdfs", lambda where: webhdfs)
    monkeypatch.setattr(config, "warehouse", lambda: types.SimpleNamespace(
        uri=uri, gc_retention_s=3600.0, lock_timeout_s=2.0, lock_lease_s=120.0))
    fake = FakeMetastore()
    for table in tables:
        fake.create(table)
    for module in (arrow_tables, metastore_client):
        monkeypatch.setattr(module, "metastore", lambda: contextlib.nullcontext(fake))
    monkeypatch.setattr(crash, "point", lambda name: fake.calls.append(("crash", name)))
    return fake
