"""What a fresh Spark session of the pipeline reads from ``test_arrow_tables``'s probe tables, one ``ROWS`` line
per table (run by that module; ``create`` first creates them and publishes its rows into ``typed`` with Spark).

    python -m tests.integration.shared.arrow_probe create|read
"""

import json
import sys

from pipeline.engine.spark import get_spark
from pipeline.io import warehouse as wh
from tests.integration.shared import test_arrow_tables as t

if __name__ == "__main__":
    wh.SCHEMAS[t.DB] = t.SPEC
    spark = get_spark("arrow-probe")
    if sys.argv[1] == "create":
        wh.ensure_schema(spark, t.DB)
        rows = spark.createDataFrame(t.ROWS, t.SPEC["typed"]["columns"]).coalesce(1)
        wh.replace_table(spark, rows, f"{t.DB}.typed")
    for table in ("typed", "by_day"):
        rows = [t.canon(r) for r in spark.table(f"{t.DB}.{table}").collect()]
        print("ROWS", table, json.dumps(sorted(rows, key=json.dumps)), flush=True)
