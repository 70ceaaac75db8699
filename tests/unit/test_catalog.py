"""The catalog's recovery logic: reading ``_current`` layouts, planning a rebuild, choosing backups to keep."""

import datetime as dt

import pytest

from pipeline.engine.metastore_server import derby_database
from pipeline.io import catalog
from pipeline.runtime import backup

V1, V2 = "v20261127T171624123456_ab12cd", "v20261127T181624123456_ef34ab"


def write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def publish(directory, version, pointer=True):
    """A version directory with a data file, and (``pointer``) the ``_current`` file naming it."""
    write(directory / version / "part-00000.parquet", "data")
    if pointer:
        write(directory / "_current", version + "\n")


def test_a_pointer_names_one_version_directory():
    assert catalog.parse_pointer(f"{V1}\n") == V1
    assert catalog.parse_pointer("v00000000_initial") == "v00000000_initial"
    for bad in ("", "../etc", f"{V1}/x", "20261127", "v1 v2"):
        with pytest.raises(ValueError, match="not a version directory name"):
            catalog.parse_pointer(bad)


@pytest.mark.parametrize(("relative", "columns", "expected"), [
    ("invoice_date=2010-12-01", ["invoice_date"], ("2010-12-01",)),
    ("batch_id=tx_20101201_04", ["batch_id"], ("tx_20101201_04",)),
    ("invoice_month=2010-12-01/customer_bucket=7", ["invoice_month", "customer_bucket"], ("2010-12-01", "7")),
    ("ts=2010-12-01 08%3A00%3A00", ["ts"], ("2010-12-01 08:00:00",)),    # Hive's escaping in directory names
    ("invoice_date=2010-12-01", ["batch_id"], None),                     # another column
    ("invoice_month=2010-12-01", ["invoice_month", "customer_bucket"], None),  # one level short
    ("_staging", ["invoice_date"], None),
])
def test_partition_directories_give_values_in_column_order(relative, columns, expected):
    assert catalog.partition_values(relative, columns) == expected


def test_partition_columns_and_specs_come_from_the_table_spec():
    spec = {"columns": "a INT", "partition": "invoice_month DATE, customer_bucket INT", "grain": "g"}
    columns = catalog.partition_columns(spec)
    assert columns == ["invoice_month", "customer_bucket"]
    assert catalog.partition_columns({"columns": "a INT"}) == []
    assert catalog.partition_spec(columns, ("2010-12-01", "7")) == "invoice_month='2010-12-01', customer_bucket='7'"
    assert catalog.partition_spec(["k"], ("it's",)) == "k='it\\'s'"


def test_the_table_ddl_is_the_one_ensure_schema_uses():
    spec = {"columns": "a INT", "partition": "d DATE", "grain": "one row per 'thing'"}
    sql = catalog.create_table_sql("db", "t", spec, "file:///w/db.db/t")
    assert sql == ("CREATE TABLE IF NOT EXISTS db.t (a INT) COMMENT 'grain: one row per \\'thing\\'' "
                   "PARTITIONED BY (d DATE) STORED AS PARQUET LOCATION 'file:///w/db.db/t'")


def test_locations_compare_across_the_metastores_spelling():
    assert catalog.same_location("file:/w/db.db/t/v1", "file:///w/db.db/t/v1/")
    assert not catalog.same_location("file:/w/db.db/t/v1", "file:///w/db.db/t/v2")
    assert catalog.same_location("hdfs://nn:8020/w/t", "hdfs://nn:8020/w/t")
    assert not catalog.same_location(None, "file:///w")


def test_a_rebuild_adds_missing_partitions_and_moves_stale_ones():
    live = {("a",): "file:///t/p=a/v2", ("b",): "file:///t/p=b/v1", ("c",): "file:///t/p=c/v1"}
    registered = {("a",): "file:/t/p=a/v1", ("b",): "file:/t/p=b/v1", ("z",): "file:/t/p=z/v1"}
    add, move = catalog.plan_partitions(live, registered)
    assert add == [("c",)]
    assert move == [("a",)]  # ("z",) has no pointer: left as the catalog has it
    assert catalog.batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def test_scan_reads_an_unpartitioned_table(tmp_path):
    root = tmp_path / "db.db" / "products"
    publish(root, V1, pointer=False)
    publish(root, V2)
    write(root / "v00000000_initial" / ".keep")
    live = catalog.scan("db", "products", root.as_uri(), [])
    assert live.location == (root / V2).as_uri()
    assert live.partitions == {} and live.published and not live.dangling


def test_scan_reads_every_partition_pointer_and_counts_unpublished_ones(tmp_path):
    root = tmp_path / "db.db" / "mart"
    publish(root / "invoice_month=2010-12-01" / "customer_bucket=0", V1)
    publish(root / "invoice_month=2010-12-01" / "customer_bucket=1", V2)
    publish(root / "invoice_month=2011-01-01" / "customer_bucket=0", V2)
    publish(root / "invoice_month=2011-01-01" / "customer_bucket=3", V1, pointer=False)  # crashed before a swap
    write(root / "_staging" / V2 / "x.parquet")
    write(root / "invoice_month=2011-01-01" / "customer_bucket=5" / "_current", V1)  # its version is gone
    live = catalog.scan("db", "mart", root.as_uri(), ["invoice_month", "customer_bucket"])
    base = root.as_uri()
    assert live.partitions == {
        ("2010-12-01", "0"): f"{base}/invoice_month=2010-12-01/customer_bucket=0/{V1}",
        ("2010-12-01", "1"): f"{base}/invoice_month=2010-12-01/customer_bucket=1/{V2}",
        ("2011-01-01", "0"): f"{base}/invoice_month=2011-01-01/customer_bucket=0/{V2}",
        ("2011-01-01", "5"): f"{base}/invoice_month=2011-01-01/customer_bucket=5/{V1}",
    }
    assert live.unpublished == 1
    assert live.dangling == [f"{base}/invoice_month=2011-01-01/customer_bucket=5/{V1}"]


def test_a_table_never_published_has_no_pointer_anywhere(tmp_path):
    root = tmp_path / "db.db" / "fact"
    write(root / "v00000000_initial" / ".keep")
    publish(root / "invoice_date=2010-12-01", V1, pointer=False)
    assert not catalog._has_pointer(root.as_uri(), 1)
    assert not catalog.scan("db", "fact", root.as_uri(), ["invoice_date"]).published
    publish(root / "invoice_date=2010-12-02", V1)
    assert catalog._has_pointer(root.as_uri(), 1)
    assert not catalog._has_pointer((tmp_path / "missing").as_uri(), 0)


def test_the_refusal_says_what_is_lost_and_both_ways_out():
    text = catalog.lost_message("ecommerce_db", [], "the warehouse holds published versions", "20261127T050000Z")
    assert text.startswith("Hive catalog lost: the metastore has no database ecommerce_db, but the warehouse")
    assert "`python -m pipeline restore 20261127T050000Z`" in text
    assert "`python -m pipeline catalog rebuild`" in text
    text = catalog.lost_message("ecommerce_db", ["products"], "evidence", None)
    assert "no table(s) ecommerce_db.products" in text
    assert "`python -m pipeline restore <backup>` (no backup found" in text


def test_backups_are_named_by_utc_time():
    local = dt.datetime(2026, 11, 27, 6, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert backup.backup_name(local) == "20261127T053005Z"


def test_retention_keeps_the_newest_complete_backups():
    names = ["20261120T053000Z", "20261121T053000Z", "20261122T053000Z", "20261123T053000Z",
             "20261121T120000Z.partial", "20261123T060000Z.partial", "notes.txt", "20261119T053000Z.replaced"]
    assert backup.to_prune(names, 2, "20261123T053000Z") == [
        "20261120T053000Z", "20261121T053000Z", "20261121T120000Z.partial"]
    assert backup.to_prune(names, 10, "20261123T053000Z") == ["20261121T120000Z.partial"]
    assert backup.to_prune(["20261123T053000Z"], 1, "20261123T053000Z") == []


def test_postgresql_urls_become_libpq_uris_without_a_password():
    assert backup.libpq_url("jdbc:postgresql://127.0.0.1:5432/metastore", "hive") == (
        "postgresql://hive@127.0.0.1:5432/metastore")
    assert backup.libpq_url("postgresql+psycopg2://luigi@postgres:5432/luigi") == "postgresql://luigi@postgres:5432/luigi"
    with pytest.raises(backup.BackupError, match="not a PostgreSQL URL"):
        backup.libpq_url("sqlite:///var/luigid/task-history.db")


def test_the_metastore_finds_its_derby_database_in_the_jdbc_url():
    url = "jdbc:derby:;databaseName=/s/metastore/metastore_db;create=true"
    assert derby_database(url) == "/s/metastore/metastore_db"
    assert derby_database("jdbc:derby:/s/metastore_db;create=true") == "/s/metastore_db"
    assert derby_database("jdbc:postgresql://127.0.0.1:5432/metastore") is None
