"""A master snapshot older than the latest applied one is refused.

Applying a later day's snapshot leaves the products master ahead of the ingested days, so this runs on a stack
of its own.
"""

import datetime as dt
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, separate_stack

pytestmark = pytest.mark.integration

PORTS = {"metastore": 28083, "hiveserver2": 28000, "luigid": 28082}
NEWER, OLDER = dt.date(2010, 12, 6), dt.date(2010, 12, 5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with separate_stack(tmp_path_factory, "snapshots", PORTS) as stack:
        stack.luigi("IngestDay", "--date", "2010-12-01")
        yield stack


def test_out_of_order_snapshot_is_refused_and_changes_nothing(stack):
    (before,), = stack.query("SELECT count(*) FROM ecommerce_db.products")
    proc = subprocess.run([sys.executable, "-m", "tests.integration.snapshot_order_probe", str(NEWER), str(OLDER)],
                          cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"REFUSED snapshot {OLDER} is older than the latest applied snapshot {NEWER}" in proc.stdout
    after = stack.query("SELECT valid_from FROM ecommerce_db.products")
    assert len(after) > before
    assert not [r for r in after if str(r[0]) == str(OLDER)]  # no version starts on the refused date
    assert [r for r in after if str(r[0]) == str(NEWER)]  # the applied one did
