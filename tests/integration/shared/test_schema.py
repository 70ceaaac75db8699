"""A table left by an older version with other partition columns is refused with a clear message."""

import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

SCRIPT = """
from pipeline import warehouse as wh
from pipeline.spark import get_spark
spark = get_spark()
wh.SCHEMAS["scratch_schema"] = {"t": {"grain": "g", "columns": "a INT", "partition": "d DATE"}}
wh.ensure_schema(spark, "scratch_schema")
wh.ensure_schema(spark, "scratch_schema")
print("SAME SPEC ACCEPTED")
wh.forget_checks()
wh.SCHEMAS["scratch_schema"]["t"]["partition"] = "m DATE, b INT"
try:
    wh.ensure_schema(spark, "scratch_schema")
except wh.SchemaMismatch as exc:
    print("REFUSED", exc)
"""


def test_other_partition_columns_are_refused_with_the_way_out(stack):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SAME SPEC ACCEPTED" in proc.stdout
    assert ("REFUSED scratch_schema.t is partitioned by (d) but this version publishes it partitioned by (m, b)"
            in proc.stdout)
    assert "DROP TABLE scratch_schema.t" in proc.stdout
