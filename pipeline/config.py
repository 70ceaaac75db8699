"""Typed configuration read from ``luigi.cfg`` (plus the profile overlay in ``conf/``).

``ECOM_PROFILE`` selects the deployment profile (``embedded``, the default, or ``cluster``):
``conf/profiles/<profile>.cfg`` is layered over the repository's ``luigi.cfg``. The SMTP password is
taken from ``$ECOM_SMTP_PASSWORD`` only.
Relative paths in the config are resolved against the repository root.
"""

from __future__ import annotations

import configparser
import datetime as dt
import io
import os
from pathlib import Path

import luigi
import luigi.configuration
import luigi.notifications

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROFILE_ENV = "ECOM_PROFILE"
OVERLAY_ENV = "ECOM_CONFIG_OVERLAY"
SMTP_PASSWORD_ENV = "ECOM_SMTP_PASSWORD"
METASTORE_DB_PASSWORD_ENV = "ECOM_METASTORE_DB_PASSWORD"
ALERT_WEBHOOK_ENV = "ECOM_ALERT_WEBHOOK_URL"
SLA_GROUPS = {"all_marts": {"tasks": ["MartsReady"], "deadline": "10:00", "days_after": 1}}


def load_profile() -> str:
    """Layer ``luigi.cfg``, the selected profile and ``$ECOM_CONFIG_OVERLAY`` onto Luigi's configuration."""
    profile = os.environ.get(PROFILE_ENV, "embedded")
    overlay = PROJECT_ROOT / "conf" / "profiles" / f"{profile}.cfg"
    if not overlay.exists():
        raise ValueError(f"{PROFILE_ENV}={profile!r}: no profile file {overlay}")
    loaded = luigi.configuration.get_config()._config_paths
    extra = [Path(os.environ[OVERLAY_ENV])] if os.environ.get(OVERLAY_ENV) else []
    for path in (PROJECT_ROOT / "luigi.cfg", overlay, *extra):
        if str(path) not in loaded:
            luigi.configuration.add_config_path(str(path))
    if os.environ.get(SMTP_PASSWORD_ENV):
        # the one SMTP login, for Luigi's failure e-mails and the pipeline's alerts; never in a file
        luigi.configuration.get_config().set("smtp", "password", os.environ[SMTP_PASSWORD_ENV])
    return profile


def stack_overlay(state: Path, ports: dict[str, int], extra: str = "") -> str:
    """The overlay (``$ECOM_CONFIG_OVERLAY``) of a stack of its own: its state dir, its services on loopback ports
    ``metastore``, ``hiveserver2`` and ``luigid``, then the sections of ``extra`` (a section given twice merges,
    later keys win). The tests and the benchmarks start their stacks with one."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(
        f"[state]\ndir = {state}\n[metastore]\nuri = thrift://127.0.0.1:{ports['metastore']}\n"
        f"[hiveserver2]\nport = {ports['hiveserver2']}\n[scheduler_ui]\nport = {ports['luigid']}\n"
        f"[core]\nscheduler_port = {ports['luigid']}\n" + extra)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def resolve_path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def to_uri(value: str) -> str:
    """A warehouse location as a URI: ``hdfs://`` and ``file://`` pass through, paths become ``file://``."""
    if "://" in value:
        return value.rstrip("/")
    return resolve_path(value).as_uri()


class state(luigi.Config):
    """Where embedded services keep their databases, logs and PID files."""

    dir = luigi.Parameter(default="var")

    @property
    def path(self) -> Path:
        return resolve_path(os.environ.get("ECOM_STATE_DIR", self.dir))


class warehouse(luigi.Config):
    """Warehouse root (``file://`` embedded, ``hdfs://`` on a cluster); landing area and markers live under it."""

    root = luigi.Parameter(default="")
    lock_timeout_s = luigi.FloatParameter(default=900.0,
                                          description="how long a writer waits for the warehouse lock")
    lock_lease_s = luigi.FloatParameter(default=120.0,
                                        description="hdfs:// lock lease, renewed while held; expired = holder gone")
    gc_retention_s = luigi.FloatParameter(default=3600.0,
                                          description="a replaced version is kept this long for running queries")

    @property
    def uri(self) -> str:
        return to_uri(self.root or str(state().path / "warehouse"))


class spark(luigi.Config):
    master = luigi.Parameter(default="local[*]")
    driver_memory = luigi.Parameter(default="2g")
    shuffle_partitions = luigi.IntParameter(default=4)
    session_time_zone = luigi.Parameter(default="UTC")
    driver_host = luigi.Parameter(default="127.0.0.1")
    class_archive = luigi.BoolParameter(default=True, description="drivers map a class-data-sharing archive of "
                                        "Spark's classes (pipeline.engine.class_archive): faster JVM starts")
    class_archive_dir = luigi.Parameter(default="", description="where the archive is kept ('' = "
                                        "$XDG_CACHE_HOME/ecommerce-dw or ~/.cache/ecommerce-dw)")
    driver_java_options = luigi.Parameter(
        default="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m",
        description="JVM options of the Spark driver: a driver runs short tasks of small queries, where the "
                    "quick JIT compiler alone and the serial collector leave the CPUs to the work; room for "
                    "the compiled code of a long run (the quick compiler alone reserves only 48 MB)")
    driver_publish_max_rows = luigi.IntParameter(
        default=200_000, description="a date's purchase-history month is collected to the driver and published "
                                     "from there (Arrow) up to this many rows; beyond, by a Spark write job")
    interpreted_max_rows = luigi.IntParameter(
        default=100_000, description="a task of one date whose fact has at most this many rows runs its queries "
                                     "interpreted: compiling generated code costs more than it saves on so few "
                                     "rows (0: always generate code, Spark's default)")
    call_sites = luigi.BoolParameter(
        default=False, description="PySpark records the Python line of every DataFrame and Column call in the "
                                   "JVM, for error messages (spark.python.sql.dataFrameDebugging.enabled): "
                                   "about ten round trips to the JVM per call")
    listing_parallel_above = luigi.IntParameter(
        default=100_000, description="a query over more partition directories than this lists their files with a "
                                     "Spark job (spark.sql.sources.parallelPartitionDiscovery.threshold); fewer "
                                     "are listed by the driver itself")


class metastore(luigi.Config):
    """The Hive metastore service, and (embedded) the database behind it: Derby under the state dir, or a
    PostgreSQL server (Debian's ``postgresql``) through ``libpostgresql-jdbc-java``; its password comes only
    from ``$ECOM_METASTORE_DB_PASSWORD``."""

    uri = luigi.Parameter(default="thrift://127.0.0.1:9083")
    connect_timeout_s = luigi.FloatParameter(default=5.0)
    db = luigi.ChoiceParameter(choices=["derby", "postgresql"], default="derby", var_type=str)
    db_url = luigi.Parameter(default="jdbc:postgresql://127.0.0.1:5432/metastore")
    db_user = luigi.Parameter(default="hive")
    jdbc_jar = luigi.Parameter(default="/usr/share/java/postgresql.jar")


class hiveserver2(luigi.Config):
    """HiveServer2 (Spark Thrift Server). Embedded: NOSASL on loopback. A client logs in over LDAP when
    ``$ECOM_HS2_PASSWORD`` is set (the password comes from there only), as ``$ECOM_HS2_USER`` or ``user``.
    ``authentication``, ``ldap_url`` and ``ldap_base_dn`` are the server's (the cluster's hiveserver2 container:
    conf/docker/hiveserver2.cfg)."""

    USER_ENV, PASSWORD_ENV = "ECOM_HS2_USER", "ECOM_HS2_PASSWORD"

    host = luigi.Parameter(default="127.0.0.1")
    port = luigi.IntParameter(default=10000)
    user = luigi.Parameter(default="", description="this client's login; $ECOM_HS2_USER takes precedence")
    authentication = luigi.ChoiceParameter(choices=["NOSASL", "LDAP"], default="NOSASL", var_type=str,
                                           description="the server's hive.server2.authentication")
    ldap_url = luigi.Parameter(default="", description="the server's LDAP directory, e.g. ldap://ldap:389")
    ldap_base_dn = luigi.Parameter(default="", description="the server binds as uid=<user>,<ldap_base_dn>")

    def login(self, default_user: str) -> dict:
        """PyHive ``hive.connect`` arguments: an LDAP login (``auth``, ``username``, ``password``) when
        ``$ECOM_HS2_PASSWORD`` is set, otherwise the embedded server's NOSASL with a user name only."""
        username = os.environ.get(self.USER_ENV) or self.user or default_user
        password = os.environ.get(self.PASSWORD_ENV)
        if password:
            return {"auth": "LDAP", "username": username, "password": password}
        return {"auth": "NOSASL", "username": username}


class scheduler_ui(luigi.Config):
    host = luigi.Parameter(default="127.0.0.1")
    port = luigi.IntParameter(default=8082)
    public_url = luigi.Parameter(default="", description="the visualizer's address as a browser reaches it (the "
                                                         "port a cluster publishes); '' = http://host:port/")

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}/"


class replay(luigi.Config):
    """The UCI Online Retail replay: source files and the default demo window."""

    source_dir = luigi.Parameter(default="data/online-retail/by-day")
    enabled = luigi.BoolParameter(default=True, description="false: the calendar is the landed feeds only")
    lands_feeds = luigi.BoolParameter(default=True, description="true: the pipeline lands a source day's feeds "
                                      "itself when it needs them; false: another process lands them (simulate)")
    demo_start = luigi.DateParameter()
    demo_end = luigi.DateParameter()

    @property
    def source_path(self) -> Path:
        return resolve_path(self.source_dir)


class landing(luigi.Config):
    """Limits a landed feed file must keep; what breaks them is quarantined or refused, never loaded."""

    max_record_chars = luigi.IntParameter(default=65536, description="longer records are LINE_TOO_LONG")
    after_window_minutes = luigi.IntParameter(
        default=60, description="a line dated this long after its batch window's end is OUT_OF_RANGE_DATE")
    before_window_days = luigi.IntParameter(
        default=31, description="a line dated this many days before its batch window is OUT_OF_RANGE_DATE")
    rejected_dir = luigi.Parameter(default="landing/rejected",
                                   description="where refused files go, under the warehouse, beside a reason")


class reference(luigi.Config):
    """Reference lists kept in ``conf/``."""

    country_aliases = luigi.Parameter(default="conf/country_aliases.csv")
    non_product_codes = luigi.Parameter(default="conf/non_product_codes.csv")


class dashboard(luigi.Config):
    """The dashboard's shoppers' links and analysts' sign-in throttle (``users`` is read by ``dashboard.auth``)."""

    users = luigi.Parameter(default="{}", description='{"name": "<bcrypt hash>"}; $ECOM_DASHBOARD_USERS wins')
    link_max_age_hours = luigi.FloatParameter(default=24.0, description="a purchases link is accepted this long "
                                                                        "after it was issued")
    login_max_failures = luigi.IntParameter(default=5, description="failed sign-ins (per user name, per client) "
                                                                   "within login_window_minutes before a back-off")
    login_window_minutes = luigi.FloatParameter(default=15.0)
    login_lockout_minutes = luigi.FloatParameter(default=15.0, description="how long sign-ins are refused")


class dw(luigi.Config):
    """``[dw]``: the calendar ``dim_date`` covers at least."""

    calendar_start = luigi.DateParameter(
        default=dt.date(2010, 1, 1),
        description="dim_date starts no later than this (it also covers every landed date, whole years)")
    calendar_end = luigi.DateParameter(
        default=dt.date(2012, 12, 31),
        description="dim_date ends no earlier than this (it also covers every landed date, whole years)")


class anomaly(luigi.Config):
    """``[anomaly]``: how ``DetectAnomalies`` scores a line against its product's history."""

    rule = luigi.Parameter(default="mad", description="stddev: median + k standard deviations; mad: modified "
                                                      "z-score (another name fails the task, saying which exist)")
    stddev_threshold = luigi.FloatParameter(default=2.0)
    mad_threshold = luigi.FloatParameter(default=3.5)
    min_history = luigi.IntParameter(default=5, description="baseline lines a product needs before it is scored")
    baseline_days = luigi.IntParameter(default=90, description="trailing days of history forming the baseline")
    min_spread = luigi.FloatParameter(default=1.0)
    new_products = luigi.ChoiceParameter(choices=["store", "skip"], default="store",
                                         description="products below min_history: store-wide baseline, or not scored")

    @property
    def threshold(self) -> float:
        return self.stddev_threshold if self.rule == "stddev" else self.mad_threshold


class dq(luigi.Config):
    """``[dq]``: the data-quality checks file and how many failing keys a result keeps."""

    checks = luigi.Parameter(default="conf/dq_checks.toml", description="the declarative checks (TOML)")
    sample_size = luigi.IntParameter(default=5, description="failing keys kept per check")


class sla(luigi.Config):
    """``[sla]``: the business time zone, the marts' deadlines, and the task history they are measured with."""

    timezone = luigi.Parameter(default="Europe/London", description="business time zone of deadlines and feeds")
    groups = luigi.DictParameter(default=SLA_GROUPS,
                                 description='{"group": {"tasks": [task families], "deadline": "HH:MM", '
                                             '"days_after": N}}')
    masters_at = luigi.Parameter(default="06:00", description="when the daily master snapshots land")
    lookback_hours = luigi.IntParameter(default=12, description="keep watching a day this long after its deadline")
    default_task_s = luigi.FloatParameter(default=60.0, description="expected duration of a task never run")
    history_days = luigi.IntParameter(default=30, description="task history used for expected durations")
    task_history_db = luigi.Parameter(default="", description="luigid's history: SQLite path or URL ('' = embedded)")


class alerts(luigi.Config):
    """``[alerts]``: who gets alerts, how often an unchanged one repeats, and how delivery is retried."""

    email_to = luigi.Parameter(default="", description="comma-separated recipients ('' = [email] receiver)")
    renotify_minutes = luigi.IntParameter(default=240, description="repeat an unchanged condition after this long")
    retries = luigi.IntParameter(default=3, description="delivery attempts per message")
    retry_delay_s = luigi.FloatParameter(default=2.0)
    timeout_s = luigi.FloatParameter(default=10.0)
    subject_prefix = luigi.Parameter(default="[ecommerce-dw]")

    @property
    def recipients(self) -> list[str]:
        to = self.email_to or luigi.notifications.email().receiver
        return [a.strip() for a in to.split(",") if a.strip()]

    @property
    def webhook_url(self) -> str:
        return os.environ.get(ALERT_WEBHOOK_ENV, "")


class schedule(luigi.Config):
    """``[schedule]``: when the scheduler runs the pipeline and the SLA monitor."""

    run_at = luigi.Parameter(default="00:15,04:15,06:15,08:15,12:15,16:15,20:15",
                             description="local times of the ingestion and marts run (comma-separated HH:MM)")
    sla_every_minutes = luigi.IntParameter(default=15)
    tick_s = luigi.FloatParameter(default=30.0)
    declare_missing_after_minutes = luigi.IntParameter(
        default=240, description="a transaction window not landed this long after it was due is declared missing "
                                 "(recorded as a MISSING batch) so later days can go on")


class backup(luigi.Config):
    """``[backup]``: where catalog backups go, how many are kept, when the scheduler takes one."""

    keep = luigi.IntParameter(default=14, description="complete backups kept (the newest ones)")
    dir = luigi.Parameter(default="", description="empty: <state dir>/backups")
    daily_at = luigi.Parameter(default="05:30",
                               description="local time ([sla] timezone) of the scheduler's daily backup; "
                                           "empty: none")
    timeout_s = luigi.FloatParameter(default=900.0, description="longest wait for one copy (Derby, pg_dump)")


class recovery(luigi.Config):
    """``[recovery]``: what a run does about tasks luigid still shows RUNNING when it starts."""

    enabled = luigi.BoolParameter(default=True, description="take over dead workers' tasks and wait for live ones")
    wait_for_live_holders_s = luigi.FloatParameter(
        default=120.0, description="wait at most this long for tasks held by live or remote workers (0: no wait)")
    poll_s = luigi.FloatParameter(default=5.0, description="seconds between two looks at luigid while waiting")
    rpc_timeout_s = luigi.FloatParameter(default=10.0, description="timeout of one request to luigid")


class services(luigi.Config):
    """``[services]``: whether ``pipeline run`` starts the embedded services itself (a cluster runs its own)."""

    manage = luigi.BoolParameter(default=True, description="start the embedded metastore, HiveServer2 and luigid")
