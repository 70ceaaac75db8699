"""docker-compose.yaml: checked as data here, and by ``docker compose config`` where the client has the
compose plugin (this machine has the Docker client but no engine and no plugin: that test then skips).

The security rules of the stack, one test each: every container gets only the secrets it uses; HDFS checks
permissions and each service has its own HDFS identity; only the UIs are published, on loopback; HiveServer2
takes LDAP logins from the ldap service; the dashboard logs in with its own account, not the pipeline's.
"""

import configparser
import importlib.util
import inspect
import os
import re
import shutil
import socket
import subprocess
import time
import types
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.engine import services

ROOT = config.PROJECT_ROOT
COMPOSE = ROOT / "docker-compose.yaml"
DOCKER = ROOT / "conf" / "docker"
PUBLISHED = {"dashboard": 8501, "luigid": 8082, "spark-master": 8080, "mailcatcher": 8025}
INTERNAL_PORTS = {8020: "namenode RPC", 9870: "WebHDFS / namenode UI", 9864: "datanode HTTP", 9866: "datanode",
                  9083: "metastore", 10000: "HiveServer2", 5432: "PostgreSQL", 389: "LDAP", 7077: "Spark master",
                  1025: "SMTP"}
# every secret of .env -> the only services that may receive it
SECRETS = {
    "POSTGRES_PASSWORD": {"postgres"},
    "HIVE_DB_PASSWORD": {"postgres", "metastore"},
    "LUIGI_DB_PASSWORD": {"postgres", "luigid", "scheduler"},
    "DASHBOARD_DB_PASSWORD": {"postgres", "dashboard"},
    "DASHBOARD_SECRET": {"dashboard"},
    "DASHBOARD_SECRET_PREVIOUS": {"dashboard"},
    "DASHBOARD_USERS": {"dashboard"},
    "SMTP_PASSWORD": {"scheduler"},
    "ALERT_WEBHOOK_URL": {"scheduler"},
    "HS2_DASHBOARD_PASSWORD": {"ldap", "dashboard"},
    "HS2_PIPELINE_PASSWORD": {"ldap", "scheduler"},
    "HS2_ANALYST_PASSWORD": {"ldap"},
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|USERS|WEBHOOK|TOKEN|KEY")
REQUIRED_ENV = ("POSTGRES_PASSWORD", "HIVE_DB_PASSWORD", "LUIGI_DB_PASSWORD", "DASHBOARD_DB_PASSWORD",
                "DASHBOARD_SECRET", "HS2_DASHBOARD_PASSWORD", "HS2_PIPELINE_PASSWORD", "HS2_ANALYST_PASSWORD")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def _environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def _referenced(value: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)", value))


def _secrets_of(svc: dict) -> set[str]:
    refs = set().union(*(_referenced(v) for v in _environment(svc).values()))
    return {ref for ref in refs if ref in SECRETS}


def _cfg(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser


def _overlay(svc: dict):
    """The service's ECOM_CONFIG_OVERLAY file (a path in the image, /app = the repository)."""
    path = _environment(svc)["ECOM_CONFIG_OVERLAY"]
    assert path.startswith("/app/"), path
    return ROOT / path.removeprefix("/app/")


def _load_hiveserver2_launcher():
    spec = importlib.util.spec_from_file_location("hiveserver2_launcher", DOCKER / "hiveserver2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_service_of_the_cluster_is_there(compose):
    assert {"namenode", "datanode", "hdfs-init", "postgres", "ldap", "metastore", "spark-master", "spark-worker",
            "hiveserver2", "luigid", "scheduler", "dashboard", "mailcatcher"} <= set(compose["services"])
    assert compose["services"]["spark-worker"]["deploy"]["replicas"] == 2


def test_images_are_pinned_by_version(compose):
    for name, svc in compose["services"].items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
    assert "FROM python:3.11.7-slim-bookworm" in (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:12\.\d+-slim$", (DOCKER / "ldap.Dockerfile").read_text(), re.M)


# -- secrets ------------------------------------------------------------------------------------------------------

def test_each_service_gets_only_the_secrets_it_uses(compose):
    services_ = compose["services"]
    uses = {name: {secret for secret, users in SECRETS.items() if name in users} for name in services_}
    for name, svc in services_.items():
        assert "env_file" not in svc, f"{name}: an env_file hands over every value in it"
        assert "secrets" not in svc, f"{name}: compose secrets are not used here; add them to this test"
    extra = {name: sorted(_secrets_of(svc) - uses[name]) for name, svc in services_.items()
             if _secrets_of(svc) - uses[name]}
    assert not extra, f"secrets given to services that do not use them: {extra}"
    for name, svc in services_.items():
        assert _secrets_of(svc) == uses[name], f"{name} gets {sorted(_secrets_of(svc))}, uses {sorted(uses[name])}"
    assert not _secrets_of(compose["x-pipeline"]), "the shared pipeline template must carry no secret"
    for name in ("namenode", "datanode", "hdfs-init", "spark-master", "spark-worker", "hiveserver2", "mailcatcher"):
        assert not _secrets_of(services_[name]), f"{name} needs no secret"
    dashboard = _secrets_of(services_["dashboard"])
    assert not dashboard & {"POSTGRES_PASSWORD", "HIVE_DB_PASSWORD", "LUIGI_DB_PASSWORD", "SMTP_PASSWORD",
                            "HS2_PIPELINE_PASSWORD", "HS2_ANALYST_PASSWORD"}
    # every value that looks like a secret is in the table above, so a new one has to be placed
    text = COMPOSE.read_text()
    assert {ref for ref in _referenced(text) if SECRET_NAME.search(ref)} <= set(SECRETS)


def test_the_dashboard_reads_task_history_with_a_read_only_role(compose):
    dashboard = compose["services"]["dashboard"]
    assert _environment(dashboard)["PGPASSWORD"] == "${DASHBOARD_DB_PASSWORD:?set DASHBOARD_DB_PASSWORD in .env}"
    assert _cfg(_overlay(dashboard))["sla"]["task_history_db"] == "postgresql://luigi_reader@postgres:5432/luigi"
    init = (DOCKER / "postgres-init.sh").read_text()
    assert "CREATE ROLE luigi_reader LOGIN PASSWORD :'reader_pw'" in init
    assert "GRANT SELECT ON TABLES TO luigi_reader" in init
    assert "REVOKE ALL ON DATABASE metastore FROM PUBLIC" in init
    assert not re.search(r"GRANT (?!SELECT|CONNECT)\w+.*luigi_reader", init)


def test_secrets_come_from_an_uncommitted_env_file_that_is_documented():
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert set(REQUIRED_ENV) <= required
    documented = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    assert set(re.findall(r"\$\{(\w+)", text)) <= documented | {"PIPELINE_VERSION"}
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?\w", text.replace("PASSWORD: ${", ""))


# -- HDFS -----------------------------------------------------------------------------------------------------------

def test_hdfs_checks_permissions_and_each_service_has_its_own_identity(compose):
    services_ = compose["services"]
    hadoop = {name: _environment(svc) for name, svc in services_.items() if svc["image"].startswith("apache/hadoop")}
    assert set(hadoop) == {"namenode", "datanode", "hdfs-init"}
    for name, env in hadoop.items():
        assert env["HDFS-SITE.XML_dfs.permissions.enabled"] == "true", name
    users = {name: _environment(services_[name]).get("HADOOP_USER_NAME")
             for name in ("scheduler", "spark-worker", "hiveserver2", "dashboard", "metastore")}
    assert users == {"scheduler": "pipeline", "spark-worker": "pipeline", "hiveserver2": "hiveserver2",
                     "dashboard": "dashboard", "metastore": "hive"}
    assert _cfg(ROOT / "conf" / "profiles" / "cluster.cfg")["webhdfs"]["user"] == "pipeline"
    assert _cfg(_overlay(services_["hiveserver2"]))["webhdfs"]["user"] == "hiveserver2"
    assert _cfg(_overlay(services_["dashboard"]))["webhdfs"]["user"] == "dashboard"

    # the init step: /warehouse belongs to pipeline, readable by its group, which holds hiveserver2 (not dashboard)
    init = services_["hdfs-init"]
    assert init["command"] == ["bash", "/opt/ecommerce/hdfs-init.sh"]
    assert "./conf/docker/hdfs-init.sh:/opt/ecommerce/hdfs-init.sh:ro" in init["volumes"]
    assert init["restart"] == "no"
    script = (DOCKER / "hdfs-init.sh").read_text()
    owner = re.search(r"hdfs dfs -chown -R (\w+):(\w+) /warehouse$", script, re.M)
    assert owner and owner.group(1) == "pipeline"
    assert re.search(r"hdfs dfs -chmod 750 /warehouse$", script, re.M)
    assert re.search(r"hdfs dfs -chown pipeline:pipeline /user/pipeline$", script, re.M)
    assert re.search(r"hdfs dfs -chmod 1777 /tmp$", script, re.M)
    mapping = hadoop["namenode"]["CORE-SITE.XML_hadoop.user.group.static.mapping.overrides"]
    groups = {user: set(filter(None, gs.split(","))) for user, gs in (item.split("=") for item in mapping.split(";"))}
    assert owner.group(2) in groups["hiveserver2"]
    assert owner.group(2) not in groups.get("dashboard", set())
    for name in ("scheduler", "hiveserver2"):
        assert services_[name]["depends_on"]["hdfs-init"] == {"condition": "service_completed_successfully"}


# -- ports ----------------------------------------------------------------------------------------------------------

def test_only_the_uis_are_published_and_only_on_loopback(compose):
    published = {}
    for name, svc in compose["services"].items():
        assert svc.get("network_mode") != "host", f"{name} shares the host's network"
        for port in svc.get("ports", []):
            assert isinstance(port, str), f"{name}: write ports as 127.0.0.1:HOST:CONTAINER"
            host, host_port, container_port = port.split(":")
            assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            assert int(container_port) not in INTERNAL_PORTS, f"{name} publishes {INTERNAL_PORTS[int(container_port)]}"
            published.setdefault(name, set()).add(int(host_port))
    assert published == {name: {port} for name, port in PUBLISHED.items()}


def test_hiveserver2_on_the_host_is_opt_in_and_on_loopback():
    override = yaml.safe_load((DOCKER / "hiveserver2-port.yaml").read_text())
    assert override == {"services": {"hiveserver2": {"ports": ["127.0.0.1:10000:10000"]}}}


# -- HiveServer2 logins ---------------------------------------------------------------------------------------------

def test_hiveserver2_takes_ldap_logins_from_the_ldap_service(compose):
    services_ = compose["services"]
    hs2 = services_["hiveserver2"]
    assert hs2["command"] == ["python", "conf/docker/hiveserver2.py"]
    assert hs2["depends_on"]["ldap"] == {"condition": "service_healthy"}
    server = _cfg(_overlay(hs2))["hiveserver2"]
    assert server["authentication"] == "LDAP"
    assert server["ldap_url"] == "ldap://ldap:389"
    ldap = services_["ldap"]
    assert ldap["hostname"] == "ldap" and "healthcheck" in ldap and "ports" not in ldap
    assert ldap["build"] == {"context": "conf/docker", "dockerfile": "ldap.Dockerfile"}
    dockerfile = (DOCKER / "ldap.Dockerfile").read_text()
    assert re.search(r"apt-get install .*\bslapd\b", dockerfile)
    assert "/usr/local/bin/ldap-seed" in dockerfile

    seed = (DOCKER / "ldap-seed.sh").read_text()
    suffix = re.search(r"^SUFFIX=\$\{LDAP_SUFFIX:-(.+)\}$", seed, re.M).group(1)
    people = re.search(r'^PEOPLE="(.+)"$', seed, re.M).group(1).replace("$SUFFIX", suffix)
    assert server["ldap_base_dn"] == people
    default = re.search(r"^ACCOUNTS=\$\{LDAP_ACCOUNTS:-(.+)\}$", seed, re.M).group(1)
    accounts = _environment(ldap).get("LDAP_ACCOUNTS", default).split()
    assert {"dashboard", "analyst", "pipeline"} <= set(accounts)
    assert {f"HS2_{a.upper()}_PASSWORD" for a in accounts} == set(_environment(ldap)) - {"LDAP_ACCOUNTS"}
    assert "olcDisallows: bind_anon" in seed


def test_the_launcher_replaces_nosasl_by_ldap_or_refuses_to_start():
    launcher = _load_hiveserver2_launcher()
    assert f'"--hiveconf", "{launcher.NOSASL}"' in inspect.getsource(services.HiveServer2)
    cfg = types.SimpleNamespace(authentication="LDAP", ldap_url="ldap://ldap:389", ldap_base_dn="ou=people,dc=x")
    argv = ["spark-submit", "--class", "X", "spark-internal", "--hiveconf", "hive.server2.thrift.port=10000",
            "--hiveconf", launcher.NOSASL]
    got = launcher.ldap_argv(argv, cfg)
    hiveconf = [got[i + 1] for i, arg in enumerate(got) if arg == "--hiveconf"]
    assert "hive.server2.authentication=LDAP" in hiveconf and launcher.NOSASL not in got
    assert {"hive.server2.authentication.ldap.url=ldap://ldap:389",
            "hive.server2.authentication.ldap.baseDN=ou=people,dc=x", "hive.server2.enable.doAs=false"} <= set(hiveconf)
    with pytest.raises(launcher.NotAuthenticated, match="no single"):
        launcher.ldap_argv(argv[:-2], cfg)
    with pytest.raises(launcher.NotAuthenticated, match="authentication = LDAP"):
        launcher.ldap_argv(argv, types.SimpleNamespace(authentication="NOSASL", ldap_url="", ldap_base_dn=""))


def test_the_dashboard_logs_in_with_its_own_account_not_the_pipelines(compose, monkeypatch):
    services_ = compose["services"]
    dashboard, scheduler = _environment(services_["dashboard"]), _environment(services_["scheduler"])
    assert dashboard["ECOM_HS2_USER"] == "dashboard" and scheduler["ECOM_HS2_USER"] == "pipeline"
    assert _referenced(dashboard["ECOM_HS2_PASSWORD"]) == {"HS2_DASHBOARD_PASSWORD"}
    assert _referenced(scheduler["ECOM_HS2_PASSWORD"]) == {"HS2_PIPELINE_PASSWORD"}

    # dashboard.data opens its sessions with that account (PyHive: auth="LDAP", SASL PLAIN through pure-sasl)
    from pyhive import hive

    from dashboard import data

    assert importlib.util.find_spec("puresasl") and importlib.util.find_spec("thrift_sasl")
    calls = []

    def connect(**kwargs):
        calls.append(kwargs)
        cursor = types.SimpleNamespace(execute=lambda sql: None, close=lambda: None)
        return types.SimpleNamespace(cursor=lambda: cursor, close=lambda: None)

    monkeypatch.setattr(hive, "connect", connect)
    monkeypatch.setenv("ECOM_HS2_USER", "dashboard")
    monkeypatch.setenv("ECOM_HS2_PASSWORD", "s3cret")
    data._connect()
    monkeypatch.delenv("ECOM_HS2_USER")
    monkeypatch.delenv("ECOM_HS2_PASSWORD")
    data._connect()
    server = {"host": config.hiveserver2().host, "port": config.hiveserver2().port}
    assert calls == [{**server, "auth": "LDAP", "username": "dashboard", "password": "s3cret"},
                     {**server, "auth": "NOSASL", "username": "dashboard"}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not (shutil.which("slapd") and shutil.which("ldapwhoami") and os.geteuid() == 0),
                    reason="needs Debian's slapd and ldap-utils, as root (apt-get install slapd ldap-utils)")
def test_the_ldap_entrypoint_seeds_the_accounts_and_refuses_anything_else(tmp_path):
    """The ldap image's entrypoint, run here with slapd from Debian on a loopback port."""
    port = _free_port()
    env = dict(os.environ, LDAP_CONF_DIR=str(tmp_path / "conf"), LDAP_DB_DIR=str(tmp_path / "db"),
               LDAP_RUN_DIR=str(tmp_path / "run"), LDAP_URLS=f"ldap://127.0.0.1:{port}/", LDAP_USER="root",
               LDAP_LOG_LEVEL="none",
               HS2_DASHBOARD_PASSWORD="dash board", HS2_PIPELINE_PASSWORD="pipe$line", HS2_ANALYST_PASSWORD="an'alyst")
    proc = subprocess.Popen(["bash", str(DOCKER / "ldap-seed.sh")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    def whoami(user: str, password: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ldapwhoami", "-x", "-H", f"ldap://127.0.0.1:{port}",
                               "-D", f"uid={user},ou=people,dc=ecommerce-dw", "-w", password],
                              capture_output=True, text=True)

    try:
        deadline = time.monotonic() + 20
        while whoami("dashboard", "dash board").returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
            time.sleep(0.2)
        assert whoami("pipeline", "pipe$line").returncode == 0
        assert whoami("analyst", "an'alyst").returncode == 0
        assert whoami("dashboard", "pipe$line").returncode == 49  # invalid credentials
        anonymous = subprocess.run(["ldapwhoami", "-x", "-H", f"ldap://127.0.0.1:{port}"], capture_output=True)
        assert anonymous.returncode != 0
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")  # slapd, exec'd by the script
        assert not [e for e in environ if e.startswith(b"HS2_")]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    missing = subprocess.run(["bash", str(DOCKER / "ldap-seed.sh")], capture_output=True, text=True,
                             env={k: v for k, v in env.items() if k != "HS2_ANALYST_PASSWORD"})
    assert missing.returncode == 1 and "HS2_ANALYST_PASSWORD" in missing.stderr


def test_the_shell_scripts_parse():
    for script in ("hdfs-init.sh", "ldap-seed.sh", "postgres-init.sh"):
        proc = subprocess.run(["bash", "-n", str(DOCKER / script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"


# -- the rest -------------------------------------------------------------------------------------------------------

def test_start_order_waits_for_health_checks(compose):
    services_ = compose["services"]
    for name, svc in services_.items():
        for dep, cond in svc.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services_[dep], f"{name} waits for {dep}, which has no health check"
    assert services_["metastore"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services_["metastore"]["command"][-2:] == ["run", "metastore"]  # the embedded mode's metastore
    assert "ECOM_METASTORE_DB_PASSWORD" in services_["metastore"]["environment"]
    assert services_["scheduler"]["depends_on"]["luigid"] == {"condition": "service_healthy"}


def test_state_lives_in_named_volumes(compose):
    assert {"hdfs-namenode", "hdfs-datanode", "postgres-data"} <= set(compose["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


def test_docker_compose_accepts_the_file(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker client has no compose plugin here: `docker compose config` cannot run")
    env = tmp_path / ".env"
    env.write_text("".join(f"{name}=x\n" for name in REQUIRED_ENV))
    for extra in ([], ["-f", str(DOCKER / "hiveserver2-port.yaml")]):
        proc = subprocess.run([docker, "compose", "--env-file", str(env), "-f", str(COMPOSE), *extra,
                               "config", "--quiet"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
