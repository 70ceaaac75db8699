"""Sends two test alerts through ``alerts.notify`` at an hour of 2011-01-01 and prints one ``RECORD`` line per
delivery (run by ``test_sla_alerts`` in its own process, bound to the stack).

    python -m tests.integration.notify_probe HOUR [--spark]

With ``--spark`` the alerts table is written through the Spark tasks' session; without, Spark is never started.
"""

import argparse
import datetime as dt

from pipeline.io import alerts
from pipeline.transforms.alerting import Alert

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("hour", type=int)
    parser.add_argument("--spark", action="store_true")
    args = parser.parse_args()
    spark = None
    if args.spark:
        from pipeline.tasks.base import dw_spark

        spark = dw_spark()
    batch = [Alert("dq", "error", "check a failed", "3 rows", "test:a", "FAIL"),
             Alert("dq", "warn", "check b failed", "1 row", "test:b", "FAIL")]
    for r in alerts.notify(spark, batch, dt.datetime(2011, 1, 1, args.hour)):
        print("RECORD", r["channel"], r["dedupe_key"], r["delivery_status"], r["attempts"])
