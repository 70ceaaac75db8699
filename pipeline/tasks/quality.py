"""Purple phase (started): anomaly detection on each day's fact lines, with a status lifecycle.

    luigi --module pipeline.tasks.quality DetectAnomalies --date 2011-01-18
    python -m pipeline anomaly status <line_id> ACKNOWLEDGED --by alice --note "called the customer"
"""

from __future__ import annotations

import datetime as dt
import logging

import luigi
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import warehouse as wh
from pipeline.tasks.dw import DW, MART, FactSales, _DailyTable, dw_spark
from pipeline.transforms import anomalies as an

log = logging.getLogger(__name__)

wh.SCHEMAS[MART].update({
    "anomalies": {
        "grain": "one row per flagged sale line and metric (quantity or line_amount), partitioned by invoice date",
        "columns": """line_id STRING, invoice_no STRING, stock_code STRING, invoice_ts TIMESTAMP, customer_key BIGINT,
            quantity INT, unit_price_paid DECIMAL(12,3), line_amount DECIMAL(18,3), metric STRING, value DOUBLE,
            baseline_lines BIGINT, baseline_median DOUBLE, baseline_spread DOUBLE, rule STRING, threshold DOUBLE,
            score DOUBLE, detected_at TIMESTAMP, status STRING, status_changed_by STRING,
            status_changed_at TIMESTAMP""",
        "partition": "invoice_date DATE",
    },
    "anomaly_status_log": {
        "grain": "one row per status change of a flagged line (who, when, why)",
        "columns": "line_id STRING, invoice_date DATE, status STRING, changed_by STRING, changed_at TIMESTAMP, "
                   "note STRING",
    },
})


class anomaly(luigi.Config):
    rule = luigi.ChoiceParameter(choices=an.RULES, default="mad",
                                 description="stddev: median + k standard deviations; mad: modified z-score")
    stddev_threshold = luigi.FloatParameter(default=2.0)
    mad_threshold = luigi.FloatParameter(default=3.5)
    min_history = luigi.IntParameter(default=5, description="baseline lines a product needs before it is scored")
    baseline_days = luigi.IntParameter(default=90, description="trailing days of history forming the baseline")
    min_spread = luigi.FloatParameter(default=1.0)

    @property
    def threshold(self) -> float:
        return self.stddev_threshold if self.rule == "stddev" else self.mad_threshold


def detect(spark, day: dt.date, cfg: anomaly) -> DataFrame:
    """The day's flagged lines against the trailing ``baseline_days`` of fact history."""
    fact = wh.read(spark, f"{DW}.fact_sales")
    history = fact.where((F.col("invoice_date") >= F.lit(day - dt.timedelta(days=cfg.baseline_days)))
                         & (F.col("invoice_date") < F.lit(day)))
    status_log = wh.read(spark, f"{MART}.anomaly_status_log")
    false_positives = an.current_status(status_log).where(F.col("status") == "FALSE_POSITIVE").select("line_id")
    baselines = an.product_baselines(history, false_positives)
    flags = an.score_lines(fact.where(F.col("invoice_date") == F.lit(day)), baselines, cfg.rule, cfg.threshold,
                           cfg.min_history, cfg.min_spread)
    return flags


class DetectAnomalies(_DailyTable):
    """``ecommerce_mart.anomalies`` partition of one invoice date: lines far outside their product's history.

    A rerun keeps the first ``detected_at`` of a line and its lifecycle status.
    """

    table = f"{MART}.anomalies"

    def requires(self):
        return FactSales(self.date, self.revision)

    def build(self, spark, dates):
        cfg = anomaly()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        flags = detect(spark, dates[0], cfg)
        for day in dates[1:]:
            flags = flags.unionByName(detect(spark, day, cfg))
        previous = wh.read(spark, self.table).where(F.col("invoice_date").isin([F.lit(d) for d in dates])) \
            .select("line_id", "metric", F.col("detected_at").alias("_first"))
        flags = flags.join(previous, ["line_id", "metric"], "left").withColumn(
            "detected_at", F.coalesce("_first", F.lit(now))).drop("_first")
        return an.with_status(flags, wh.read(spark, f"{MART}.anomaly_status_log"))

    def marker_facts(self, spark, dates):
        counts = dict(wh.read(spark, self.table).where(F.col("invoice_date").isin([F.lit(d) for d in dates]))
                      .groupBy("invoice_date").count().collect())
        return {d: {"flagged": counts.get(d, 0), "rule": anomaly().rule} for d in dates}


class UnknownAnomaly(LookupError):
    """No flagged line has the given id."""


def set_status(line_id: str, status: str, changed_by: str, note: str = "") -> dict:
    """Record a lifecycle change of a flagged line (who, when, why) and republish its date's partition."""
    if not changed_by.strip():
        raise an.InvalidTransition("say who changes the status (--by)")
    spark = dw_spark()
    table, log_table = f"{MART}.anomalies", f"{MART}.anomaly_status_log"
    found = wh.read(spark, table).where(F.col("line_id") == line_id).select("invoice_date", "status").first()
    if found is None:
        raise UnknownAnomaly(f"no flagged line with id {line_id!r} in {table}")
    an.check_transition(found.status, status)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    change = spark.createDataFrame([(line_id, found.invoice_date, status, changed_by, now, note)],
                                   wh.SCHEMAS[MART]["anomaly_status_log"]["columns"])
    status_log = wh.read(spark, log_table).unionByName(change).cache()
    status_log.count()
    wh.replace_table(spark, status_log.coalesce(1), log_table)
    day = wh.read(spark, table).where(F.col("invoice_date") == F.lit(found.invoice_date)) \
        .drop("status", "status_changed_by", "status_changed_at").cache()
    day.count()
    wh.replace_partitions(spark, an.with_status(day, status_log).coalesce(1), table, "invoice_date",
                          [str(found.invoice_date)])
    return {"line_id": line_id, "invoice_date": str(found.invoice_date), "from": found.status, "to": status,
            "by": changed_by, "at": f"{now:%Y-%m-%d %H:%M:%S}"}
