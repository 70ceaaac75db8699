"""The warehouse's file-system calls (``warehouse.HadoopFS``) on a local directory, against Hadoop's own listing."""

import os
import time

import pytest

from pipeline import warehouse as wh


@pytest.fixture
def versions(tmp_path):
    """A partition directory: two version directories, a pointer file and a staging leftover, of known ages."""
    now = time.time()
    (tmp_path / "_staging").mkdir()
    leftover = tmp_path / "_staging" / "v20101201T000000000000_cccccc"
    leftover.mkdir()
    os.utime(leftover, (now - 7200, now - 7200))
    ages = {"v20101201T000000000000_aaaaaa": 7200.0, "v20101202T000000000000_bbbbbb": 30.0, "_current": 5.0,
            "_staging": 3600.0}
    for name, age in ages.items():
        path = tmp_path / name
        if name == "_current":
            path.write_text("v20101202T000000000000_bbbbbb\n")
        else:
            path.mkdir(exist_ok=True)
        os.utime(path, (now - age, now - age))
    return tmp_path, ages


def test_ages_of_a_local_directory_are_those_hadoop_lists(spark, versions):
    root, ages = versions
    got = wh.HadoopFS(spark).ages_s(f"file://{root}")
    assert set(got) == set(ages)
    for name, age in ages.items():
        assert got[name] == pytest.approx(age, abs=5.0)
    hadoop = spark._jvm.org.apache.hadoop.fs.Path(f"file://{root}")
    listed = hadoop.getFileSystem(spark._jsc.hadoopConfiguration()).listStatus(hadoop)
    hadoop_mtimes = {st.getPath().getName(): st.getModificationTime() / 1000 for st in listed}
    assert set(hadoop_mtimes) == set(ages)
    for name, age in got.items():
        assert time.time() - hadoop_mtimes[name] == pytest.approx(age, abs=5.0)


def test_a_missing_directory_has_no_children(spark, tmp_path):
    assert wh.HadoopFS(spark).ages_s(f"file://{tmp_path}/absent") == {}


def test_collect_removes_only_old_versions_not_kept(spark, versions):
    root, _ = versions
    removed = wh.HadoopFS(spark).collect(f"file://{root}", keep=set(), retention_s=600)
    assert removed == ["v20101201T000000000000_aaaaaa", "_staging/v20101201T000000000000_cccccc"]
    assert sorted(p.name for p in root.iterdir()) == ["_current", "_staging", "v20101202T000000000000_bbbbbb"]
