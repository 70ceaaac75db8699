"""Creates the tables ``test_hs2_guard`` queries through HiveServer2: a Parquet table, a text table LOAD DATA could
fill, and a partitioned text table (run by that module, bound to its stack).

    python -m tests.integration.guard_tables
"""

from pipeline.engine.spark import get_spark, stop_spark
from tests.integration.test_hs2_guard import PARTS_TABLE, TABLE, TEXT_TABLE

if __name__ == "__main__":
    spark = get_spark("guard-probe")
    spark.sql("CREATE DATABASE IF NOT EXISTS ecommerce_db")
    spark.sql(f"CREATE TABLE {TABLE} USING parquet AS SELECT * FROM VALUES (1, 'a'), (2, 'b') AS t(id, name)")
    spark.sql(f"CREATE TABLE {TEXT_TABLE} (line STRING) STORED AS TEXTFILE")
    spark.sql(f"CREATE TABLE {PARTS_TABLE} USING text PARTITIONED BY (p) AS SELECT 'x' AS value, 'a' AS p")
    stop_spark()
