import os
import sys

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

SHARED_STACK = "tests/integration/shared"
# integration groups that take longest, started first on the test workers
LONGEST_FIRST = ("tests/integration/test_crash_recovery.py", SHARED_STACK, "tests/integration/test_operation.py",
                 "tests/integration/test_hostile_input.py", "tests/integration/test_postgres_metastore.py",
                 "tests/integration/test_invalidate.py", "tests/integration/test_catalog_recovery.py",
                 "tests/integration/test_marts_late_lines.py")


def worker_group(nodeid: str) -> str:
    """What one test worker runs as a unit: the modules on the shared stack together (their fixtures build on
    each other), each other integration module apart (its own stack on its own ports), and each
    unit test on its own."""
    path = nodeid.split("::")[0]
    if path.startswith(SHARED_STACK + "/"):
        return SHARED_STACK
    return path if path.startswith("tests/integration/") else nodeid


def pytest_xdist_make_scheduler(config, log):
    """``pytest -n N`` hands whole ``worker_group`` units to workers, in collection order."""
    from xdist.scheduler import LoadScopeScheduling

    class StackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False
    return StackScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """On test workers: the slowest integration groups first, then the others, then the unit tests to fill the
    gaps (each worker collects in this order, and the scheduler deals the groups out in it)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: (not it.nodeid.startswith("tests/integration/"),
                               rank.get(worker_group(it.nodeid), len(rank))))


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


@pytest.fixture
def luigi_config():
    """``set(section, option, value)`` for one test: Luigi's global config has its previous values back
    afterwards, so no later test sees them."""
    import luigi.configuration

    cfg = luigi.configuration.get_config()
    saved = []

    def set_option(section: str, option: str, value: str) -> None:
        had = cfg.has_option(section, option)
        saved.append((section, option, cfg.get(section, option, raw=True) if had else None, had))
        if not cfg.has_section(section):
            cfg.add_section(section)
        cfg.set(section, option, value)

    yield set_option
    for section, option, value, had in reversed(saved):
        if had:
            cfg.set(section, option, value)
        else:
            cfg.remove_option(section, option)
