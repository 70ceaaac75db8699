import socket

import pytest

from pipeline import config, services
from pipeline.spark import MetastoreUnavailable, check_metastore


def test_embedded_profile_resolves_every_setting(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert config.load_profile() == "embedded"
    assert config.warehouse().uri.startswith("file:///")
    assert config.spark().master == "local[*]"
    assert config.metastore().uri == "thrift://127.0.0.1:9083"
    assert (config.hiveserver2().host, config.hiveserver2().port) == ("127.0.0.1", 10000)
    assert config.replay().source_path.joinpath("2010-12-01.csv.gz").exists()


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
