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
    proc = subprocess.run([sys.executable, "-m", "tests.integration.snapshot_order_probe", str(NEWER), str(OLDER)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"REFUSED snapshot {OLDER} is older than the latest applied snapshot {NEWER}" in proc.stdout
    after = hs2.query("SELECT valid_from FROM ecommerce_db.products")
    assert len(after) > before
    assert not [r for r in after if str(r[0]) == str(OLDER)]  # no version starts on the refused date
    assert [r for r in after if str(r[0]) == str(NEWER)]  # the applied one did
