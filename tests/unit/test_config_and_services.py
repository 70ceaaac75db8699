import configparser
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.engine import services
from pipeline.engine.spark import check_metastore
from pipeline.io.metastore_client import MetastoreUnavailable

PROFILE_PROBE = Path(__file__).with_name("profile_probe.py")


def _profile(name: str | None) -> dict:
    """In a fresh process (Luigi's config is process-global), with only ``ECOM_PROFILE`` set."""
    env = {k: v for k, v in os.environ.items()
           if k not in (config.PROFILE_ENV, config.OVERLAY_ENV, "ECOM_STATE_DIR", "LUIGI_CONFIG_PATH")}
    if name:
        env[config.PROFILE_ENV] = name
    out = subprocess.run([sys.executable, str(PROFILE_PROBE)], env=env, cwd="/", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_embedded_profile_resolves_every_setting():
    got = _profile(None)
    assert got["profile"] == "embedded"
    assert got["warehouse"] == (config.PROJECT_ROOT / "var" / "warehouse").as_uri()
    assert got["master"] == "local[*]"
    assert got["metastore"] == "thrift://127.0.0.1:9083"
    assert got["hs2"] == ["127.0.0.1", 10000] and got["scheduler"] == "127.0.0.1"
    assert got["marker"] == ["LocalTarget", str(config.PROJECT_ROOT / "var" / "warehouse" / "_markers" / "x.json")]
    assert Path(got["source"]).exists()
    assert len(got["settings"]) > 40


def test_cluster_profile_resolves_every_setting_to_the_cluster_services():
    got, embedded = _profile("cluster"), _profile("embedded")
    assert got["profile"] == "cluster"
    assert got["warehouse"] == "hdfs://namenode:8020/warehouse"
    assert got["master"] == "spark://spark-master:7077"
    assert got["metastore"] == "thrift://metastore:9083"
    assert got["settings"]["pipeline.config.metastore.db"] == "postgresql"
    assert got["settings"]["pipeline.config.metastore.db_url"] == "jdbc:postgresql://postgres:5432/metastore"
    assert got["hs2"] == ["hiveserver2", 10000] and got["scheduler"] == "luigid"
    assert got["marker"] == ["HdfsTarget", "/warehouse/_markers/x.json"]
    assert got["settings"]["luigi.contrib.hdfs.webhdfs_client.webhdfs.port"] == "9870"
    assert got["settings"]["pipeline.config.sla.task_history_db"].startswith("postgresql://")
    assert got["settings"]["pipeline.config.scheduler_ui.public_url"] == "http://127.0.0.1:8082/"  # as published
    assert set(got["settings"]) == set(embedded["settings"])  # the same settings, only values differ
    changed = {k for k in got["settings"] if got["settings"][k] != embedded["settings"][k]}
    assert changed <= {"pipeline.config.state.dir", "pipeline.config.warehouse.root", "pipeline.config.spark.master",
                       "pipeline.config.spark.shuffle_partitions", "pipeline.config.spark.driver_host",
                       "pipeline.config.spark.listing_parallel_above",
                       "pipeline.config.metastore.uri", "pipeline.config.metastore.db",
                       "pipeline.config.metastore.db_url", "pipeline.config.hiveserver2.host",
                       "pipeline.config.scheduler_ui.host", "pipeline.config.scheduler_ui.public_url",
                       "pipeline.config.services.manage",
                       "pipeline.config.sla.task_history_db", "luigi.contrib.hdfs.config.hdfs.client",
                       "luigi.contrib.hdfs.config.hdfs.namenode_host",
                       "luigi.contrib.hdfs.config.hdfs.namenode_port", "luigi.contrib.hdfs.webhdfs_client.webhdfs.port",
                       "luigi.contrib.hdfs.webhdfs_client.webhdfs.user"}, changed


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "nope")
    with pytest.raises(ValueError, match="no profile file"):
        config.load_profile()


@pytest.mark.parametrize("uri, message", [("thrift://127.0.0.1:1", "not reachable"),
                                          ("http://127.0.0.1:9083", "not of the form")])
def test_metastore_check_fails_fast_with_a_clear_message(uri, message):
    with pytest.raises(MetastoreUnavailable, match=message):
        check_metastore(uri, timeout_s=1)


def test_port_taken_by_another_process_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        svc = services.Luigid("luigid", "127.0.0.1", port)
        with pytest.raises(services.ServiceError, match=f"port 127.0.0.1:{port} is already taken"):
            svc.start()


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(services.ServiceError, match="Java is not installed"):
        services.require_java()


def test_a_stack_overlay_puts_state_and_services_on_their_own_ports(tmp_path):
    text = config.stack_overlay(tmp_path, {"metastore": 1, "hiveserver2": 2, "luigid": 3},
                                "[spark]\nmaster = local[2]\n[core]\nscheduler_port = 4\n")
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert {s: dict(parser[s]) for s in parser.sections()} == {
        "state": {"dir": str(tmp_path)}, "metastore": {"uri": "thrift://127.0.0.1:1"},
        "hiveserver2": {"port": "2"}, "scheduler_ui": {"port": "3"}, "core": {"scheduler_port": "4"},
        "spark": {"master": "local[2]"}}
