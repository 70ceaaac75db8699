"""The embedded services answer on loopback only and report their state."""

import pytest

from pipeline import services
from tests.integration.conftest import PORTS

pytestmark = pytest.mark.integration


def listening_addresses(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on ``port``, read from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(addr[-8:] if width == 32 else addr)
    return found


@pytest.mark.parametrize("service", ["metastore", "hiveserver2", "luigid"])
def test_service_listens_on_loopback_only(stack, service):
    addresses = listening_addresses(PORTS[service])
    assert addresses, f"{service} is not listening on {PORTS[service]}"
    assert addresses == {"0100007F"}, f"{service} listens on {addresses} (0100007F = 127.0.0.1)"


def test_status_reports_every_service_healthy(stack):
    status = {s["service"]: s for s in services.status_all()}
    assert set(status) == {"metastore", "hiveserver2", "luigid"}
    assert all(s["healthy"] and s["pid"] for s in status.values())
