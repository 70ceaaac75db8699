"""docker-compose.yaml: checked as data here, and by ``docker compose config`` where the client has the
compose plugin (this machine has the Docker client but no engine and no plugin: that test then skips)."""

import re
import shutil
import subprocess

import pytest
import yaml

from pipeline import config

ROOT = config.PROJECT_ROOT
COMPOSE = ROOT / "docker-compose.yaml"
PUBLISHED = {"dashboard": 8501, "luigid": 8082, "spark-master": 8080, "namenode": 9870, "mailcatcher": 8025}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_of_the_cluster_is_there(compose):
    assert {"namenode", "datanode", "postgres", "metastore", "spark-master", "spark-worker", "hiveserver2", "luigid",
            "scheduler", "dashboard", "mailcatcher"} <= set(compose["services"])
    assert compose["services"]["spark-worker"]["deploy"]["replicas"] == 2


def test_images_are_pinned_by_version(compose):
    for name, svc in compose["services"].items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
    assert "FROM python:3.11.7-slim-bookworm" in (ROOT / "Dockerfile").read_text()


def test_only_the_uis_are_published_and_only_on_loopback(compose):
    published = {}
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            host, host_port, _ = port.split(":")
            assert host == "127.0.0.1", f"{name} publishes {port}"
            published[name] = int(host_port)
    assert published == PUBLISHED


def test_start_order_waits_for_health_checks(compose):
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no health check"
    assert services["metastore"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["metastore"]["command"][-2:] == ["run", "metastore"]  # the embedded mode's metastore
    assert "ECOM_METASTORE_DB_PASSWORD" in services["metastore"]["environment"]
    assert services["scheduler"]["depends_on"]["luigid"] == {"condition": "service_healthy"}


def test_state_lives_in_named_volumes(compose):
    assert {"hdfs-namenode", "hdfs-datanode", "postgres-data"} <= set(compose["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


def test_secrets_come_from_an_uncommitted_env_file_that_is_documented():
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"POSTGRES_PASSWORD", "HIVE_DB_PASSWORD", "LUIGI_DB_PASSWORD", "DASHBOARD_SECRET"} <= required
    documented = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    assert set(re.findall(r"\$\{(\w+)", text)) <= documented | {"PIPELINE_VERSION"}
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?\w", text.replace("PASSWORD: ${", ""))


def test_docker_compose_accepts_the_file(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker client has no compose plugin here: `docker compose config` cannot run")
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=x\nHIVE_DB_PASSWORD=x\nLUIGI_DB_PASSWORD=x\nDASHBOARD_SECRET=x\n")
    proc = subprocess.run([docker, "compose", "--env-file", str(env), "-f", str(COMPOSE), "config", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
