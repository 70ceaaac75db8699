"""A master snapshot older than the latest applied one is refused.

This leaves the products master ahead of the ingested days, so it runs after the modules that ingest
more days (pytest runs modules in file-name order).
"""

import datetime as dt
import subprocess
import sys

import pytest

from pipeline.io import hs2
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

NEWER, OLDER = dt.date(2010, 12, 6), dt.date(2010, 12, 5)


def test_out_of_order_snapshot_is_refused_and_changes_nothing(marts):
    (before,), = hs2.query("SELECT count(*) FROM ecommerce_db.products")
    script = (
        "import datetime as dt\n"
        "from pipeline.io import load\n"
        "from pipeline.tasks import base, ingest\n"
        "from pipeline.transforms.masters import OutOfOrderSnapshot\n"
        "spark = base.spark_with_schema()\n"
        f"newer, older = dt.date.fromisoformat('{NEWER}'), dt.date.fromisoformat('{OLDER}')\n"
        "for d in [d for d in ingest.source_days() if d <= newer]:  # each day's feeds land after the day before's\n"
        "    ingest.ReplayDay(d).run() if not ingest.ReplayDay(d).complete() else None\n"
        "load.load_product_snapshots(spark, [ingest.snapshot_batch('products', newer)])\n"
        "try:\n"
        "    load.load_product_snapshots(spark, [ingest.snapshot_batch('products', older)])\n"
        "except OutOfOrderSnapshot as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"REFUSED snapshot {OLDER} is older than the latest applied snapshot {NEWER}" in proc.stdout
    after = hs2.query("SELECT valid_from FROM ecommerce_db.products")
    assert len(after) > before
    assert not [r for r in after if str(r[0]) == str(OLDER)]  # no version starts on the refused date
    assert [r for r in after if str(r[0]) == str(NEWER)]  # the applied one did
