"""A table's declaration grows with new columns; a table left by an older version with other partition
columns is refused with a clear message."""

import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


def test_new_columns_are_added_and_other_partition_columns_refused_with_the_way_out(stack):
    proc = subprocess.run([sys.executable, "-m", "tests.integration.schema_probe"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SAME SPEC ACCEPTED" in proc.stdout
    assert ("COLUMNS [('a', 'int'), ('note', 'string'), ('amount', 'decimal(12,2)'), ('d', 'date')]"
            in proc.stdout), proc.stdout
    assert ("REFUSED scratch_schema.t is partitioned by (d) but this version publishes it partitioned by (m, b)"
            in proc.stdout)
    assert "DROP TABLE scratch_schema.t" in proc.stdout
