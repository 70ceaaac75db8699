"""The embedded mode with its metastore on PostgreSQL (Debian's ``postgresql`` server and the
``libpostgresql-jdbc-java`` driver) instead of Derby, and luigid's task history in PostgreSQL too (as in the
cluster): a real day ingests through them, and its tables, data and task history are all still there after
the metastore, luigid and PostgreSQL are restarted.

A second stack on its own ports and state dir, beside the session's Derby-backed one.
"""

import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pipeline import config
from pipeline.io import history
from tests.integration.conftest import separate_stack
from tests.integration.realdata import DAYS, source_lines

pytestmark = pytest.mark.integration

PORTS = {"postgres": 15432, "metastore": 19183, "hiveserver2": 20100, "luigid": 18182}
JDBC_JAR = Path("/usr/share/java/postgresql.jar")
HISTORY_URL = f"postgresql://luigi@127.0.0.1:{PORTS['postgres']}/luigi"


def pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.fail("Debian's PostgreSQL server is missing: apt-get install -y postgresql")
    return found[-1].parent


class Postgres:
    """A PostgreSQL server of its own on a loopback port (run as the ``postgres`` user when we are root)."""

    def __init__(self, port: int):
        self.port = port
        self.home = Path(tempfile.mkdtemp(prefix="ecom-pg-"))
        self.data, self.sock = self.home / "data", self.home / "sock"
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres")
            shutil.chown(self.sock, "postgres")

    def _run(self, *argv: str, stdin: str | None = None) -> str:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        proc = subprocess.run([*prefix, *argv], input=stdin, capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise AssertionError(f"{argv[0]} failed: {proc.stderr}")
        return proc.stdout

    def init(self) -> None:
        self._run(str(pg_bin() / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                  "--auth-local=trust", "--auth-host=scram-sha-256")

    def start(self) -> None:
        self._run(str(pg_bin() / "pg_ctl"), "-D", str(self.data), "-l", str(self.home / "postgres.log"), "-w",
                  "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._run(str(pg_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, text: str, db: str = "postgres") -> str:
        psql = pg_bin() / "psql"
        return self._run(str(psql) if psql.exists() else "psql", "-h", str(self.sock), "-p", str(self.port),
                         "-U", "postgres", "-d", db, "-At",
                         "-v", "ON_ERROR_STOP=1", "-f", "-", stdin=text)


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory):
    if not JDBC_JAR.exists():
        pytest.fail(f"{JDBC_JAR} is missing: apt-get install -y libpostgresql-jdbc-java")
    pg = Postgres(PORTS["postgres"])
    pg.init()
    pg.start()
    try:
        password, history_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)  # per run, never stored
        pg.sql(f"CREATE ROLE hive LOGIN PASSWORD '{password}';\nCREATE DATABASE metastore OWNER hive;\n"
               f"CREATE ROLE luigi LOGIN PASSWORD '{history_password}';\nCREATE DATABASE luigi OWNER luigi;\n")
        overlay = (f"[metastore]\ndb = postgresql\ndb_url = jdbc:postgresql://127.0.0.1:{PORTS['postgres']}/metastore\n"
                   f"db_user = hive\njdbc_jar = {JDBC_JAR}\n"
                   f"[sla]\ntask_history_db = {HISTORY_URL}\n")
        with separate_stack(tmp_path_factory, "pg", PORTS, overlay,
                            {config.METASTORE_DB_PASSWORD_ENV: password, "PGPASSWORD": history_password}) as stack:
            yield pg, stack
    finally:
        pg.stop()
        shutil.rmtree(pg.home, ignore_errors=True)


def snapshot(stack) -> dict:
    tables = sorted(t for (_, t, _) in stack.query("SHOW TABLES IN ecommerce_db"))
    audit = stack.query("SELECT sum(rows_received), sum(rows_loaded), sum(rows_quarantined), sum(rows_duplicate) "
                        f"FROM ecommerce_db.batch_audit WHERE feed = 'transactions' "
                        f"AND batch_id LIKE 'tx_{DAYS[0]:%Y%m%d}%'")
    raw = stack.query("SELECT count(*) FROM ecommerce_db.transactions_raw")
    return {"tables": tables, "audit": [tuple(int(v) for v in audit[0])], "raw": raw}


def ingest_runs(monkeypatch, stack) -> list[str]:
    monkeypatch.setenv("PGPASSWORD", stack.env["PGPASSWORD"])  # libpq reads it; the URL has no password
    events = history.events(history.database(HISTORY_URL), dt.datetime(2000, 1, 1))
    return events[(events["task_family"] == "IngestDay")]["event_name"].tolist()


def test_a_real_day_ingests_through_a_postgresql_metastore_and_survives_restarts(pg_stack, monkeypatch):
    pg, stack = pg_stack
    stack.luigi("IngestDay", "--date", str(DAYS[0]))
    runs = ingest_runs(monkeypatch, stack)
    assert runs[-2:] == ["RUNNING", "DONE"]  # recorded by luigid in PostgreSQL
    before = snapshot(stack)
    received, loaded, quarantined, duplicate = before["audit"][0]
    assert received == len(source_lines(DAYS[0])) == loaded + quarantined + duplicate
    assert before["raw"] == [(loaded,)]
    assert {"batch_audit", "transactions_raw", "products", "countries"} <= set(before["tables"])
    # the catalog is in PostgreSQL, not in a Derby database under the state dir
    in_pg = pg.sql('SELECT count(*) FROM "TBLS" t JOIN "DBS" d ON t."DB_ID" = d."DB_ID" '
                   "WHERE d.\"NAME\" = 'ecommerce_db'", db="metastore")
    assert int(in_pg.strip()) == len(before["tables"])
    assert not (stack.state / "metastore" / "metastore_db").exists()

    stack.services("stop")
    pg.stop()
    pg.start()
    stack.services("start")
    assert snapshot(stack) == before
    assert ingest_runs(monkeypatch, stack) == runs
