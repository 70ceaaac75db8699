"""The warehouse's file-system calls (``warehouse.HadoopFS``) on a local directory, against Hadoop's own listing."""

import os
import time

import pytest
from py4j.protocol import Py4JJavaError

from pipeline.io import warehouse as wh


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


class ThroughTheJvm(wh.HadoopFS):
    """The calls as they are made for ``hdfs://``: Hadoop's FileSystem through the JVM, here on local files."""

    @staticmethod
    def _local(uri):
        return None


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(".crc"))


@pytest.mark.parametrize("kind", [wh.HadoopFS, ThroughTheJvm], ids=["in this process", "through the JVM"])
def test_publication_steps_leave_the_same_files_either_way(spark, tmp_path, kind):
    hfs, root = kind(spark), f"file://{tmp_path}"
    staging = tmp_path / "_staging" / "v1" / "batch_id=b1"
    staging.mkdir(parents=True)
    (staging / "part-0.parquet").write_bytes(b"rows")
    hfs.mkdirs(f"{root}/batch_id=b1")
    hfs.mkdirs(f"{root}/batch_id=b1")
    assert hfs.exists(f"{root}/_staging/v1/batch_id=b1") and not hfs.exists(f"{root}/_staging/v1/batch_id=b2")
    hfs.rename(f"{root}/_staging/v1/batch_id=b1", f"{root}/batch_id=b1/v1")
    hfs.mkdirs(f"{root}/batch_id=b2/v1")
    assert hfs.children(root) == ["_staging", "batch_id=b1", "batch_id=b2"]
    assert hfs.children(f"{root}/absent") == []
    hfs.delete(f"{root}/_staging")
    hfs.delete(f"{root}/_staging")
    (tmp_path / "_current").write_text("v1\n")
    hfs.delete(f"{root}/_current")
    assert _tree(tmp_path) == ["batch_id=b1", "batch_id=b1/v1", "batch_id=b1/v1/part-0.parquet", "batch_id=b2",
                               "batch_id=b2/v1"]
    assert (tmp_path / "batch_id=b1" / "v1" / "part-0.parquet").read_bytes() == b"rows"


@pytest.mark.parametrize("kind", [wh.HadoopFS, ThroughTheJvm], ids=["in this process", "through the JVM"])
def test_renaming_a_missing_directory_is_an_error(spark, tmp_path, kind):
    with pytest.raises((OSError, Py4JJavaError)):
        kind(spark).rename(f"file://{tmp_path}/absent", f"file://{tmp_path}/v1")


def test_renaming_onto_an_existing_directory_is_refused(spark, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    with pytest.raises(OSError, match="destination exists"):
        wh.HadoopFS(spark).rename(f"file://{tmp_path}/src", f"file://{tmp_path}/dst")
    assert _tree(tmp_path) == ["dst", "src"]
