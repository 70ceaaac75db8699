"""One ingestion task on a Spark standalone master and worker started on loopback."""

import gzip
import json
import urllib.request

import pytest

from pipeline import config, hs2, services
from tests.integration.conftest import overlay_env, run_luigi

pytestmark = pytest.mark.integration

MASTER_PORT = 17077


@pytest.fixture(scope="module")
def standalone(stack, tmp_path_factory):
    nodes = services.standalone_cluster(MASTER_PORT, workers=1)
    for node in nodes:
        node.start()
    env = overlay_env(stack, tmp_path_factory.mktemp("cluster") / "cluster.cfg", "spark", master=nodes[0].url)
    yield {"nodes": nodes, "env": env}
    for node in reversed(nodes):
        node.stop()


def test_transaction_batch_runs_on_the_standalone_master(standalone):
    run_luigi("TransactionBatch", "--date", "2010-12-01", "--window", "12", env=standalone["env"])
    with gzip.open(config.replay().source_path / "2010-12-01.csv.gz", "rt") as fh:
        lines = [ln for ln in fh.read().splitlines()[1:] if ln.split(",")[-4][11:13] in ("12", "13", "14", "15")]
    rows = hs2.query("SELECT rows_received, rows_duplicate FROM ecommerce_db.batch_audit "
                     "WHERE batch_id = 'tx_20101201_12'")
    assert rows == [(len(lines), len(lines) - len(set(lines)))]
    with urllib.request.urlopen(f"http://127.0.0.1:{MASTER_PORT + 1}/json/", timeout=10) as resp:
        state = json.load(resp)
    assert state["aliveworkers"] == 1
    apps = [a["name"] for a in state["completedapps"] + state["activeapps"]]
    assert "ecommerce-pipeline" in apps
