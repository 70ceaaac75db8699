"""Hive metastore Thrift service bound to one address (Hive 2.3's own launcher always binds 0.0.0.0).

Runs as ``python -m pipeline.metastore_server --host 127.0.0.1 --port 9083 --conf-dir DIR``: starts a JVM
with the Hive 2.3 jars of the pyspark wheel and ``hive-site.xml`` from ``DIR`` on the class path, builds the
same handler and Thrift server as ``HiveMetaStore.startMetaStore`` (binary protocol, unframed, UGI-aware
processor) on a server socket bound to ``--host``, and serves until the process is stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import zipfile
from pathlib import Path

from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

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
    args = parser.parse_args(argv)

    gateway_port = launch_gateway(
        classpath=":".join([f"{args.jars}/*", args.conf_dir, *args.classpath]), javaopts=args.java_opt,
        die_on_exit=True,
        redirect_stdout=sys.stdout, redirect_stderr=sys.stderr,
    )
    gateway = JavaGateway(gateway_parameters=GatewayParameters(port=gateway_port, auto_convert=True))
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
    print(f"metastore serving on {args.host}:{args.port}", flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
