"""The one SparkSession of a worker process, always bound to the configured Hive metastore."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pipeline import config
from pipeline.engine import class_archive
from pipeline.io.metastore_client import MetastoreUnavailable

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_session: SparkSession | None = None


# How Spark asks the metastore for the partitions a filter selects. A filter with hundreds of values (a
# backfill's dates) fails in the metastore as one long OR: above 32 values Spark asks for the min..max range
# and filters the rest itself. Derby's direct SQL at times fails a DATE partition filter ("The syntax of the
# string representation of a date/time value is incorrect"): Spark then lists the table's partitions and
# filters them itself instead of failing the query.
METASTORE_FILTER_CONF = {
    "spark.sql.hive.metastorePartitionPruningInSetThreshold": "32",
    "spark.sql.hive.metastorePartitionPruningFallbackOnException": "true",
}


# Local (file://) warehouse files are written without Hadoop's .crc side files: every file is written once into
# a new version directory and never rewritten, and the tables published from the driver (Arrow) have none
# either. A year's ingestion writes 1,830 partition files: 14-16 s with checksums, 9-11 s without.
LOCAL_FS_CONF = {"spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem"}


def check_metastore(uri: str, timeout_s: float = 5.0) -> None:
    parsed = urlparse(uri)
    if parsed.scheme != "thrift" or not parsed.hostname or not parsed.port:
        raise MetastoreUnavailable(f"metastore URI {uri!r} is not of the form thrift://host:port")
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise MetastoreUnavailable(
            f"Hive metastore at {uri} is not reachable ({exc.strerror or exc}). "
            "Start it with `python -m pipeline services start` (or fix [metastore] uri in luigi.cfg); "
            "refusing to fall back to a private Derby catalog."
        ) from None


def spark_log_config() -> str:
    """log4j2 config that sends Spark's logs to <state>/logs/spark.log instead of the terminal."""
    return str(config.PROJECT_ROOT / "conf" / "log4j2.properties")


def archive_options() -> str:
    """A Spark driver's JVM options that map this machine's class archive (``pipeline.engine.class_archive``), '' when
    ``[spark] class_archive`` is off or the archive is not ready yet (its trainer is then started)."""
    sp = config.spark()
    if not sp.class_archive:
        return ""
    path = class_archive.archive_path(Path(sp.class_archive_dir) if sp.class_archive_dir
                                      else class_archive.default_dir())
    options = class_archive.java_options(path)
    if not options:
        try:
            class_archive.start_trainer(path)
        except OSError as exc:  # a read-only cache dir: drivers start as they would without an archive
            log.warning("no Spark class archive (%s): %s", path.parent, exc)
    return options


def get_spark(app_name: str = "ecommerce-pipeline", archive_opts: str | None = None) -> SparkSession:
    """Return this process's SparkSession, creating it on first use (fails fast without a metastore).
    ``archive_opts``: the driver's class-archive options instead of ``archive_options()``."""
    global _session
    if _session is not None and _session._jsc is not None and not _session._jsc.sc().isStopped():
        return _session
    from pyspark.sql import SparkSession

    config.load_profile()
    ms, sp = config.metastore(), config.spark()
    check_metastore(ms.uri, ms.connect_timeout_s)
    log_dir = config.state().path / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    java_opts = f"-Dlog4j2.configurationFile={spark_log_config()} -Decom.log.dir={log_dir}"
    archive = archive_options() if archive_opts is None else archive_opts
    driver_opts = " ".join(o for o in (java_opts, sp.driver_java_options, archive) if o)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", sp.driver_host)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(sp.master)
        .enableHiveSupport()
        .config("spark.hadoop.hive.metastore.uris", ms.uri)
        .config("spark.hadoop.hive.metastore.connect.retries", "2")
        .config("spark.sql.warehouse.dir", f"{config.warehouse().uri}/hive")
        .config("spark.sql.catalogImplementation", "hive")
        .config("spark.sql.session.timeZone", sp.session_time_zone)
        .config("spark.sql.shuffle.partitions", str(sp.shuffle_partitions))
        .config("spark.driver.memory", sp.driver_memory)
        .config("spark.driver.extraJavaOptions", driver_opts)
        .config("spark.executor.extraJavaOptions", java_opts)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config(map=METASTORE_FILTER_CONF)
        .config(map=LOCAL_FS_CONF)
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", str(sp.listing_parallel_above))
        .config("spark.driver.host", sp.driver_host)
        .config("spark.driver.bindAddress", sp.driver_host)
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.parquet.compression.codec", "snappy")
        .config("spark.sql.sources.partitionOverwriteMode", "static")
        .config("spark.python.sql.dataFrameDebugging.enabled", str(sp.call_sites).lower())
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    conf_uri = session.sparkContext.getConf().get("spark.hadoop.hive.metastore.uris", "")
    if conf_uri != ms.uri or session.conf.get("spark.sql.catalogImplementation") != "hive":
        raise MetastoreUnavailable(
            f"SparkSession is not bound to metastore {ms.uri} (got {conf_uri!r}); "
            "another session was created earlier in this process without the pipeline's settings"
        )
    session.sql("SHOW DATABASES").collect()
    log.info("SparkSession %s on %s bound to metastore %s", session.version, sp.master, ms.uri)
    _session = session
    return session


def stop_spark() -> None:
    global _session
    if _session is not None:
        _session.stop()
        _session = None


INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@contextlib.contextmanager
def one_date_queries(spark: SparkSession, rows: int | None) -> Iterator[SparkSession]:
    """The block's queries cover one date of ``rows`` fact rows (None: not known yet). Up to ``[spark]
    interpreted_max_rows`` (0: never) they run interpreted (no whole-stage code generation, no generated
    expressions); the session's settings are restored after."""
    limit = config.spark().interpreted_max_rows
    if rows is None or rows > limit or limit <= 0:
        yield spark
        return
    before = {key: spark.conf.get(key) for key in INTERPRETED}
    for key, value in INTERPRETED.items():
        spark.conf.set(key, value)
    try:
        yield spark
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)
