"""The background trainer of the Spark class archive (``pipeline.engine.class_archive``): opens a session like the
pipeline's, runs ``class_archive.WORKLOAD`` and leaves the archive its JVM writes at exit.

    python -m pipeline.engine.class_archive_trainer PATH
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from pipeline.engine import class_archive
from pipeline.engine import spark as sp

log = logging.getLogger(__name__)


def train(path: Path) -> None:
    """Run a driver that loads the pipeline's usual classes and dumps them at exit; rename the archive into
    place once its JVM has exited with a complete one."""
    from pyspark import SparkContext

    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        opts = f"-XX:ArchiveClassesAtExit={tmp} {class_archive.QUIET}"
        session = sp.get_spark(app_name="class-archive", archive_opts=opts)
        with tempfile.TemporaryDirectory() as scratch:
            df = session.range(1000).selectExpr("id", "cast(id AS decimal(12,2)) AS amount",
                                                "current_date() AS day")
            df.groupBy("day").sum("amount").write.partitionBy("day").parquet(f"{scratch}/t")
            session.read.parquet(f"{scratch}/t").collect()
            session.read.parquet(f"{scratch}/t").toArrow()  # small tables are published from the driver as Arrow
        sp.stop_spark()
        gateway = SparkContext._gateway
        jvm = gateway.proc
        gateway.shutdown()
        jvm.stdin.close()  # the driver exits on EOF and writes the archive on its way out
        jvm.wait(timeout=300)
        if class_archive.complete(tmp):
            os.replace(tmp, path)
            log.info("Spark class archive ready: %s (%.0f MiB)", path, path.stat().st_size / 2**20)
        else:
            log.warning("the JVM left no complete class archive at %s", tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)
        path.with_suffix(".training").unlink(missing_ok=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    train(Path(sys.argv[1]))
