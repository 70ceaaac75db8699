"""Building the HiveServer2 query guard's jar (real javac against the pyspark jars)."""

import zipfile

import pytest

from pipeline.engine import query_guard, services


def test_jar_is_built_once_per_source_and_spark(tmp_path):
    jars = services.spark_home() / "jars"
    jar = query_guard.ensure_jar(tmp_path, jars)
    assert jar.parent == tmp_path / "guard" and jar.name.startswith("query-guard-") and jar.suffix == ".jar"
    with zipfile.ZipFile(jar) as zf:
        assert "ecommerce/guard/QueryGuard.class" in zf.namelist()
    built = jar.stat().st_mtime_ns
    assert query_guard.ensure_jar(tmp_path, jars) == jar and jar.stat().st_mtime_ns == built
    assert [p.name for p in (tmp_path / "guard").iterdir()] == [jar.name]  # no build leftovers


def test_missing_javac_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(query_guard.GuardBuildError, match="install a JDK: apt-get install openjdk-17-jdk-headless"):
        query_guard.ensure_jar(tmp_path, services.spark_home() / "jars")
