"""The table declarations: one place, complete without importing the modules that write the tables, and every
declared table documented."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import schemas

ROOT = Path(__file__).resolve().parents[2]


def test_column_names_keep_declared_order_and_types_with_commas(monkeypatch):
    monkeypatch.setitem(schemas.SCHEMAS, "scratch_db", {"t": {
        "grain": "one row per test", "partition": "d DATE",
        "columns": """a STRING, amount DECIMAL(18,3),
            b INT, price DECIMAL(12, 3), z BOOLEAN"""}})
    assert schemas.column_names("scratch_db.t") == ["a", "amount", "b", "price", "z"]
    assert schemas.spec("scratch_db.t")["partition"] == "d DATE"


def _probe(what: str):
    out = subprocess.run([sys.executable, "-m", "tests.unit.import_probe", what], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_declarations_do_not_depend_on_which_modules_are_imported():
    alone, after = _probe("declarations")
    assert alone == after
    assert set(alone) == {"ecommerce_db", "ecommerce_dw", "ecommerce_mart"}
    assert {"transactions_raw", "batch_audit"} <= set(alone["ecommerce_db"])
    assert {"dq_results", "sla_status", "sla_history", "alerts", "anomalies", "anomaly_status_log",
            "marts_ready"} <= set(alone["ecommerce_mart"])


def test_the_anomaly_review_needs_neither_spark_nor_the_task_modules():
    assert _probe("review") == []


DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


@pytest.mark.parametrize("table", [t for tables in schemas.SCHEMAS.values() for t in tables])
def test_every_declared_table_is_documented(table):
    assert re.search(rf"`(\w+\.)?{table}`", DOCS), f"{table} is declared in pipeline.schemas but in no document"
