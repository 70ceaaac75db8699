"""Data-quality checks run before a day is declared ready; an error-severity failure blocks it."""

import tomllib

import pytest

from pipeline.io import hs2
from tests.integration.conftest import ROOT, marker_path, overlay_env, run_luigi
from tests.integration.realdata import DAYS

pytestmark = pytest.mark.integration
FAILING_CHECK = """
[[check]]
name = "only_gb_countries"
type = "accepted_values"
table = "ecommerce_dw.dim_country"
column = "country_code"
values = ["GB", "XX"]
severity = "error"
"""


def results(day):
    return hs2.query("SELECT check_name, severity, status, failing_rows, sample_keys, run_id "
                     "FROM ecommerce_mart.dq_results WHERE invoice_date = %(d)s", {"d": str(day)})


def test_every_shipped_check_ran_and_passed_on_the_real_days(marts):
    with open(ROOT / "conf" / "dq_checks.toml", "rb") as fh:
        shipped = sorted(check["name"] for check in tomllib.load(fh)["check"])
    for day in DAYS:
        rows = results(day)
        latest = max(r[5] for r in rows)
        assert sorted(r[0] for r in rows if r[5] == latest) == shipped
        assert [r[0] for r in rows if r[2] != "PASS"] == [], rows


def test_an_error_check_blocks_the_day_and_is_recorded(marts, tmp_path):
    day = DAYS[0]
    ready_before = hs2.query("SELECT revision, ready_at FROM ecommerce_mart.marts_ready WHERE invoice_date = %(d)s "
                             "ORDER BY revision", {"d": str(day)})
    runs_before = {r[5] for r in results(day)}
    checks = tmp_path / "checks.toml"
    checks.write_text(FAILING_CHECK)
    env = overlay_env(marts, tmp_path / "overlay.cfg", "dq", checks=str(checks))
    for parts in (("mart", "dq_results"), ("mart", "marts_ready")):
        marker_path(marts, *parts, f"{day}.json").unlink(missing_ok=True)
    (others,), = hs2.query("SELECT count(DISTINCT country_code) FROM ecommerce_dw.dim_country "
                           "WHERE country_code NOT IN ('GB', 'XX')")
    proc = run_luigi("MartsReady", "--date", str(day), module="pipeline.tasks.ready", check=False, env=env)
    assert "DataQualityError" in proc.stderr and "only_gb_countries" in proc.stderr
    failed = [r for r in results(day) if r[0] == "only_gb_countries"]
    assert len(failed) == 1 and failed[0][1:4] == ("error", "FAIL", others) and others > 0
    sample = failed[0][4].split("; ")
    assert 0 < len(sample) <= 5 and all(k.endswith(" x1") for k in sample), sample
    assert hs2.query("SELECT revision, ready_at FROM ecommerce_mart.marts_ready WHERE invoice_date = %(d)s "
                     "ORDER BY revision", {"d": str(day)}) == ready_before
    assert not marker_path(marts, "mart", "marts_ready", f"{day}.json").exists()
    run_luigi("MartsReady", "--date", str(day), module="pipeline.tasks.ready")
    runs = {r[5] for r in results(day)}
    assert runs_before < runs and len(runs - runs_before) == 2   # earlier runs kept, plus the failed one and the rerun
    latest = max(runs)
    assert {r[2] for r in results(day) if r[5] == latest} == {"PASS"}
