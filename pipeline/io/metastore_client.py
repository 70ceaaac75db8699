"""The Hive metastore's Thrift API, for catalog calls that need no Spark session (``hmsclient``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlparse

from hmsclient.genthrift.hive_metastore import ThriftHiveMetastore
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

from pipeline import config
from pipeline.spark import MetastoreUnavailable

CALL_TIMEOUT_S = 60.0


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
