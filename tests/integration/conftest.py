"""What the integration tests share: real embedded services on test ports with throwaway state dirs, and helpers
to drive them (the one stack the modules under ``shared/`` build on is in ``shared/conftest.py``)."""

import configparser
import contextlib
import datetime as dt
import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import config
from pipeline.sources import replay

ROOT = config.PROJECT_ROOT
# $ECOM_TEST_PORT_OFFSET moves the shared stack, so a second test run can share the machine
PORTS = {name: port + int(os.environ.get("ECOM_TEST_PORT_OFFSET", "0"))
         for name, port in {"metastore": 19083, "hiveserver2": 20000, "luigid": 18082}.items()}
# luigid's retries as configured, but quicker: a test that makes a task fail on purpose waits seconds, and a
# task disabled after repeated failures is enabled again before the next test builds it
# what every test stack sets over its ports and state dir: two Spark cores, quick retries
TEST_SETTINGS = "[spark]\nmaster = local[2]\n[scheduler]\nretry_delay = 3\ndisable_persist = 10\n"


def run_luigi(*args: str, check: bool = True, env: dict | None = None,
              module: str = "pipeline.tasks.ingest") -> subprocess.CompletedProcess:
    """Run a Luigi command line against the test luigid, as a data engineer would."""
    cmd = [sys.executable, "-m", "luigi", "--module", module, *args,
           "--scheduler-port", str(PORTS["luigid"])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    if check and (proc.returncode != 0 or "This progress looks :)" not in proc.stdout + proc.stderr):
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


@dataclass
class SeparateStack:
    """A second embedded stack (own ports, state dir, warehouse and catalog) driven through subprocesses."""

    state: Path
    env: dict
    ports: dict

    def luigi(self, *args: str, module: str = "pipeline.tasks.ingest") -> None:
        cmd = [sys.executable, "-m", "luigi", "--module", module, *args, "--scheduler-port", str(self.ports["luigid"])]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, env=self.env)
        if proc.returncode != 0 or "This progress looks :)" not in proc.stdout + proc.stderr:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")

    def services(self, action: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "pipeline", "services", action], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise AssertionError(f"services {action}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")

    def query(self, sql: str) -> list[tuple]:
        from pyhive import hive

        conn = hive.connect(host="127.0.0.1", port=self.ports["hiveserver2"], auth="NOSASL", username="test")
        try:
            cur = conn.cursor()
            cur.execute(sql)
            return cur.fetchall()
        finally:
            conn.close()


@contextlib.contextmanager
def separate_stack(tmp_path_factory, name: str, ports: dict, overlay: str = "", env: dict | None = None):
    state = tmp_path_factory.mktemp(f"{name}-state")
    path = state / f"{name}.cfg"
    path.write_text(config.stack_overlay(state, ports, TEST_SETTINGS + overlay))
    stack = SeparateStack(state, dict(os.environ, **{config.OVERLAY_ENV: str(path)}, **(env or {})), ports)
    try:
        stack.services("start")
        yield stack
    finally:
        subprocess.run([sys.executable, "-m", "pipeline", "services", "stop"], cwd=ROOT, env=stack.env,
                       capture_output=True, timeout=300)


def overlay_env(stack: dict, path: Path, section: str, **values: str) -> dict:
    """Environment whose config overlay is the test overlay with ``section`` values replaced."""
    parser = configparser.ConfigParser()
    parser.read(stack["overlay"])
    if not parser.has_section(section):
        parser.add_section(section)
    for key, value in values.items():
        parser.set(section, key, value)
    with open(path, "w") as fh:
        parser.write(fh)
    return dict(os.environ, **{config.OVERLAY_ENV: str(path)})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def streamlit_app(env: dict, log_path: Path):
    """The dashboard (``streamlit run dashboard/app.py``) on a free loopback port with ``env``, its output in
    ``log_path``; yields its URL once it answers its health check."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port",
                                 str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                                 "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"streamlit did not start: {log_path.read_text()}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            proc.wait(30)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def warehouse_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def append_lines(warehouse: str, day: dt.date, window: int, lines: list[str]) -> Path:
    """Lines the source system adds to a landed transaction window, counted in the day's manifest as the
    source system would; returns the file."""
    paths = replay.landing_paths(warehouse, day)
    path = warehouse_path(paths["transactions"][window])
    with open(path, "a") as fh:
        fh.write("\n".join(lines) + "\n")
    manifest = warehouse_path(paths["manifest"])
    content = json.loads(manifest.read_text())
    content["transactions"][replay.batch_id(day, window)]["lines"] += len(lines)
    manifest.write_text(json.dumps(content))
    return path


def marker_path(stack: dict, *parts: str) -> Path:
    return warehouse_path(stack["warehouse"]).joinpath("_markers", *parts)


class Inbox:
    """What a real SMTP server (aiosmtpd) received: (recipients, message) pairs."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  (aiosmtpd's hook name)
        # read as a mail client does: a long subject folded onto a continuation line is one line again
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content,
                                                                          policy=email.policy.default)))
        return "250 OK"

    def ours(self, prefix: str = "[ecommerce-dw]") -> list:
        return [m for _, m in self.messages if m["Subject"].strip().startswith(prefix)]

    def alerted(self, text: str) -> bool:
        """Whether one of our messages names ``text`` in its subject or body (alerts raised together arrive
        as one message listing each)."""
        return any(text in m["Subject"] or text in m.get_content() for m in self.ours())


@contextlib.contextmanager
def smtp_server():
    """An SMTP server on a free loopback port: yields (inbox, port)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
