"""Embedded services on loopback: Hive metastore (Thrift), HiveServer2 (Spark Thrift Server) and luigid.

Each service has a PID file, a log file under ``<state>/logs`` and a health check (its port answers).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import luigi.configuration

from pipeline import config
from pipeline.engine import query_guard
from pipeline.engine.spark import METASTORE_FILTER_CONF, archive_options
from pipeline.io import hs2

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A service cannot be started or is unhealthy; the message says what to do."""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_java() -> str:
    java = query_guard.java_tool("java")
    if not java:
        raise ServiceError("Java is not installed (need Java 17: `apt-get install -y openjdk-17-jre-headless`)")
    return java


@dataclass
class Service:
    name: str
    host: str
    port: int
    start_timeout_s: float = 120.0

    @property
    def state_dir(self) -> Path:
        return config.state().path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def healthy(self) -> bool:
        return port_open(self.host, self.port)

    def status(self) -> dict:
        pid = self.pid()
        return {
            "service": self.name,
            "address": f"{self.host}:{self.port}",
            "pid": pid,
            "running": pid is not None,
            "healthy": pid is not None and self.healthy(),
            "log": str(self.log_file),
        }

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

    def run_foreground(self) -> None:
        """Replace this process with the service (a container's main process); logs go to stdout."""
        argv, env, cwd = self.command()
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)

    def start(self) -> None:
        if self.pid() is not None:
            self.wait_healthy()
            log.info("%s already running (pid %s)", self.name, self.pid())
            return
        if self.healthy():
            raise ServiceError(
                f"{self.name}: port {self.host}:{self.port} is already taken by another process; "
                f"stop it or change the port in luigi.cfg"
            )
        for sub in ("run", "logs"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        argv, env, cwd = self.command()
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        log.info("started %s (pid %s), log %s", self.name, proc.pid, self.log_file)
        self.wait_healthy(proc)

    def wait_healthy(self, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ServiceError(
                    f"{self.name} exited with code {proc.returncode} while starting; see {self.log_file}"
                )
            time.sleep(0.5)
        raise ServiceError(f"{self.name} did not answer on {self.host}:{self.port} within "
                           f"{self.start_timeout_s:.0f}s; see {self.log_file}")

    def stop(self, timeout_s: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
            _reap(pid)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
            time.sleep(0.5)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        log.info("stopped %s (pid %s)", self.name, pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _java_log_opts(name: str, log_dir: Path) -> str:
    return (f"-Dlog4j2.configurationFile={config.PROJECT_ROOT / 'conf' / 'log4j2.properties'} "
            f"-Decom.log.dir={log_dir} -Decom.log.name={name}")


HIVE_SITE = """<?xml version="1.0"?>
<!-- generated by pipeline.engine.services; edit luigi.cfg instead -->
<configuration>
{props}
</configuration>
"""


def _hive_site(props: dict[str, str]) -> str:
    body = "\n".join(f"  <property><name>{k}</name><value>{v}</value></property>" for k, v in props.items())
    return HIVE_SITE.format(props=body)


class Metastore(Service):
    """Hive 2.3 metastore Thrift service from the jars inside the pyspark wheel; its database is Derby under
    the state dir, or PostgreSQL (``[metastore] db``). DataNucleus creates the schema on first start.

    Launched through ``pipeline.engine.metastore_server`` so that it binds to the configured host only.
    """

    def command(self):
        require_java()
        conf_dir = self.state_dir / "conf" / "metastore"
        conf_dir.mkdir(parents=True, exist_ok=True)
        db = self.state_dir / "metastore" / "metastore_db"
        db.parent.mkdir(parents=True, exist_ok=True)
        ms = config.metastore()
        extra_classpath: list[str] = []
        if ms.db == "postgresql":
            if not Path(ms.jdbc_jar).exists():
                raise ServiceError(f"metastore: the PostgreSQL JDBC driver {ms.jdbc_jar} is missing "
                                   "(apt-get install -y libpostgresql-jdbc-java, or set [metastore] jdbc_jar)")
            if not os.environ.get(config.METASTORE_DB_PASSWORD_ENV):
                raise ServiceError(f"metastore: [metastore] db = postgresql needs the password of "
                                   f"{ms.db_user!r} in ${config.METASTORE_DB_PASSWORD_ENV}")
            connection = {"javax.jdo.option.ConnectionURL": ms.db_url,
                          "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
                          "javax.jdo.option.ConnectionUserName": ms.db_user}
            extra_classpath.append(ms.jdbc_jar)
        else:
            connection = {"javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={db};create=true",
                          "javax.jdo.option.ConnectionDriverName": "org.apache.derby.iapi.jdbc.AutoloadedDriver"}
        (conf_dir / "hive-site.xml").write_text(_hive_site({
            **connection,
            "hive.metastore.warehouse.dir": f"{config.warehouse().uri}/hive",
            "datanucleus.schema.autoCreateAll": "true",
            "hive.metastore.schema.verification": "false",
            "hive.async.log.enabled": "false",
            "hive.metastore.event.db.notification.api.auth": "false",
        }))
        java_opts = [
            "-Xmx768m",
            "-Dlog4j2.contextSelector=org.apache.logging.log4j.core.selector.ClassLoaderContextSelector",
            f"-Dderby.stream.error.file={self.state_dir / 'logs' / 'derby.log'}",
            *_java_log_opts(self.name, self.state_dir / "logs").split(),
        ]
        argv = [sys.executable, "-m", "pipeline.engine.metastore_server", "--host", self.host, "--port", str(self.port),
                "--conf-dir", str(conf_dir), "--jars", str(spark_home() / "jars"),
                *(f"--java-opt={opt}" for opt in java_opts), *(f"--classpath={jar}" for jar in extra_classpath),
                *(["--create-schema"] if ms.db == "postgresql" else [])]
        return argv, dict(os.environ, PYTHONPATH=str(config.PROJECT_ROOT)), self.state_dir / "metastore"


class HiveServer2(Service):
    """Spark Thrift Server (HiveServer2 protocol) sharing the metastore; PyHive connects with auth=NOSASL.

    Unauthenticated, so it binds to the configured (loopback) host only, and it is a query service, not a
    shell: SQL on files is off (``spark.sql.runSQLOnFiles=false``) and the query guard
    (``pipeline.engine.query_guard``, a Spark SQL extension compiled with ``javac`` into the state dir on
    first start) refuses reflection, ``TRANSFORM ... USING`` scripts, ``ADD JAR/FILE/ARCHIVE``,
    ``CREATE FUNCTION``, ``LOAD DATA``, turning SQL on files back on, and DDL that reaches files outside the
    warehouse (views ``USING`` a data source, ``INSERT OVERWRITE DIRECTORY``, a ``LOCATION`` or ``path`` on a
    table, partition or database, non-file sources such as ``jdbc``). The pipeline's own Spark session loads
    neither.
    """

    def command(self):
        require_java()
        home = spark_home()
        try:
            guard = query_guard.ensure_jar(self.state_dir, home / "jars")
        except query_guard.GuardBuildError as exc:
            raise ServiceError(f"{self.name}: {exc}") from None
        ms = config.metastore()
        log_dir = self.state_dir / "logs"
        env = dict(os.environ, SPARK_HOME=str(home), PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP=self.host)
        env.pop("SPARK_CONF_DIR", None)
        opts = f"{_java_log_opts(self.name, log_dir)} {archive_options()}".strip()
        argv = [
            str(home / "bin" / "spark-submit"),
            "--master", "local[2]",
            "--driver-memory", "1g",
            "--name", "ecommerce-hiveserver2",
            "--conf", f"spark.hadoop.hive.metastore.uris={ms.uri}",
            "--conf", f"spark.sql.warehouse.dir={config.warehouse().uri}/hive",
            "--conf", f"spark.sql.session.timeZone={config.spark().session_time_zone}",
            "--conf", f"spark.sql.shuffle.partitions={config.spark().shuffle_partitions}",
            "--conf", "spark.ui.enabled=false",
            *[arg for item in METASTORE_FILTER_CONF.items() for arg in ("--conf", "=".join(item))],
            "--conf", f"spark.driver.extraJavaOptions={opts}",
            "--conf", "spark.sql.runSQLOnFiles=false",
            "--conf", f"spark.sql.extensions={query_guard.EXTENSION}",
            "--jars", str(guard),
            "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "spark-internal",
            "--hiveconf", f"hive.server2.thrift.bind.host={self.host}",
            "--hiveconf", f"hive.server2.thrift.port={self.port}",
            "--hiveconf", "hive.server2.authentication=NOSASL",
        ]
        return argv, env, self.state_dir

    def start(self) -> None:
        ms = urlparse(config.metastore().uri)
        if not port_open(ms.hostname, ms.port):
            raise ServiceError(f"hiveserver2 needs the metastore at {config.metastore().uri}; start it first")
        fresh = self.pid() is None
        super().start()
        if fresh:
            self.warm()

    def warm(self) -> None:
        """Read every published table once (``hs2.warm``) before the server is reported started, so the first
        dashboard page after a start or restart does not pay for the server's cold start."""
        t0 = time.monotonic()
        try:
            with hs2.cursor(self.host, self.port) as cur:
                took = hs2.warm(cur)
        except Exception as exc:  # noqa: BLE001  (the server answers; its first queries are just slower)
            log.warning("%s started but could not warm up: %s", self.name, exc)
            return
        log.info("%s warmed %d tables in %.1f s", self.name, len(took), time.monotonic() - t0)


SCHEDULER_KEYS = ("retry_delay", "retry_count", "disable_window", "disable_persist", "stable_done_cooldown_secs")


def scheduler_settings() -> dict[str, str]:
    """luigid's retry policy and done cooldown from the ``[scheduler]`` section of the pipeline's configuration."""
    cfg = luigi.configuration.get_config()
    return {key: cfg.get("scheduler", key) for key in SCHEDULER_KEYS if cfg.has_option("scheduler", key)}


class Luigid(Service):
    """Luigi central scheduler with the visualizer, task history in SQLite under the state dir and Prometheus
    metrics at ``/metrics``."""

    def command(self):
        run_dir = self.state_dir / "luigid"
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.state_dir / "conf" / "luigid.cfg"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(
            "# generated by pipeline.engine.services\n"
            "[scheduler]\nrecord_task_history = true\n"
            "metrics_collector = prometheus\n"
            "prune_on_get_work = true\n"
            + "".join(f"{key} = {value}\n" for key, value in scheduler_settings().items())
            + f"state_path = {run_dir / 'luigid-state.pickle'}\n"
            "[task_history]\n"
            f"db_connection = {self.history_url}\n"
        )
        env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))
        argv = [sys.executable, "-m", "pipeline.engine.scheduler_server", "--address", self.host,
                "--port", str(self.port), "--logdir", str(self.state_dir / "logs")]
        return argv, env, config.PROJECT_ROOT

    @property
    def history_url(self) -> str:
        """The database ``pipeline.io.history`` reads (``[sla] task_history_db``) as luigid's SQLAlchemy URL."""
        from pipeline.io import history

        db = history.database(config.sla().task_history_db)
        return db if isinstance(db, str) else f"sqlite:///{db}"


class SparkMaster(Service):
    """Spark standalone master on loopback (``spark-class org.apache.spark.deploy.master.Master``)."""

    webui_port: int = 0

    def command(self):
        require_java()
        home = spark_home()
        env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP=self.host,
                   SPARK_MASTER_OPTS=_java_log_opts(self.name, self.state_dir / "logs"))
        argv = [str(home / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
                "--host", self.host, "--port", str(self.port), "--webui-port", str(self.webui_port or self.port + 1)]
        return argv, env, self.state_dir

    @property
    def url(self) -> str:
        return f"spark://{self.host}:{self.port}"


class SparkWorker(Service):
    """Spark standalone worker registered with a master; health = its RPC port answers."""

    master_url: str = ""
    cores: int = 1
    memory: str = "1g"

    def command(self):
        require_java()
        home = spark_home()
        work = self.state_dir / "spark-work" / self.name
        work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP=self.host, PYSPARK_PYTHON=sys.executable,
                   SPARK_WORKER_OPTS=_java_log_opts(self.name, self.state_dir / "logs"))
        argv = [str(home / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker", self.master_url,
                "--host", self.host, "--port", str(self.port), "--webui-port", str(self.port + 1),
                "--cores", str(self.cores), "--memory", self.memory, "--work-dir", str(work)]
        return argv, env, self.state_dir


def standalone_cluster(master_port: int = 7077, workers: int = 1) -> list[Service]:
    """A Spark standalone master and ``workers`` workers on loopback (the cluster topology without Docker)."""
    master = SparkMaster("spark-master", "127.0.0.1", master_port, start_timeout_s=60)
    nodes: list[Service] = [master]
    for i in range(workers):
        worker = SparkWorker(f"spark-worker-{i + 1}", "127.0.0.1", master_port + 10 + 2 * i, start_timeout_s=60)
        worker.master_url = master.url
        nodes.append(worker)
    return nodes


def all_services() -> list[Service]:
    config.load_profile()
    ms = urlparse(config.metastore().uri)
    hs2, ui = config.hiveserver2(), config.scheduler_ui()
    return [
        Metastore("metastore", ms.hostname, ms.port, start_timeout_s=120),
        HiveServer2("hiveserver2", hs2.host, hs2.port, start_timeout_s=180),
        Luigid("luigid", ui.host, ui.port, start_timeout_s=60),
    ]


def managed() -> bool:
    """False on a cluster (``[services] manage = false``): the services run elsewhere and are not ours."""
    config.load_profile()
    return config.services().manage


def start_all() -> None:
    if not managed():
        log.info("services are managed elsewhere ([services] manage = false): not starting them")
        return
    for svc in all_services():
        svc.start()


def stop_all() -> None:
    if not managed():
        return
    for svc in reversed(all_services()):
        svc.stop()


def status_all() -> list[dict]:
    return [svc.status() for svc in all_services()]
