"""The warehouse lock: one writer at a time, whoever starts it (any Luigi scheduler, the CLI, the dashboard).

Every whole-table write is read-modify-write, so two writers at once would lose one's rows. luigid's
``ecommerce_db_writer`` resource only orders tasks of one scheduler; this lock does not depend on it.

- ``file://`` warehouse: ``fcntl.flock`` on ``<warehouse>/_lock/warehouse.lock``. The kernel releases it
  when its process dies, so a killed holder never blocks the next writer. The file holds the holder's
  host, pid, task and since when, for the message of a waiting writer.
- ``hdfs://`` warehouse: a lease file ``<warehouse>/_lock/warehouse.lease`` created only if absent
  (WebHDFS ``overwrite=false``), renewed by a thread every third of ``[warehouse] lock_lease_s`` and
  deleted on release. A lease not renewed for ``lock_lease_s`` belongs to a dead holder and is taken over.

The lock is re-entrant within a process, so a task that calls another writer's code holds it once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from pipeline import config
from pipeline.io import fs

log = logging.getLogger(__name__)

POLL_S = 0.5


class WarehouseLockTimeout(RuntimeError):
    """Another writer held the warehouse lock for longer than the configured wait."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)


def owner_record(task: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "task": task, "since": f"{_now():%Y-%m-%d %H:%M:%S}"}


def describe(holder: dict | None) -> str:
    if not holder:
        return "an unknown writer"
    return (f"{holder.get('task', '?')} (host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
            f"since {holder.get('since', '?')} UTC)")


class _FileLock:
    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def try_acquire(self, owner: dict) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115  (kept open while the lock is held)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(owner))
        fh.flush()
        self._fh = fh
        return True

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class _HdfsLease:
    def __init__(self, uri: str, lease_s: float):
        self.client = fs.webhdfs(uri).client
        self.path = urlparse(uri).path
        self.lease_s = lease_s
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _write(self, owner: dict, overwrite: bool) -> None:
        expires = time.time() + self.lease_s
        self.client.write(self.path, data=json.dumps({**owner, "expires": expires}), encoding="utf-8",
                          overwrite=overwrite)

    def try_acquire(self, owner: dict) -> bool:
        holder = self.holder()
        if holder and holder.get("expires", 0) < time.time():
            log.warning("warehouse lock lease of %s expired: taking over", describe(holder))
            self.client.delete(self.path)
        try:
            self._write(owner, overwrite=False)
        except Exception:  # noqa: BLE001  (the namenode refuses to create an existing file)
            return False
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, args=(owner,), daemon=True)
        self._renewer.start()
        return True

    def _renew(self, owner: dict) -> None:
        while not self._stop.wait(self.lease_s / 3):
            self._write(owner, overwrite=True)

    def holder(self) -> dict | None:
        if not self.client.status(self.path, strict=False):
            return None
        with self.client.read(self.path, encoding="utf-8") as fh:
            return json.loads(fh.read() or "null")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self.client.delete(self.path)


_depth = 0
_guard = threading.Lock()


def _backend(cfg: config.warehouse):
    uri = fs.join(cfg.uri, "_lock")
    if urlparse(uri).scheme == "hdfs":
        return _HdfsLease(fs.join(uri, "warehouse.lease"), cfg.lock_lease_s)
    return _FileLock(Path(fs.local_path(uri)) / "warehouse.lock")


@contextlib.contextmanager
def warehouse_lock(task: str, timeout_s: float | None = None):
    """Hold the warehouse lock while the block runs; wait for another holder up to ``timeout_s``
    (default ``[warehouse] lock_timeout_s``), then raise ``WarehouseLockTimeout`` naming the holder."""
    global _depth
    with _guard:
        if _depth:
            _depth += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _depth -= 1
        return
    cfg = config.warehouse()
    timeout_s = cfg.lock_timeout_s if timeout_s is None else timeout_s
    backend = _backend(cfg)
    deadline = time.monotonic() + timeout_s
    waited = False
    while not backend.try_acquire(owner_record(task)):
        holder = backend.holder()
        if time.monotonic() >= deadline:
            raise WarehouseLockTimeout(
                f"{task}: the warehouse is being written by {describe(holder)}; waited {timeout_s:.0f} s "
                "([warehouse] lock_timeout_s). Let it finish, or stop it, then run again")
        if not waited:
            log.info("%s: waiting up to %.0f s for the warehouse lock, held by %s", task, timeout_s,
                     describe(holder))
            waited = True
        time.sleep(POLL_S)
    with _guard:
        _depth = 1
    try:
        yield
    finally:
        with _guard:
            _depth = 0
        backend.release()
