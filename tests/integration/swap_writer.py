"""A writer that republishes ``ecommerce_db.swap_probe`` 12 times, alternately with 3,000 and 1,000 rows in 8
files, printing ``published <i>`` after each; readers check they never see a partial table."""

from pipeline.engine.spark import get_spark
from pipeline.io import warehouse as wh

if __name__ == "__main__":
    spark = get_spark()
    spark.sql("CREATE TABLE IF NOT EXISTS ecommerce_db.swap_probe (n BIGINT) STORED AS PARQUET")
    for i in range(12):
        wh.replace_table(spark, spark.range(1000 if i % 2 else 3000).toDF("n").repartition(8), "swap_probe")
        print("published", i, flush=True)
