"""The cluster topology on loopback: a Spark standalone master with two workers, the Thrift metastore,
HiveServer2 and luigid of a second stack (own ports, state dir and warehouse). A full real trading day goes
through it (ingestion, star schema, marts), and every published table holds the same rows and sums for that
day as the session's embedded (``local[2]``) run. The module's name sorts it after ``test_ingestion``, which
expects the marts of its days not to be published yet.
"""

import json
import urllib.request

import pytest

from pipeline.engine import services
from pipeline.io import hs2
from tests.integration.conftest import separate_stack
from tests.integration.realdata import DAYS

pytestmark = pytest.mark.integration

MASTER_PORT = 17077
PORTS = {"metastore": 19283, "hiveserver2": 20200, "luigid": 18282}
DAY = DAYS[0]


@pytest.fixture(scope="module")
def cluster(marts, tmp_path_factory):
    nodes = services.standalone_cluster(MASTER_PORT, workers=2)
    for node in nodes:
        node.start()
    try:
        with separate_stack(tmp_path_factory, "cluster", PORTS, f"[spark]\nmaster = {nodes[0].url}\n") as stack:
            stack.luigi("IngestDay", "--date", str(DAY))
            stack.luigi("MartsReady", "--date", str(DAY), module="pipeline.tasks.ready")
            yield stack
    finally:
        for node in reversed(nodes):
            node.stop()


def _day_filter(columns: dict[str, str]) -> str | None:
    for col, expr in (("invoice_date", "invoice_date"), ("as_of_date", "as_of_date"),
                      ("invoice_ts", "to_date(invoice_ts)"), ("window_start", "to_date(window_start)")):
        if col in columns:
            return f"{expr} = '{DAY}'"
    return None


def _sum(column: str, kind: str) -> str | None:
    """Exact sums: integers (hashed surrogate keys overflow a bigint sum) as decimals, floating point rounded
    (the cluster adds in another order)."""
    kind = kind.split("(")[0]
    if kind in ("int", "bigint", "smallint", "tinyint"):
        return f"sum(CAST({column} AS DECIMAL(38, 0)))"
    if kind == "decimal":
        return f"sum({column})"
    if kind in ("double", "float"):
        return f"round(sum({column}), 6)"
    return None


def _summary(query, table: str, columns: dict[str, str], where: str) -> tuple:
    sums = [s for c, t in columns.items() if (s := _sum(c, t))]
    return tuple(query(f"SELECT count(*){''.join(', ' + s for s in sums)} FROM {table} WHERE {where}")[0])


def test_the_day_on_the_cluster_equals_the_embedded_run_in_every_published_table(cluster):
    with urllib.request.urlopen(f"http://127.0.0.1:{MASTER_PORT + 1}/json/", timeout=10) as resp:
        master = json.load(resp)
    assert master["aliveworkers"] == 2
    assert "ecommerce-pipeline" in [a["name"] for a in master["completedapps"] + master["activeapps"]]

    compared, differ, empty = [], {}, []
    for db in ("ecommerce_db", "ecommerce_dw", "ecommerce_mart"):
        for (_, table, _) in cluster.query(f"SHOW TABLES IN {db}"):
            name = f"{db}.{table}"
            columns = {c: t for c, t, *_ in cluster.query(f"DESCRIBE {name}") if c and not c.startswith("#")}
            where = _day_filter(columns)
            if where is None or table in ("alerts", "dq_results", "sla_status", "sla_history", "marts_ready"):
                continue  # dimensions carry the embedded run's later days; run logs carry run times
            on_cluster = _summary(cluster.query, name, columns, where)
            embedded = _summary(hs2.query, name, columns, where)
            if on_cluster != embedded:
                differ[name] = (on_cluster, embedded)
            if on_cluster[0] == 0 and table not in ("transactions_quarantine", "anomalies", "anomaly_status_log"):
                empty.append(name)
            compared.append(name)
    assert differ == {} and empty == []
    assert {"ecommerce_db.transactions_raw", "ecommerce_dw.fact_sales", "ecommerce_mart.mart_daily_sales",
            "ecommerce_mart.mart_product_performance", "ecommerce_mart.mart_customer_rfm"} <= set(compared)
