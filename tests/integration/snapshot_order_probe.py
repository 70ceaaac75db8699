"""Applies the products snapshot of NEWER, then tries the one of OLDER, and prints ``REFUSED`` with the error
(run by ``test_snapshot_order`` in its own process, bound to the stack).

    python -m tests.integration.snapshot_order_probe NEWER OLDER
"""

import datetime as dt
import sys

from pipeline.io import load
from pipeline.tasks import base, ingest
from pipeline.transforms.masters import OutOfOrderSnapshot

if __name__ == "__main__":
    newer, older = (dt.date.fromisoformat(a) for a in sys.argv[1:3])
    spark = base.spark_with_schema()
    for day in [d for d in ingest.source_days() if d <= newer]:  # each day's feeds land after the day before's
        if not ingest.ReplayDay(day).complete():
            ingest.ReplayDay(day).run()
    load.load_product_snapshots(spark, [ingest.snapshot_batch("products", newer)])
    try:
        load.load_product_snapshots(spark, [ingest.snapshot_batch("products", older)])
    except OutOfOrderSnapshot as exc:
        print("REFUSED", exc)
