"""The metastore launcher's py4j gateway (a real JVM, py4j's jar only) answers only a client with its token."""

import pytest

from pipeline.engine.metastore_server import start_gateway
from tests.gateway import assert_turned_away


@pytest.fixture
def gateway():
    gw = start_gateway("", [])
    yield gw
    gw.shutdown()


def listening_on(port: int) -> set[str]:
    """Hex IPv4 local addresses of LISTEN sockets on ``port`` (IPv4-mapped ones from /proc/net/tcp6 too)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(addr[-8:])
    return found


def test_gateway_needs_the_launchers_token(gateway):
    port = gateway.gateway_parameters.port
    assert gateway.gateway_parameters.auth_token, "the gateway was launched without an auth token"
    assert gateway.jvm.java.lang.Integer.parseInt("42") == 42
    assert_turned_away(port)
    assert gateway.jvm.java.lang.Integer.parseInt("7") == 7  # the owner's connection is unaffected


def test_gateway_listens_on_loopback_only(gateway):
    assert listening_on(gateway.gateway_parameters.port) == {"0100007F"}


def test_every_launch_has_a_token_of_its_own(gateway):
    other = start_gateway("", [])
    try:
        assert other.gateway_parameters.auth_token != gateway.gateway_parameters.auth_token
    finally:
        other.shutdown()
