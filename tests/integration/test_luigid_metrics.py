"""luigid, started as the product starts it, serves Prometheus metrics of the tasks that ran through it."""

import urllib.request

import luigi
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.engine import services

pytestmark = pytest.mark.integration

PORT = 25082


class MetricsProbe(luigi.Task):
    path = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.path)

    def run(self):
        with self.output().open("w") as fh:
            fh.write("ok\n")


class MetricsProbeFailing(luigi.Task):
    def complete(self):
        return False

    def run(self):
        raise RuntimeError("this task fails on purpose")


@pytest.fixture
def luigid(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path / "state"))
    svc = services.Luigid("luigid", "127.0.0.1", PORT, start_timeout_s=60)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def scrape() -> tuple[str, dict[tuple[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=10) as resp:
        content_type, body = resp.headers["Content-Type"], resp.read().decode()
    samples = {(s.name, s.labels.get("family", "")): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    return content_type, samples


def test_luigid_exposes_task_metrics_by_family(luigid, tmp_path):
    out = tmp_path / "probe.txt"
    done = luigi.build([MetricsProbe(path=str(out))], scheduler_host="127.0.0.1", scheduler_port=PORT,
                       detailed_summary=True)
    failed = luigi.build([MetricsProbeFailing()], scheduler_host="127.0.0.1", scheduler_port=PORT,
                         detailed_summary=True)
    assert done.status == luigi.execution_summary.LuigiStatusCode.SUCCESS
    assert failed.status == luigi.execution_summary.LuigiStatusCode.FAILED
    assert out.read_text() == "ok\n"

    content_type, samples = scrape()

    assert content_type.startswith("text/plain; version=")
    assert samples[("luigi_task_started_total", "MetricsProbe")] == 1
    assert samples[("luigi_task_done_total", "MetricsProbe")] == 1
    assert ("luigi_task_failed_total", "MetricsProbe") not in samples
    assert ("luigi_task_execution_time_seconds", "MetricsProbe") in samples
    assert samples[("luigi_task_started_total", "MetricsProbeFailing")] == 1
    assert samples[("luigi_task_failed_total", "MetricsProbeFailing")] == 1
