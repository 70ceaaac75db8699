import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config, services
from pipeline.spark import MetastoreUnavailable, check_metastore


def test_embedded_profile_resolves_every_setting():
    """In a fresh process (Luigi's config is process-global) with no profile or overlay set."""
    script = (
        "import json\n"
        "from pipeline import config\n"
        "profile = config.load_profile()\n"
        "print(json.dumps([profile, config.warehouse().uri, config.spark().master, config.metastore().uri,\n"
        "                  config.hiveserver2().host, config.hiveserver2().port,\n"
        "                  str(config.replay().source_path / '2010-12-01.csv.gz')]))\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in (config.PROFILE_ENV, config.OVERLAY_ENV, "ECOM_STATE_DIR", "LUIGI_CONFIG_PATH")}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd="/", capture_output=True, text=True,
                         check=True).stdout
    profile, warehouse, master, metastore, host, port, sample = json.loads(out)
    assert profile == "embedded"
    assert warehouse == (config.PROJECT_ROOT / "var" / "warehouse").as_uri()
    assert master == "local[*]"
    assert metastore == "thrift://127.0.0.1:9083"
    assert (host, port) == ("127.0.0.1", 10000)
    assert Path(sample).exists()


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
