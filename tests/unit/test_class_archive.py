"""The class archive's file rules: complete only with the JVM's header, one trainer at a time."""

import os
import time
from pathlib import Path

import pytest

from pipeline.engine import class_archive


@pytest.mark.parametrize(("content", "complete"), [
    (class_archive.DYNAMIC_ARCHIVE_MAGIC + b"\0" * 64, True),
    (b"\0" * 68, False),  # the JVM was killed before it wrote the header
    (b"", False),
])
def test_an_archive_is_complete_only_with_its_header(tmp_path, content, complete):
    path = tmp_path / "a.jsa"
    path.write_bytes(content)
    assert class_archive.complete(path) is complete
    assert (class_archive.java_options(path) != "") is complete


def test_a_missing_archive_gives_no_options(tmp_path):
    assert class_archive.java_options(tmp_path / "missing.jsa") == ""


def test_the_archive_name_changes_with_its_directory_not_between_calls(tmp_path):
    assert class_archive.archive_path(tmp_path) == class_archive.archive_path(tmp_path)
    assert class_archive.archive_path(tmp_path).parent == tmp_path
    assert class_archive.archive_path(tmp_path / "b").name == class_archive.archive_path(tmp_path).name


def test_a_trainer_at_work_is_not_started_twice(tmp_path):
    path = tmp_path / "a.jsa"
    path.with_suffix(".training").write_text("")
    assert class_archive.start_trainer(path) is False
    assert not path.with_suffix(".log").exists()


def test_a_stale_trainer_lock_is_taken_over(tmp_path, monkeypatch):
    path = tmp_path / "a.jsa"
    lock = path.with_suffix(".training")
    lock.write_text("")
    old = time.time() - class_archive.STALE_TRAINER_S - 1
    os.utime(lock, (old, old))
    started = []
    monkeypatch.setattr(class_archive.subprocess, "Popen", lambda argv, **kw: started.append(argv))
    assert class_archive.start_trainer(path) is True
    assert started and started[0][-1] == str(path)
    assert lock.stat().st_mtime > old


def test_a_cache_dir_that_cannot_be_written_leaves_drivers_without_an_archive(tmp_path, luigi_config):
    from pipeline.engine import spark

    blocked = tmp_path / "file"
    blocked.write_text("")
    luigi_config("spark", "class_archive_dir", str(blocked / "cache"))  # a directory under a file
    assert spark.archive_options() == ""


def test_another_installation_of_spark_gets_its_own_archive(tmp_path, monkeypatch):
    import pyspark

    here = class_archive.archive_path(tmp_path)
    elsewhere = tmp_path / "venv" / "pyspark"
    (elsewhere / "jars").mkdir(parents=True)
    for jar in (Path(pyspark.__file__).resolve().parent / "jars").glob("*.jar"):
        (elsewhere / "jars" / jar.name).symlink_to(jar)
    monkeypatch.setattr(pyspark, "__file__", str(elsewhere / "__init__.py"))
    assert class_archive.archive_path(tmp_path) != here


def test_a_changed_training_workload_gets_its_own_archive(tmp_path, monkeypatch):
    here = class_archive.archive_path(tmp_path)
    monkeypatch.setattr(class_archive, "WORKLOAD", class_archive.WORKLOAD + "+more")
    assert class_archive.archive_path(tmp_path) != here
