"""Small tables without Spark: declared types to Arrow, pandas round trips, the publication protocol step by step
against an in-memory metastore on a ``file://`` warehouse, and the garbage collection of old versions."""

import datetime as dt
import os
import re
import socket
import time
import types
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from pipeline import config
from pipeline.io import arrow_tables as at
from pipeline.io import catalog, metastore_client
from pipeline.io import warehouse as wh
from pipeline.io.metastore_client import MetastoreUnavailable
from tests.unit import fake_services

DB = "arrow_unit"
TYPED = {
    "grain": "one row per probe value",
    "columns": """id INT, amount DECIMAL(12,3), total DECIMAL(18,3), at_ts TIMESTAMP, on_day DATE, big BIGINT,
        ratio DOUBLE, flag BOOLEAN, label STRING""",
}
BY_DAY = {"grain": "one row per probe value and day", "columns": "id INT, label STRING",
          "partition": "invoice_date DATE"}


def test_declared_types_map_to_the_arrow_types_spark_reads_back():
    schema = at.parse_columns("Id INT, Amount DECIMAL(12, 3), At TIMESTAMP, Day DATE, N BIGINT, R DOUBLE, "
                              "F BOOLEAN, S STRING")
    assert schema.names == ["id", "amount", "at", "day", "n", "r", "f", "s"]
    assert schema.types == [pa.int32(), pa.decimal128(12, 3), pa.timestamp("us", tz="UTC"), pa.date32(), pa.int64(),
                            pa.float64(), pa.bool_(), pa.string()]
    with pytest.raises(ValueError, match="no Arrow type for the Hive column type 'map<string,int>'"):
        at.arrow_type("map<string,int>")


def test_every_declared_table_has_an_arrow_schema():
    for db, tables in wh.SCHEMAS.items():
        for table, spec in tables.items():
            data, partition = at.schemas(f"{db}.{table}")
            declared = re.findall(r"(?:^|,)\s*(\w+)\s", " ".join(spec["columns"].split()))
            assert data.names == [c.lower() for c in declared], table
            assert partition.names == catalog.partition_columns(spec), table


@pytest.fixture
def probe_tables(monkeypatch):
    monkeypatch.setitem(wh.SCHEMAS, DB, {"typed": TYPED, "by_day": BY_DAY})


def typed_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, None], "amount": [Decimal("1.2345"), Decimal("-999999999.999"), None],
        "total": [Decimal("123456789012345.678"), 0.1, None],
        "at_ts": [dt.datetime(2010, 12, 1, 8, 26, 0, 123456), pd.Timestamp("2011-12-09 12:50"), None],
        "on_day": [dt.date(2010, 12, 1), dt.date(9999, 12, 31), None], "big": [2 ** 40, -1, None],
        "ratio": [0.5, float("nan"), None], "flag": [True, False, None], "label": ["£ Ünïcode", "", None]})


def test_rows_round_trip_through_the_declared_schema(probe_tables):
    data_schema, _ = at.schemas(f"{DB}.typed")
    table = at.to_arrow(typed_rows(), data_schema)
    assert table.schema == data_schema
    back = at.to_pandas(table)
    assert list(back["amount"])[:2] == [Decimal("1.235"), Decimal("-999999999.999")]  # half up, as Spark casts
    assert back["total"][1] == Decimal("0.100") and pd.isna(back["total"][2])
    assert back["at_ts"][0] == dt.datetime(2010, 12, 1, 8, 26, 0, 123456)  # naive UTC in, naive UTC out
    assert table.column("at_ts")[0].value == int(dt.datetime(2010, 12, 1, 8, 26, 0, 123456,
                                                            tzinfo=dt.UTC).timestamp() * 1_000_000)
    assert list(back["on_day"][:2]) == [dt.date(2010, 12, 1), dt.date(9999, 12, 31)]
    assert str(back["id"].dtype) == "Int32" and back["id"].isna().tolist() == [False, False, True]
    assert back["big"][0] == 2 ** 40 and table.column("ratio").null_count == 2
    assert back["label"].tolist() == ["£ Ünïcode", "", None]


def test_missing_columns_and_bad_values_name_the_column(probe_tables):
    data_schema, _ = at.schemas(f"{DB}.typed")
    with pytest.raises(ValueError, match="lack the column.s. label"):
        at.to_arrow(typed_rows().drop(columns=["label"]), data_schema)
    bad = typed_rows()
    bad["id"] = ["one", 2, 3]
    with pytest.raises(ValueError, match=r"column id \(int32\)"):
        at.to_arrow(bad, data_schema)


def test_a_spark_written_file_conforms_to_the_declared_schema():
    schema = at.parse_columns("At TIMESTAMP, amount DECIMAL(12,3), added STRING")
    spark_file = pa.table({"AT": pa.array([dt.datetime(2010, 12, 1, 8, 26)], pa.timestamp("ns")),  # INT96
                           "amount": pa.array([Decimal("1.500")], pa.decimal128(12, 3))})
    conformed = at.conform(spark_file, schema)
    assert conformed.schema == schema
    assert at.to_pandas(conformed).iloc[0].tolist() == [pd.Timestamp("2010-12-01 08:26"), Decimal("1.500"), None]


def test_locations_and_partition_names_as_the_metastore_writes_them():
    assert metastore_client.hadoop_location("file:///var/w/t/v1") == "file:/var/w/t/v1"
    assert metastore_client.hadoop_location("hdfs://namenode:8020/w/t/v1") == "hdfs://namenode:8020/w/t/v1"
    assert metastore_client.partition_name(["invoice_date"], ("2010-12-01",)) == "invoice_date=2010-12-01"
    assert metastore_client.partition_name(["a", "b"], ("x:y", "p/q")) == "a=x%3Ay/b=p%2Fq"


def test_only_old_versions_that_are_not_kept_are_removed():
    ages = {"v20101201T000000000000_aaaaaa": 7200, "v20101201T000000000001_bbbbbb": 10,
            "v00000000_initial": 7200, "_current": 7200, "part-0.parquet": 7200}
    assert at.versions_to_remove(ages, {"v00000000_initial"}, 3600) == ["v20101201T000000000000_aaaaaa"]


@pytest.fixture
def warehouse(tmp_path, monkeypatch, probe_tables):
    """A ``file://`` warehouse under ``tmp_path`` with an in-memory metastore holding the probe tables."""
    fake = fake_services.install(monkeypatch, tmp_path / "warehouse", [f"{DB}.typed", f"{DB}.by_day"])
    return types.SimpleNamespace(path=tmp_path / "warehouse" / f"{DB}.db", metastore=fake)


def test_a_table_is_published_step_by_step_and_old_versions_go_after_the_retention(warehouse):
    root = warehouse.path / "typed"
    old, young = root / "v20000101T000000000000_000000", root / "v20000101T000000000001_000001"
    for version in (old, young):
        version.mkdir(parents=True)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    location = at.replace_table(typed_rows(), f"{DB}.typed", state={"applied": ["2010-12-01"]})
    version = location.rsplit("/", 1)[-1]
    kinds = [c[0] if c[0] != "crash" else c[1] for c in warehouse.metastore.calls]
    assert kinds == ["publish.written", "alter_table", "publish.swapped"]
    swap = warehouse.metastore.calls[1]
    assert swap[1] == f"file:{root}/{version}"  # the metastore's form of the location
    assert swap[2][0] == wh.STATE_FILE and swap[2][1].endswith(".snappy.parquet")  # data and state before the swap
    assert (root / catalog.POINTER).read_text().strip() == version
    assert not old.exists() and young.exists()
    back = at.read(f"{DB}.typed")
    expected = at.to_pandas(at.to_arrow(typed_rows(), at.schemas(f"{DB}.typed")[0]))
    pd.testing.assert_frame_equal(back, expected)


def test_a_partition_is_added_then_swapped_and_read_with_its_value(warehouse):
    first = at.replace_partition(pd.DataFrame({"id": [1], "label": ["a"]}), f"{DB}.by_day", "2010-12-01")
    second = at.replace_partition(pd.DataFrame({"id": [2, 3], "label": ["b", "c"], "invoice_date": [None, None]}),
                                  f"{DB}.by_day", "2010-12-01")
    calls = [c for c in warehouse.metastore.calls if c[0] != "crash" or c[1] != "publish.written"]
    assert calls == [("add_partitions", [(["2010-12-01"], metastore_client.hadoop_location(first))]),
                     ("crash", "publish.partitions_added"), ("crash", "publish.swapped"),
                     ("alter_partitions", [(["2010-12-01"], metastore_client.hadoop_location(second))]),
                     ("crash", "publish.swapped")]
    part_dir = warehouse.path / "by_day" / "invoice_date=2010-12-01"
    assert (part_dir / catalog.POINTER).read_text().strip() == second.rsplit("/", 1)[-1]
    assert (part_dir / first.rsplit("/", 1)[-1]).exists()  # replaced, younger than the retention: kept
    back = at.read(f"{DB}.by_day", ["2010-12-01"])
    assert back.to_dict("records") == [{"id": 2, "label": "b", "invoice_date": dt.date(2010, 12, 1)},
                                       {"id": 3, "label": "c", "invoice_date": dt.date(2010, 12, 1)}]
    assert at.read(f"{DB}.by_day", ["2010-12-02"]).empty
    assert at.read(f"{DB}.by_day", columns=["invoice_date", "label"]).columns.tolist() == ["invoice_date", "label"]


def test_partitions_are_added_and_swapped_with_one_metastore_call_each(warehouse):
    at.replace_partition(pd.DataFrame({"id": [1], "label": ["a"]}), f"{DB}.by_day", "2010-12-01")
    warehouse.metastore.calls.clear()
    locations = at.replace_partitions({"2010-12-01": pd.DataFrame({"id": [2], "label": ["b"]}),
                                       "2010-12-02": pd.DataFrame({"id": [3, 4], "label": ["c", "d"]}),
                                       "2010-12-03": pd.DataFrame({"id": [], "label": []})}, f"{DB}.by_day")
    day = {d: metastore_client.hadoop_location(locations[(d,)]) for d in ("2010-12-01", "2010-12-02", "2010-12-03")}
    assert warehouse.metastore.calls == [
        ("crash", "publish.written"),
        ("add_partitions", [(["2010-12-02"], day["2010-12-02"]), (["2010-12-03"], day["2010-12-03"])]),
        ("crash", "publish.partitions_added"),
        ("alter_partitions", [(["2010-12-01"], day["2010-12-01"])]),
        ("crash", "publish.swapped")]
    assert len({loc.rsplit("/", 1)[-1] for loc in locations.values()}) == 1  # one version name for all
    back = at.read(f"{DB}.by_day")
    assert sorted(zip(back["invoice_date"], back["id"], strict=True)) == [
        (dt.date(2010, 12, 1), 2), (dt.date(2010, 12, 2), 3), (dt.date(2010, 12, 2), 4)]
    with pytest.raises(ValueError, match=r"has partition columns \['invoice_date'\], given \[\['a', 'b'\]\]"):
        at.replace_partitions({("a", "b"): pd.DataFrame({"id": [1], "label": ["x"]})}, f"{DB}.by_day")


SPLIT = pa.table({"id": pa.array([1, 2, 3, 4], pa.int32()),
                  "invoice_month": pa.array([dt.date(2010, 12, 1), dt.date(2011, 1, 1), dt.date(2010, 12, 1), None]),
                  "customer_bucket": pa.array([7, 7, 12, 7], pa.int32())})


NULL = at.HIVE_NULL_PARTITION
EVERY = {("2010-12-01", "7"): [1], ("2010-12-01", "12"): [3], ("2011-01-01", "7"): [2], (NULL, "7"): [4]}


@pytest.mark.parametrize("ids", [EVERY, {**EVERY, ("2011-02-01", "1"): []}], ids=["every row's", "and an empty one"])
def test_rows_are_split_by_their_partition_values_as_hive_names_them(ids):
    pieces = at.split_partitions(SPLIT, ["invoice_month", "customer_bucket"], list(ids))
    assert {v: t.column("id").to_pylist() for v, t in pieces.items()} == ids


def test_rows_of_a_partition_not_published_are_an_error_not_dropped():
    with pytest.raises(ValueError, match=r"rows of partitions \[\('2010-12-01', '12'\), \('2011-01-01', '7'\), "
                                         r"\('__HIVE_DEFAULT_PARTITION__', '7'\)\]"):
        at.split_partitions(SPLIT, ["invoice_month", "customer_bucket"], [("2010-12-01", "7")])


def test_append_adds_rows_to_the_live_ones(warehouse):
    at.replace_table(typed_rows().iloc[:1], f"{DB}.typed")
    at.append(typed_rows().iloc[1:2], f"{DB}.typed")
    assert at.read(f"{DB}.typed")["id"].tolist() == [1, 2]


def test_a_missing_table_is_named(warehouse):
    wh.SCHEMAS[DB]["nowhere"] = BY_DAY  # declared, not in the catalog
    with pytest.raises(metastore_client.TableMissing, match=f"{DB}.nowhere is not in the Hive catalog"):
        at.read(f"{DB}.nowhere")
    assert at.missing([f"{DB}.typed", f"{DB}.nowhere", "other_db.x"]) == [f"{DB}.nowhere", "other_db.x"]


def test_an_unreachable_metastore_is_a_clear_error(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    uri = f"thrift://127.0.0.1:{closed}"
    monkeypatch.setattr(config, "metastore", lambda: types.SimpleNamespace(uri=uri, connect_timeout_s=2.0))
    with pytest.raises(MetastoreUnavailable, match=f"Hive metastore at {uri} is not reachable"), at.metastore():
        pass


def test_the_same_protocol_runs_on_hdfs_through_webhdfs(tmp_path, monkeypatch, probe_tables):
    fake = fake_services.install(monkeypatch, tmp_path / "warehouse", [f"{DB}.typed", f"{DB}.by_day"], hdfs=True)
    root = tmp_path / "warehouse" / f"{DB}.db" / "typed"
    old = root / "v20000101T000000000000_000000"
    old.mkdir(parents=True)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    location = at.replace_table(typed_rows(), f"{DB}.typed", state={"applied": 1})
    assert location.startswith(f"hdfs://namenode:8020/warehouse/{DB}.db/typed/v")
    assert fake.calls[1] == ("alter_table", location, None)  # an hdfs:// location is stored as it is
    version = location.rsplit("/", 1)[-1]
    assert (root / catalog.POINTER).read_text().strip() == version and not old.exists()
    assert sorted(p.name for p in (root / version).iterdir())[0] == wh.STATE_FILE
    assert at.read(f"{DB}.typed")["label"].tolist() == ["£ Ünïcode", "", None]
    at.replace_partition(pd.DataFrame({"id": [7], "label": ["x"]}), f"{DB}.by_day", "2010-12-01")
    assert at.read(f"{DB}.by_day")[["id", "invoice_date"]].values.tolist() == [[7, dt.date(2010, 12, 1)]]
