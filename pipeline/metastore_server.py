"""Hive metastore Thrift service bound to one address (Hive 2.3's own launcher always binds 0.0.0.0).

Runs as ``python -m pipeline.metastore_server --host 127.0.0.1 --port 9083 --conf-dir DIR``: starts a JVM
with the Hive 2.3 jars of the pyspark wheel and ``hive-site.xml`` from ``DIR`` on the class path, builds the
same handler and Thrift server as ``HiveMetaStore.startMetaStore`` (binary protocol, unframed, UGI-aware
processor) on a server socket bound to ``--host``, and serves until the process is stopped.
"""

from __future__ import annotations

import argparse
import signal
import sys

from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9083)
    parser.add_argument("--conf-dir", required=True)
    parser.add_argument("--jars", required=True, help="directory of the Hive/Spark jars")
    parser.add_argument("--java-opt", action="append", default=[])
    args = parser.parse_args(argv)

    gateway_port = launch_gateway(
        classpath=f"{args.jars}/*:{args.conf_dir}", javaopts=args.java_opt, die_on_exit=True,
        redirect_stdout=sys.stdout, redirect_stderr=sys.stderr,
    )
    gateway = JavaGateway(gateway_parameters=GatewayParameters(port=gateway_port, auto_convert=True))
    jvm = gateway.jvm
    hive = jvm.org.apache.hadoop.hive
    conf = hive.conf.HiveConf()
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
