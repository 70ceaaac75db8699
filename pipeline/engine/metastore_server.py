"""Hive metastore Thrift service bound to one address (Hive 2.3's own launcher always binds 0.0.0.0).

Runs as ``python -m pipeline.engine.metastore_server --host 127.0.0.1 --port 9083 --conf-dir DIR``: starts a JVM
with the Hive 2.3 jars of the pyspark wheel and ``hive-site.xml`` from ``DIR`` on the class path, builds the
same handler and Thrift server as ``HiveMetaStore.startMetaStore`` (binary protocol, unframed, UGI-aware
processor) on a server socket bound to ``--host``, and serves until the process is stopped. This process
drives that JVM through a py4j gateway on 127.0.0.1 that requires a random per-process auth token
(:func:`start_gateway`).

Online backup of a Derby catalog: embedded Derby admits one JVM, so the backup runs inside this one. A client
writes ``<id>.request`` (JSON ``{"target": "<dir>"}``) into the request directory (``--backup-requests``,
default ``backup-requests`` next to the Derby database) and sends SIGUSR1; this process runs
``SYSCS_UTIL.SYSCS_BACKUP_DATABASE(target)`` over a JDBC connection of its own JVM (the database is copied,
consistent, to ``<target>/<database name>`` while the metastore keeps serving) and answers with
``<id>.done`` (JSON) or ``<id>.error`` (one line). ``responder.pid`` in that directory names the process
that answers, so a client never signals a server that would not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import zipfile
from pathlib import Path

from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

RESPONDER_PID = "responder.pid"  # written once SIGUSR1 answers backup requests (an older server would die of it)
DB_PASSWORD_ENV = "ECOM_METASTORE_DB_PASSWORD"  # pipeline.config.METASTORE_DB_PASSWORD_ENV (no import: no luigi here)


def model_classes(jar_dir: str) -> list[str]:
    """The persistent classes of the metastore (``package.jdo`` in the Hive metastore jar)."""
    jar = next(Path(jar_dir).glob("hive-metastore-*.jar"))
    with zipfile.ZipFile(jar) as zf:
        jdo = zf.read("package.jdo").decode()
    package = re.search(r'<package name="([^"]+)"', jdo).group(1)
    return [f"{package}.{name}" for name in re.findall(r'<class name="(\w+)"', jdo)]


def create_schema(gateway: JavaGateway, conf, jar_dir: str) -> None:
    """Every metastore table at once, in one thread, before the first request. Left to itself DataNucleus
    creates tables lazily while serving, and on PostgreSQL a table created for one request (adding a foreign
    key) waits for another request's open transaction, which waits for it: the metastore hangs. Existing
    tables are left as they are."""
    names = model_classes(jar_dir)
    store = gateway.jvm.org.apache.hadoop.hive.metastore.ObjectStore()
    store.setConf(conf)
    context = store.getPersistenceManager().getPersistenceManagerFactory().getNucleusContext()
    classes = gateway.new_array(gateway.jvm.java.lang.String, len(names))
    for i, name in enumerate(names):
        classes[i] = name
    context.getStoreManager().manageClasses(context.getClassLoaderResolver(None), classes)
    store.shutdown()
    print(f"metastore schema: {len(names)} persistent classes managed", flush=True)


def derby_database(url: str) -> str | None:
    """The database path of an embedded Derby JDBC URL (``jdbc:derby:;databaseName=/x/metastore_db;...`` or
    ``jdbc:derby:/x/metastore_db;...``), None for any other database."""
    if not url.startswith("jdbc:derby:"):
        return None
    body = url[len("jdbc:derby:"):]
    path, *attrs = body.split(";")
    for attr in attrs:
        key, _, value = attr.partition("=")
        if key.strip() == "databaseName":
            path = value
    return path or None


class BackupResponder:
    """Answers online-backup requests of a Derby catalog from inside the JVM that has it open."""

    def __init__(self, gateway: JavaGateway, database: str, requests_dir: Path):
        self.gateway = gateway
        self.database = database
        self.requests_dir = requests_dir
        self._busy = threading.Lock()

    def signal(self, *_) -> None:
        """SIGUSR1: answer the pending requests in a thread (the main thread is serving)."""
        threading.Thread(target=self.answer_pending, name="derby-backup", daemon=True).start()

    def answer_pending(self) -> None:
        """Run every pending request once, one at a time."""
        with self._busy:
            for request in sorted(self.requests_dir.glob("*.request")):
                self._answer(request)

    def _answer(self, request: Path) -> None:
        """One request: back up, answer with a done or error file, remove the request."""
        stem = request.with_suffix("")
        try:
            target = json.loads(request.read_text())["target"]
            t0 = time.monotonic()
            self.backup(target)
            _write_atomically(stem.with_suffix(".done"), json.dumps(
                {"target": target, "database": self.database, "seconds": round(time.monotonic() - t0, 3)}))
            print(f"metastore backup of {self.database} to {target} done", flush=True)
        except Exception as exc:  # noqa: BLE001  (answered to the client, who reports it)
            message = " ".join(str(exc).split())[:2000] or type(exc).__name__
            _write_atomically(stem.with_suffix(".error"), message)
            print(f"metastore backup failed: {message}", flush=True)
        finally:
            request.unlink(missing_ok=True)

    def backup(self, target: str) -> None:
        """``SYSCS_BACKUP_DATABASE``: a transactionally consistent copy while the database stays online."""
        jvm = self.gateway.jvm
        conn = jvm.java.sql.DriverManager.getConnection(f"jdbc:derby:;databaseName={self.database}")
        try:
            call = conn.prepareCall("CALL SYSCS_UTIL.SYSCS_BACKUP_DATABASE(?)")
            call.setString(1, target)
            call.execute()
            call.close()
        finally:
            conn.close()


def _write_atomically(path: Path, text: str) -> None:
    """Write an answer under a temporary name, then rename it: the client never reads half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def start_gateway(classpath: str, java_opts: list[str]) -> JavaGateway:
    """The metastore's JVM and this process's connection to it. The py4j gateway drives that JVM (any class,
    any method), so it answers only a client with the random token py4j's launcher generates for this JVM
    (``--enable-auth``; handed over on the JVM's stdout, never on a command line or in a file), and py4j's
    launcher binds it to 127.0.0.1 (``GatewayServer.DEFAULT_ADDRESS``). Its port is logged; it is no secret."""
    port, token = launch_gateway(
        classpath=classpath, javaopts=java_opts, die_on_exit=True, enable_auth=True,
        redirect_stdout=sys.stdout, redirect_stderr=sys.stderr,
    )
    gateway = JavaGateway(gateway_parameters=GatewayParameters(
        address="127.0.0.1", port=port, auth_token=token, auto_convert=True))
    print(f"metastore py4j gateway on 127.0.0.1:{port} (auth token required)", flush=True)
    return gateway


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9083)
    parser.add_argument("--conf-dir", required=True)
    parser.add_argument("--jars", required=True, help="directory of the Hive/Spark jars")
    parser.add_argument("--java-opt", action="append", default=[])
    parser.add_argument("--classpath", action="append", default=[], help="extra jar (a JDBC driver)")
    parser.add_argument("--create-schema", action="store_true",
                        help="create every metastore table before serving (PostgreSQL)")
    parser.add_argument("--backup-requests",
                        help="directory of online-backup requests (Derby; default: backup-requests next to the "
                             "database)")
    args = parser.parse_args(argv)

    gateway = start_gateway(":".join([f"{args.jars}/*", args.conf_dir, *args.classpath]), args.java_opt)
    jvm = gateway.jvm
    hive = jvm.org.apache.hadoop.hive
    conf = hive.conf.HiveConf()
    if os.environ.get(DB_PASSWORD_ENV):  # set in the JVM only: never in hive-site.xml or on a command line
        conf.set("javax.jdo.option.ConnectionPassword", os.environ[DB_PASSWORD_ENV])
    if args.create_schema:
        create_schema(gateway, conf, args.jars)
    handler = hive.metastore.HiveMetaStore.newRetryingHMSHandler("embedded metastore", conf, False)
    processor = hive.metastore.TUGIBasedProcessor(handler)
    socket = jvm.org.apache.thrift.transport.TServerSocket(jvm.java.net.InetSocketAddress(args.host, args.port))
    server_args = (
        jvm.org.apache.thrift.server.TThreadPoolServer.Args(socket)
        .processor(processor)
        .transportFactory(hive.thrift.TUGIContainingTransport.Factory())
        .protocolFactory(jvm.org.apache.thrift.protocol.TBinaryProtocol.Factory())
        .minWorkerThreads(5)
        .maxWorkerThreads(200)
    )
    server = jvm.org.apache.thrift.server.TThreadPoolServer(server_args)

    def stop(*_):
        server.stop()
        gateway.shutdown()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    database = derby_database(conf.get("javax.jdo.option.ConnectionURL") or "")
    if database:
        requests_dir = Path(args.backup_requests or Path(database).parent / "backup-requests")
        requests_dir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGUSR1, BackupResponder(gateway, database, requests_dir).signal)
        _write_atomically(requests_dir / RESPONDER_PID, str(os.getpid()))
    print(f"metastore serving on {args.host}:{args.port}", flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
