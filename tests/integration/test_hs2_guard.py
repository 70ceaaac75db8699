"""HiveServer2 is a query service, not a shell; the metastore's py4j gateway answers only its own process.

A stack of its own (metastore, HiveServer2, luigid on ports of their own) with one small table written by the
pipeline's Spark session. Through PyHive, as any anonymous local client would connect, every way found to run
Java or a shell command, ship code or read a local file is refused by the query guard (or, for SQL on files,
does not resolve at all), while the reads the dashboard and the tests make still work. The metastore's JVM is
driven through a py4j gateway: a client without the launcher's auth token is turned away.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from py4j.java_gateway import GatewayParameters, JavaGateway
from pyhive import hive

from pipeline.runtime.query_guard import REFUSED
from tests.integration.conftest import ROOT, separate_stack

pytestmark = pytest.mark.integration

PORTS = {"metastore": 26083, "hiveserver2": 26000, "luigid": 26082}
TABLE = "ecommerce_db.guard_probe"
TEXT_TABLE = "ecommerce_db.guard_text"
HOSTNAME = Path("/etc/hostname")

CREATE_TABLE = f"""
from pipeline.spark import get_spark, stop_spark
spark = get_spark("guard-probe")
spark.sql("CREATE DATABASE IF NOT EXISTS ecommerce_db")
spark.sql("CREATE TABLE {TABLE} USING parquet AS SELECT * FROM VALUES (1, 'a'), (2, 'b') AS t(id, name)")
spark.sql("CREATE TABLE {TEXT_TABLE} (line STRING) STORED AS TEXTFILE")  # a table LOAD DATA could fill
stop_spark()
"""


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    with separate_stack(tmp_path_factory, "guard", PORTS) as stack:
        proc = subprocess.run([sys.executable, "-c", CREATE_TABLE], cwd=ROOT, env=stack.env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        yield stack


def error_of(stack, sql: str, configuration: dict | None = None) -> str:
    """The error HiveServer2 answers ``sql`` with (over a fresh connection, as a new client would)."""
    try:
        conn = hive.connect(host="127.0.0.1", port=stack.ports["hiveserver2"], auth="NOSASL", username="test",
                            configuration=configuration)
        try:
            cur = conn.cursor()
            cur.execute(sql)
            rows = cur.fetchall()
        finally:
            conn.close()
    except hive.OperationalError as exc:
        status = exc.args[0].status
        return status.errorMessage
    raise AssertionError(f"HiveServer2 ran {sql!r}: {rows!r}")


PROBES = {
    "reflect": ("SELECT reflect('java.lang.System', 'getenv', 'HOME')", "reflection functions"),
    "java_method": ("SELECT java_method('java.lang.System', 'getenv', 'HOME')", "reflection functions"),
    "try_reflect": ("SELECT try_reflect('java.lang.System', 'getenv', 'HOME')", "reflection functions"),
    "reflect in a subquery": (f"SELECT id FROM {TABLE} WHERE EXISTS "
                              "(SELECT reflect('java.lang.System', 'getenv', 'HOME'))", "reflection functions"),
    "reflect in a view": ("CREATE TEMPORARY VIEW probe_view AS SELECT reflect('java.lang.System', 'getenv', 'HOME')",
                          "reflection functions"),
    "transform": (f"SELECT TRANSFORM(id) USING 'cat' AS (x) FROM {TABLE}", "script transformation"),
    "transform without a table": ("SELECT TRANSFORM('x') USING 'id' AS (x)", "script transformation"),
    "add jar": ("ADD JAR {jar}", "ADD JAR / ADD FILE / ADD ARCHIVE"),
    "add file": (f"ADD FILE {HOSTNAME}", "ADD JAR / ADD FILE / ADD ARCHIVE"),
    "add archive": ("ADD ARCHIVE {archive}", "ADD JAR / ADD FILE / ADD ARCHIVE"),
    "create function using jar": ("CREATE FUNCTION probe_fn AS 'probe.Udf' USING JAR '{jar}'",
                                  "CREATE FUNCTION"),
    "create temporary function": ("CREATE TEMPORARY FUNCTION probe_fn AS "
                                  "'org.apache.hadoop.hive.ql.udf.generic.GenericUDFReflect'", "CREATE FUNCTION"),
    "load data local": (f"LOAD DATA LOCAL INPATH '{HOSTNAME}' INTO TABLE {TEXT_TABLE}", "LOAD DATA"),
    "set runSQLOnFiles": ("SET spark.sql.runSQLOnFiles=true", "spark.sql.runSQLOnFiles cannot be changed"),
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_probe_is_refused_by_the_guard(guarded, tmp_path, probe):
    jar, archive = tmp_path / "probe.jar", tmp_path / "probe.zip"  # real files: only the guard stops them
    with zipfile.ZipFile(jar, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n\n")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("probe.txt", "probe")
    sql, reason = PROBES[probe]
    error = error_of(guarded, sql.format(jar=jar, archive=archive))
    assert f"{REFUSED}: {reason}" in error, error
    assert "through HiveServer2" in error, error


def test_sql_on_files_does_not_resolve(guarded):
    error = error_of(guarded, f"SELECT * FROM text.`file://{HOSTNAME}`")
    assert "TABLE_OR_VIEW_NOT_FOUND" in error, error


@pytest.mark.parametrize("key", ["set:hiveconf:spark.sql.runSQLOnFiles", "set:hivevar:spark.sql.runSQLOnFiles"])
def test_sql_on_files_cannot_be_switched_on_when_connecting(guarded, key):
    """PyHive's ``configuration`` reaches the session's SQL configuration: such a session runs nothing."""
    error = error_of(guarded, f"SELECT * FROM text.`file://{HOSTNAME}`", configuration={key: "true"})
    assert f"{REFUSED}: spark.sql.runSQLOnFiles must stay false" in error, error


def test_reads_still_work(guarded):
    assert guarded.query("SELECT 1") == [(1,)]
    assert ("ecommerce_db",) in guarded.query("SHOW DATABASES")
    assert ("guard_probe",) in [row[1:2] for row in guarded.query("SHOW TABLES IN ecommerce_db")]
    assert [row[:2] for row in guarded.query(f"DESCRIBE {TABLE}")] == [("id", "int"), ("name", "string")]
    assert guarded.query("SET spark.sql.runSQLOnFiles") == [("spark.sql.runSQLOnFiles", "false")]
    assert guarded.query("SET spark.sql.shuffle.partitions=2") == [("spark.sql.shuffle.partitions", "2")]
    assert guarded.query(f"REFRESH TABLE {TABLE}") == []
    assert guarded.query(f"SELECT id, name FROM {TABLE} ORDER BY id") == [(1, "a"), (2, "b")]
    conn = hive.connect(host="127.0.0.1", port=PORTS["hiveserver2"], auth="NOSASL", username="test")
    try:
        cur = conn.cursor()
        cur.execute("USE ecommerce_db")
        cur.execute("SELECT count(*) FROM guard_probe WHERE name IN ('a', 'b')")
        assert cur.fetchall() == [(2,)]
    finally:
        conn.close()


def listening(pid: int) -> set[tuple[str, int]]:
    """(hex IPv4 local address, port) of the TCP sockets process ``pid`` listens on, read from /proc (a JVM's
    IPv4 sockets show in /proc/net/tcp6 as IPv4-mapped addresses: their last 8 hex digits)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                addr, port = fields[1].split(":")
                found.add((addr[-8:], int(port, 16)))
    return found


def metastore_jvm(stack) -> int:
    """The JVM the metastore launcher (the service's process) started."""
    launcher = int((stack.state / "run" / "metastore.pid").read_text())
    children = [int(pid) for task in Path(f"/proc/{launcher}/task").iterdir()
                for pid in (task / "children").read_text().split()]
    jvms = [pid for pid in children if Path(f"/proc/{pid}/exe").resolve().name == "java"]
    assert len(jvms) == 1, f"metastore launcher {launcher} has children {children}"
    return jvms[0]


def test_metastore_gateway_refuses_a_client_without_the_token(guarded):
    sockets = listening(metastore_jvm(guarded))
    gateways = {(addr, port) for addr, port in sockets if port != PORTS["metastore"]}
    assert len(gateways) == 1, f"the metastore JVM listens on {sockets}"
    ((addr, port),) = gateways
    assert addr == "0100007F", f"the py4j gateway listens on {addr} (0100007F = 127.0.0.1)"
    for params in (GatewayParameters(address="127.0.0.1", port=port),
                   GatewayParameters(address="127.0.0.1", port=port, auth_token="guessed")):
        intruder = JavaGateway(gateway_parameters=params)
        try:
            with pytest.raises(Exception, match="(?i)authenticat"):
                intruder.jvm.java.lang.System.getenv("HOME")
        finally:
            intruder.close()
    # the launcher itself still drives its JVM through the gateway: an online backup of the Derby catalog
    proc = subprocess.run([sys.executable, "-m", "pipeline", "backup"], cwd=ROOT, env=guarded.env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout)["metastore"]["how"] == "online"
