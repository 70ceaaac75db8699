"""Declares ``scratch_schema.t``, then changes its declaration as a newer version would; prints what
``warehouse.ensure_schema`` did at each step (run by ``test_schema`` in its own process, bound to the stack)."""

from pipeline.engine.spark import get_spark
from pipeline.io import warehouse as wh

if __name__ == "__main__":
    spark = get_spark()
    wh.SCHEMAS["scratch_schema"] = {"t": {"grain": "g", "columns": "a INT", "partition": "d DATE"}}
    wh.ensure_schema(spark, "scratch_schema")
    wh.ensure_schema(spark, "scratch_schema")
    print("SAME SPEC ACCEPTED", flush=True)
    wh.forget_checks()
    wh.SCHEMAS["scratch_schema"]["t"]["columns"] = "a INT, note STRING, amount DECIMAL(12, 2)"
    wh.ensure_schema(spark, "scratch_schema")
    print("COLUMNS", [(c.name, c.dataType) for c in spark.catalog.listColumns("scratch_schema.t")], flush=True)
    wh.forget_checks()
    wh.SCHEMAS["scratch_schema"]["t"]["partition"] = "m DATE, b INT"
    try:
        wh.ensure_schema(spark, "scratch_schema")
    except wh.SchemaMismatch as exc:
        print("REFUSED", exc, flush=True)
