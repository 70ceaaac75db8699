"""The one embedded stack the modules of this directory share, on the test ports with a throwaway state dir.

Its fixtures build on each other (the integration days ingested, then their marts), and the modules run on one
test worker, in any order: each checks the integration days as the fixtures built them, whatever days the others
add. A module that changes those days (late lines, say) runs on a stack of its own, one directory up
(``separate_stack``).
"""

import datetime as dt
import os

import pytest

from pipeline import config
from pipeline.engine import services
from pipeline.io import hs2
from tests.integration.conftest import PORTS, TEST_SETTINGS, append_lines, run_luigi
from tests.integration.realdata import ATLANTIS_LINE, BAD_DATE_LINE, DAYS, INJECTED


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    overlay = state / "test-overlay.cfg"
    overlay.write_text(config.stack_overlay(state, PORTS, TEST_SETTINGS))
    os.environ[config.OVERLAY_ENV] = str(overlay)
    os.environ.pop("ECOM_STATE_DIR", None)
    config.load_profile()
    services.start_all()
    yield {"state": state, "overlay": overlay, "warehouse": config.warehouse().uri}
    services.stop_all()


@pytest.fixture(scope="session")
def ingested(stack):
    run_luigi("ReplayDay", "--date", str(DAYS[1]))
    append_lines(stack["warehouse"], DAYS[1], 0, [INJECTED, INJECTED, BAD_DATE_LINE, ATLANTIS_LINE])
    run_luigi("RangeDaily", "--of", "IngestDay", "--start", str(DAYS[0]), "--stop", str(DAYS[-1] + dt.timedelta(1)))
    # as the integration days' ingestion left them: later days' quarantine retries count more attempts
    quarantine = hs2.query("SELECT raw_line, reason_code, reason_detail, attempts, resolved_at IS NOT NULL "
                           "FROM ecommerce_db.transactions_quarantine WHERE batch_id = 'tx_20101202_00'")
    audit = hs2.query("SELECT batch_id, rows_received, rows_loaded, rows_quarantined, rows_duplicate, rows_released "
                      "FROM ecommerce_db.batch_audit WHERE feed = 'transactions'")
    return {**stack, "quarantine_after_ingestion": quarantine,
            "audit_after_ingestion": {r[0]: r[1:] for r in audit}}


@pytest.fixture(scope="session")
def marts(ingested):
    """The integration days with their star schema and marts published."""
    run_luigi("RangeDaily", "--of", "MartsReady", "--start", str(DAYS[0]),
              "--stop", str(DAYS[-1] + dt.timedelta(1)), module="pipeline.tasks.ready")
    return ingested
