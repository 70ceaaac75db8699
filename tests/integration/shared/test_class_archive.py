"""The Spark drivers' class archive: trained in a process of its own, mapped by the next driver (with the
driver's configured JVM options)."""

import subprocess
import sys

import pytest

from pipeline.engine import class_archive
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


def test_a_trained_archive_is_complete_and_the_next_driver_loads_classes_from_it(stack, tmp_path):
    path = tmp_path / "spark-driver.jsa"
    trainer = subprocess.run([sys.executable, "-m", "pipeline.engine.class_archive_trainer", str(path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert trainer.returncode == 0, trainer.stderr[-3000:] + trainer.stdout[-3000:]
    assert class_archive.complete(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spark-driver.jsa"]  # no lock, no partial dump

    class_log = tmp_path / "classes.log"
    driver = subprocess.run([sys.executable, "-m", "tests.integration.class_archive_probe", str(path), str(class_log)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert "DATABASES" in driver.stdout
    jvm_options = next(line for line in driver.stdout.splitlines() if line.startswith("JVM_OPTIONS")).split()
    # [spark] driver_java_options
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:ReservedCodeCacheSize=240m"} <= set(jvm_options)
    lines = class_log.read_text().splitlines()
    from_archive = [line for line in lines if "source: shared objects file (top)" in line]
    assert len(from_archive) > 1000, f"{len(from_archive)} of {len(lines)} classes came from the archive"
    assert any("org.apache.spark.sql.SparkSession " in line for line in from_archive)
