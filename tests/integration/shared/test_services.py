"""The embedded services answer on loopback only and report their state."""

import logging

import pytest

from pipeline.engine import services
from pipeline.io import hs2
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


def test_hiveserver2_reads_every_published_table_when_it_starts(marts, caplog):
    """A restarted HiveServer2 has counted every table of the warehouse's three databases before ``start``
    returns, so the first dashboard page does not pay for its cold start; a missing database is skipped."""
    server = next(s for s in services.all_services() if s.name == "hiveserver2")
    server.stop()
    with caplog.at_level(logging.INFO, logger="pipeline.engine.services"):
        server.start()
    with hs2.cursor() as cur:
        published = set()
        for database in hs2.WARMED_DATABASES:
            cur.execute(f"SHOW TABLES IN {database}")
            published |= {f"{database}.{row[1]}" for row in cur.fetchall()}
        assert {"ecommerce_db.transactions_raw", "ecommerce_dw.fact_sales",
                "ecommerce_mart.mart_daily_sales"} <= published
        took = hs2.warm(cur, (*hs2.WARMED_DATABASES, "no_such_database"))
    assert set(took) == published
    assert f"hiveserver2 warmed {len(published)} tables" in caplog.text
