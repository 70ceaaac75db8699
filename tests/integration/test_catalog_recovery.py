"""Invariant 9, recoverable catalog: a lost metastore database is refused (never answered with empty tables),
and both ways back give exactly the tables of before: a rebuild from the warehouse's ``_current`` pointers,
and a restore of a catalog backup (Derby copied online from the metastore's own JVM, luigid's history with
SQLite's backup API).

A stack of its own (ports, state dir, warehouse, catalog), one ingested day.
"""

import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import ROOT, separate_stack

pytestmark = pytest.mark.integration

PORTS = {"metastore": 19583, "hiveserver2": 20500, "luigid": 18582}
DB = "ecommerce_db"


def pipeline(stack, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m pipeline ...`` against the stack, as an operator runs it; with its wall time."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=stack.env, capture_output=True,
                          text=True, timeout=900)
    return proc, time.monotonic() - t0


def ok_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def tables(stack) -> dict[str, list[tuple]]:
    """Every table of ecommerce_db with its rows, sorted, over HiveServer2."""
    names = sorted(row[1] for row in stack.query(f"SHOW TABLES IN {DB}"))
    return {name: sorted(stack.query(f"SELECT * FROM {DB}.{name}"), key=repr) for name in names}


def lose_the_catalog(stack) -> None:
    """A lost catalog: the metastore comes back with an empty Derby database."""
    stack.services("stop")
    shutil.rmtree(stack.state / "metastore" / "metastore_db")
    stack.services("start")


def assert_no_empty_tables_were_created(stack) -> None:
    databases = {row[0] for row in stack.query("SHOW DATABASES")}
    assert DB not in databases or stack.query(f"SHOW TABLES IN {DB}") == []


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """One ingested day, its tables as HiveServer2 shows them, and a backup taken right after."""
    with separate_stack(tmp_path_factory, "catalog", PORTS) as stack:
        stack.luigi("IngestDay", "--date", "2010-12-01")
        before = tables(stack)
        proc, seconds = pipeline(stack, "backup")
        backup = ok_json(proc)
        print(f"\nbackup: {seconds:.1f} s wall, {backup['seconds']} s in the command")
        yield stack, before, backup


def test_a_backup_holds_the_derby_catalog_and_the_task_history(day):
    stack, before, backup = day
    assert before["transactions_raw"] and before["products"] and before["countries"] and before["batch_audit"]
    path = stack.state / "backups" / backup["name"]
    assert backup["dir"] == str(path)
    assert json.loads((path / "manifest.json").read_text())["name"] == backup["name"]
    assert backup["metastore"]["kind"] == "derby" and backup["metastore"]["how"] == "online"
    assert (path / "metastore" / "metastore_db" / "service.properties").is_file()
    assert backup["history"]["kind"] == "sqlite" and backup["history"]["rows"]["tasks"] > 0
    assert (path / "luigid" / "task-history.db").is_file()
    assert not list(path.parent.glob("*.partial"))


def test_a_lost_catalog_is_refused_then_rebuilt_from_the_warehouse_files(day):
    stack, before, backup = day
    lose_the_catalog(stack)

    with pytest.raises(AssertionError) as refused:
        stack.luigi("IngestDay", "--date", "2010-12-02")
    assert "CatalogLost: Hive catalog lost: the metastore has no database ecommerce_db" in str(refused.value)
    assert f"python -m pipeline restore {backup['name']}" in str(refused.value)
    assert "python -m pipeline catalog rebuild" in str(refused.value)
    assert_no_empty_tables_were_created(stack)

    proc, _ = pipeline(stack, "catalog", "check")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].startswith("error: Hive catalog lost")
    assert "Traceback" not in proc.stderr
    assert_no_empty_tables_were_created(stack)

    proc, seconds = pipeline(stack, "catalog", "rebuild")
    rebuilt = ok_json(proc)
    print(f"\ncatalog rebuild: {seconds:.1f} s wall, {rebuilt['seconds']} s in the command: {rebuilt}")
    assert rebuilt["partitions_added"] == rebuilt["partitions"] > 0 and not rebuilt["dangling_pointers"]
    assert tables(stack) == before

    again = ok_json(pipeline(stack, "catalog", "rebuild")[0])
    assert again["created"] == again["repointed"] == again["partitions_added"] == again["partitions_repointed"] == 0
    assert ok_json(pipeline(stack, "catalog", "check")[0])["status"] == "ok"


def test_a_lost_catalog_comes_back_from_a_backup(day):
    stack, before, backup = day
    lose_the_catalog(stack)
    assert_no_empty_tables_were_created(stack)

    proc, _ = pipeline(stack, "restore", "no-such-backup")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no-such-backup: not a backup")

    proc, seconds = pipeline(stack, "restore", backup["name"])
    restored = ok_json(proc)
    print(f"\nrestore: {seconds:.1f} s wall, services down {restored['services_down_s']} s: {restored}")
    aside = restored["replaced"][str(stack.state / "metastore" / "metastore_db")]
    assert aside and (stack.state / "metastore").joinpath(aside.rsplit("/", 1)[-1]).is_dir()
    assert tables(stack) == before
    stack.luigi("IngestDay", "--date", "2010-12-02")
    assert len(stack.query(f"SHOW PARTITIONS {DB}.transactions_raw")) == 12
