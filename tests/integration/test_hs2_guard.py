"""HiveServer2 is a query service, not a shell; the metastore's py4j gateway answers only its own process.

A stack of its own (metastore, HiveServer2, luigid on ports of their own) with a few small tables written by the
pipeline's Spark session. Through PyHive, as any anonymous local client would connect, every way found to run
Java or a shell command, ship code, or read or write a local file (SQL on files, data source views, tables and
partitions given a location or a path, INSERT OVERWRITE DIRECTORY, jdbc tables) is refused by the query guard
(or, for SQL on files, does not resolve at all), while the reads the dashboard and the tests make, plain views
and managed tables still work. The metastore's JVM is
driven through a py4j gateway: a client without the launcher's auth token is turned away.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pyhive import hive

from pipeline.engine.query_guard import REFUSED
from tests.gateway import assert_turned_away
from tests.integration.conftest import ROOT, separate_stack

pytestmark = pytest.mark.integration

PORTS = {"metastore": 26083, "hiveserver2": 26000, "luigid": 26082}
TABLE = "ecommerce_db.guard_probe"
TEXT_TABLE = "ecommerce_db.guard_text"
PARTS_TABLE = "ecommerce_db.guard_parts"
HOSTNAME = Path("/etc/hostname")
SECRET = "s3cr3t-contents-of-a-local-file"

@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    with separate_stack(tmp_path_factory, "guard", PORTS) as stack:
        proc = subprocess.run([sys.executable, "-m", "tests.integration.guard_tables"], cwd=ROOT, env=stack.env,
                              capture_output=True, text=True, timeout=600)
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
    # data source DDL that would read or write files of the client's choosing ({out}: a path that must stay absent)
    "table location": ("CREATE TABLE ecommerce_db.probe_t USING text LOCATION 'file:///etc'",
                       "CREATE TABLE with LOCATION"),
    "table with columns location": ("CREATE TABLE ecommerce_db.probe_t (value STRING) USING text LOCATION 'file:///etc'",
                                    "CREATE TABLE with LOCATION"),
    "table path option": (f"CREATE TABLE ecommerce_db.probe_t USING text OPTIONS (path '{HOSTNAME}')",
                          "CREATE TABLE with LOCATION or a path option"),
    "table PATH option": (f"CREATE TABLE ecommerce_db.probe_t (value STRING) USING csv OPTIONS ('PATH' '{HOSTNAME}')",
                          "CREATE TABLE with LOCATION or a path option"),
    "external table location": ("CREATE EXTERNAL TABLE ecommerce_db.probe_t (line STRING) STORED AS TEXTFILE "
                                "LOCATION 'file:///etc'", "CREATE TABLE with LOCATION"),
    "hive table location": ("CREATE TABLE ecommerce_db.probe_t (line STRING) STORED AS TEXTFILE LOCATION '/etc'",
                            "CREATE TABLE with LOCATION"),
    "hive table serde path": ("CREATE TABLE ecommerce_db.probe_t (line STRING) ROW FORMAT SERDE "
                              "'org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe' WITH SERDEPROPERTIES "
                              f"('path'='{HOSTNAME}') STORED AS TEXTFILE", "CREATE TABLE with LOCATION or a path"),
    "table as select location": ("CREATE TABLE ecommerce_db.probe_t USING text LOCATION '{out}' AS SELECT 'x' AS v",
                                 "CREATE TABLE with LOCATION"),
    "hive table as select location": ("CREATE TABLE ecommerce_db.probe_t STORED AS TEXTFILE LOCATION '{out}' "
                                      "AS SELECT 'x' AS v", "CREATE TABLE with LOCATION"),
    "table like location": (f"CREATE TABLE ecommerce_db.probe_t LIKE {TEXT_TABLE} LOCATION 'file:///etc'",
                            "CREATE TABLE with LOCATION"),
    "jdbc table": ("CREATE TABLE ecommerce_db.probe_t USING jdbc OPTIONS "
                   "(url 'jdbc:derby:{out};create=true', dbtable 'SYS.SYSTABLES')", "CREATE TABLE ... USING jdbc"),
    "jdbc table by class": ("CREATE TABLE ecommerce_db.probe_t USING "
                            "org.apache.spark.sql.execution.datasources.jdbc.JdbcRelationProvider OPTIONS "
                            "(url 'jdbc:derby:{out};create=true', dbtable 'SYS.SYSTABLES')",
                            "CREATE TABLE ... USING org.apache.spark.sql.execution.datasources.jdbc"),
    "jdbc table like": (f"CREATE TABLE ecommerce_db.probe_t LIKE {TABLE} USING jdbc", "CREATE TABLE ... USING jdbc"),
    "alter table set location": (f"ALTER TABLE {TEXT_TABLE} SET LOCATION 'file:///etc'",
                                 "ALTER TABLE ... SET LOCATION"),
    "alter partition set location": (f"ALTER TABLE {PARTS_TABLE} PARTITION (p='a') SET LOCATION 'file:///etc'",
                                     "ALTER TABLE ... SET LOCATION"),
    "add partition location": (f"ALTER TABLE {PARTS_TABLE} ADD PARTITION (p='b') LOCATION 'file:///etc'",
                               "ALTER TABLE ... ADD PARTITION ... LOCATION"),
    "add partitions, one with a location": (f"ALTER TABLE {PARTS_TABLE} ADD IF NOT EXISTS PARTITION (p='b') "
                                            "PARTITION (p='c') LOCATION '{out}'",
                                            "ALTER TABLE ... ADD PARTITION ... LOCATION"),
    "serde path property": (f"ALTER TABLE {PARTS_TABLE} SET SERDEPROPERTIES ('Path'='{HOSTNAME}')",
                            "ALTER TABLE ... SET SERDEPROPERTIES ('path' ...)"),
    "database location": ("CREATE DATABASE probe_db LOCATION '{out}'", "CREATE DATABASE ... LOCATION"),
    "alter database location": ("ALTER DATABASE ecommerce_db SET LOCATION '{out}'",
                                "ALTER DATABASE ... SET LOCATION"),
    "insert overwrite directory": (f"INSERT OVERWRITE DIRECTORY '{{out}}' USING text SELECT name FROM {TABLE}",
                                   "INSERT OVERWRITE [LOCAL] DIRECTORY"),
    "insert overwrite local directory": (f"INSERT OVERWRITE LOCAL DIRECTORY '{{out}}' USING csv SELECT * FROM {TABLE}",
                                         "INSERT OVERWRITE [LOCAL] DIRECTORY"),
    "insert overwrite directory path option": ("INSERT OVERWRITE DIRECTORY USING text OPTIONS (path '{out}') "
                                               "SELECT 'x'", "INSERT OVERWRITE [LOCAL] DIRECTORY"),
    "hive insert overwrite local directory": ("INSERT OVERWRITE LOCAL DIRECTORY '{out}' ROW FORMAT DELIMITED "
                                              f"FIELDS TERMINATED BY ',' SELECT * FROM {TABLE}",
                                              "INSERT OVERWRITE [LOCAL] DIRECTORY"),
    "hive insert overwrite directory": ("INSERT OVERWRITE DIRECTORY '{out}' STORED AS TEXTFILE SELECT 'x'",
                                        "INSERT OVERWRITE [LOCAL] DIRECTORY"),
    "insert overwrite directory in execute immediate": (
        "EXECUTE IMMEDIATE 'INSERT OVERWRITE LOCAL DIRECTORY ''{out}'' USING text SELECT ''x'' AS v'",
        "INSERT OVERWRITE [LOCAL] DIRECTORY"),
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_probe_is_refused_by_the_guard(guarded, tmp_path, probe):
    jar, archive = tmp_path / "probe.jar", tmp_path / "probe.zip"  # real files: only the guard stops them
    with zipfile.ZipFile(jar, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n\n")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("probe.txt", "probe")
    out = tmp_path / "out"
    sql, reason = PROBES[probe]
    error = error_of(guarded, sql.format(jar=jar, archive=archive, out=out))
    assert f"{REFUSED}: {reason}" in error, error
    assert "through HiveServer2" in error, error
    assert not out.exists(), f"{probe} wrote {sorted(p.name for p in out.iterdir())}"
    assert guarded.query("SHOW TABLES IN ecommerce_db LIKE 'probe*'") == []
    assert guarded.query("SHOW DATABASES LIKE 'probe*'") == []


VIEWS = {  # a view over a data source, whatever its format: the guard refuses it before the file is looked at
    "text": "CREATE TEMPORARY VIEW probe_file USING text OPTIONS (path '{secret}')",
    "csv": "CREATE TEMPORARY VIEW probe_file USING csv OPTIONS (path '{secret}', header 'false')",
    "json": "CREATE TEMPORARY VIEW probe_file USING json OPTIONS (path '{secret}')",
    "parquet": "CREATE TEMPORARY VIEW probe_file USING parquet OPTIONS (path '{secret}')",
    "orc": "CREATE TEMPORARY VIEW probe_file USING orc OPTIONS (path '{secret}')",
    "with a schema": "CREATE TEMPORARY VIEW probe_file (value STRING) USING text OPTIONS (path '{secret}')",
    "or replace": "CREATE OR REPLACE TEMPORARY VIEW probe_file USING text OPTIONS (path '{secret}')",
    "global": "CREATE GLOBAL TEMPORARY VIEW probe_file USING text OPTIONS (path '{secret}')",
    "temporary table": "CREATE TEMPORARY TABLE probe_file USING text OPTIONS (path '{secret}')",
    "execute immediate": "EXECUTE IMMEDIATE 'CREATE TEMPORARY VIEW probe_file USING text OPTIONS (path ''{secret}'')'",
    "etc hostname": f"CREATE TEMPORARY VIEW probe_file USING text OPTIONS (path '{HOSTNAME}')",
}


@pytest.mark.parametrize("probe", list(VIEWS))
def test_a_view_over_a_local_file_is_refused_and_never_read(guarded, tmp_path, probe):
    secret = tmp_path / "secret.txt"  # readable by HiveServer2 (same user): only the guard stops the view
    secret.write_text(SECRET + "\n")
    conn = hive.connect(host="127.0.0.1", port=PORTS["hiveserver2"], auth="NOSASL", username="test")
    try:
        cur = conn.cursor()  # one session: a temporary view would live as long as it
        with pytest.raises(hive.OperationalError) as refused:
            cur.execute(VIEWS[probe].format(secret=secret))
        error = refused.value.args[0].status.errorMessage
        assert f"{REFUSED}: CREATE TEMPORARY VIEW ... USING a data source is not allowed through HiveServer2" in error
        assert SECRET not in error
        for view in ("probe_file", "global_temp.probe_file"):
            with pytest.raises(hive.OperationalError) as missing:
                cur.execute(f"SELECT * FROM {view}")
                pytest.fail(f"{view} returned {cur.fetchall()!r}")
            error = missing.value.args[0].status.errorMessage
            assert "TABLE_OR_VIEW_NOT_FOUND" in error and SECRET not in error, error
    finally:
        conn.close()


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


def test_plain_views_and_managed_tables_still_work(guarded):
    """What the guard lets through: views over tables, and tables and partitions where the metastore puts them."""
    conn = hive.connect(host="127.0.0.1", port=PORTS["hiveserver2"], auth="NOSASL", username="test")
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TEMPORARY VIEW dashboard_view AS SELECT id, name FROM {TABLE} WHERE id > 1")
        cur.execute("SELECT * FROM dashboard_view")
        assert cur.fetchall() == [(2, "b")]
        cur.execute(f"CREATE OR REPLACE GLOBAL TEMPORARY VIEW dashboard_ids AS SELECT id FROM {TABLE}")
        cur.execute("SELECT * FROM global_temp.dashboard_ids ORDER BY id")
        assert cur.fetchall() == [(1,), (2,)]
        cur.execute(f"CREATE TABLE ecommerce_db.guard_managed USING parquet AS SELECT * FROM {TABLE} WHERE id = 1")
        cur.execute("CREATE TABLE ecommerce_db.guard_managed_hive (line STRING) STORED AS TEXTFILE")
        cur.execute(f"ALTER TABLE {PARTS_TABLE} ADD PARTITION (p='d')")
        cur.execute("SELECT * FROM ecommerce_db.guard_managed")
        assert cur.fetchall() == [(1, "a")]
    finally:
        conn.close()
    location = {row[0]: row[1] for row in guarded.query("DESCRIBE FORMATTED ecommerce_db.guard_managed")}["Location"]
    assert location.startswith(f"file:{guarded.state}"), location  # in the stack's warehouse


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
    assert_turned_away(port)
    # the launcher itself still drives its JVM through the gateway: an online backup of the Derby catalog
    proc = subprocess.run([sys.executable, "-m", "pipeline", "backup"], cwd=ROOT, env=guarded.env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout)["metastore"]["how"] == "online"
