import os
import sys

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# Integration modules that take longest, started first when `make test` runs them on parallel workers
LONGEST_FIRST = ("test_crash_recovery", "shared-stack", "test_operation", "test_hostile_input",
                 "test_postgres_metastore", "test_invalidate", "test_catalog_recovery")


def xdist_group(item: pytest.Item) -> str | None:
    """The worker group of an integration test: every module on the session's shared stack runs on one worker,
    in file order (their fixtures build on each other); a module with its own stack is a group of its own."""
    if "integration" not in item.nodeid.split("::")[0].split("/"):
        return None
    if "stack" in getattr(item, "fixturenames", ()):
        return "shared-stack"
    return item.module.__name__.rpartition(".")[2]


def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "loadgroup", False):  # set in each xdist worker by --dist loadgroup
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    groups = {}
    for item in items:
        group = groups[item] = xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    # the slowest groups first, the rest of the integration modules, then the unit tests to fill the gaps
    items.sort(key=lambda it: (groups[it] is None, rank.get(groups[it], len(rank))))


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the pure-transform unit tests (no catalog needed)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]").appName("unit-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=error")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
