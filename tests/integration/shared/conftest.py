"""The one embedded stack the modules of this directory share, on the test ports with a throwaway state dir.

Its fixtures build on each other (ingested days, then their marts), and the modules run in file order on one
test worker; a module that needs a stack of its own lives one directory up and uses ``separate_stack``.
"""

import datetime as dt
import os

import pytest

from pipeline import config
from pipeline.engine import services
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
    return stack


@pytest.fixture(scope="session")
def marts(ingested):
    """The integration days with their star schema and marts published."""
    run_luigi("RangeDaily", "--of", "MartsReady", "--start", str(DAYS[0]),
              "--stop", str(DAYS[-1] + dt.timedelta(1)), module="pipeline.tasks.ready")
    return ingested
