"""Backups of the catalog (the Hive metastore's database) and of luigid's task history, and restoring one.

A backup is a directory ``<backups>/<UTC timestamp>/`` (``[backup] dir``, default ``<state dir>/backups``)::

    manifest.json              what was copied, from where, sizes, row counts, durations
    metastore/metastore_db/    Derby: an online, transactionally consistent copy (SYSCS_BACKUP_DATABASE)
    metastore/metastore.dump   PostgreSQL ([metastore] db = postgresql): pg_dump, custom format
    luigid/task-history.db     SQLite: Python's online backup API
    luigid/task-history.dump   PostgreSQL task history: pg_dump

It is written as ``<name>.partial`` and renamed when complete; the newest ``[backup] keep`` complete backups
are kept. Embedded Derby admits a single JVM, so a running metastore is asked to back itself up
(``pipeline.engine.metastore_server``: a request file and SIGUSR1); a stopped one is copied as files.

A restore stops the metastore, HiveServer2 and luigid, puts the backed-up databases in place (the replaced
ones are kept aside as ``<name>.replaced-<timestamp>``), starts them again, and re-points every table and
partition at the live version the warehouse's ``_current`` pointers name (``catalog.rebuild``): versions
published after the backup are kept, and versions deleted since by the garbage collector are not referenced.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

from pipeline import config
from pipeline.io.backup_store import MANIFEST, NAME, PARTIAL, backups_dir, list_backups

log = logging.getLogger(__name__)

DERBY_LOCKS = {"db.lck", "dbex.lck"}


class BackupError(RuntimeError):
    """A backup or restore cannot be done; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------- pure logic


def backup_name(now: dt.datetime) -> str:
    """The directory name of a backup taken at ``now`` (UTC): sorts by time."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


def to_prune(names: list[str], keep: int, current: str) -> list[str]:
    """The backup directories to delete after ``current`` completed: complete backups beyond the newest
    ``keep``, and unfinished ones (``.partial``) older than ``current``. Other names are never touched."""
    complete = sorted(n for n in names if NAME.fullmatch(n))
    old = complete[:-keep] if keep > 0 else []
    abandoned = sorted(n for n in names if n.endswith(PARTIAL) and NAME.fullmatch(n[:-len(PARTIAL)])
                       and n[:-len(PARTIAL)] < current)
    return old + abandoned


def libpq_url(url: str, user: str = "") -> str:
    """A libpq connection URI (for pg_dump / pg_restore) from a JDBC or SQLAlchemy PostgreSQL URL."""
    if url.startswith("jdbc:"):
        url = url[len("jdbc:"):]
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        raise BackupError(f"{url!r} is not a PostgreSQL URL")
    if user and "@" not in rest.split("/", 1)[0]:
        rest = f"{user}@{rest}"
    return f"postgresql://{rest}"


def replaced_name(path: Path, now: dt.datetime) -> Path:
    """Where a database replaced by a restore is kept aside."""
    return path.with_name(f"{path.name}.replaced-{now:%Y%m%dT%H%M%SZ}")


# ------------------------------------------------------------------------------------------------------ I/O


def derby_path() -> Path:
    """The embedded metastore's Derby database (``pipeline.engine.services.Metastore``)."""
    return config.state().path / "metastore" / "metastore_db"


def requests_dir() -> Path:
    """Where the metastore server looks for online-backup requests (next to its Derby database)."""
    return derby_path().parent / "backup-requests"


def history_source() -> Path | str:
    """luigid's task history: the SQLite file, or a PostgreSQL URL (``[sla] task_history_db``)."""
    from pipeline.io import history

    return history.database(config.sla().task_history_db)


def _metastore_service():
    from pipeline.engine import services

    return next(svc for svc in services.all_services() if svc.name == "metastore")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _run(argv: list[str], env: dict, timeout_s: float, what: str) -> None:
    """Run a PostgreSQL client tool; a failure becomes one clear ``BackupError``."""
    if not shutil.which(argv[0]):
        raise BackupError(f"{what}: {argv[0]} is not installed (apt-get install -y postgresql-client)")
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what}: {argv[0]} did not finish within {timeout_s:.0f} s ([backup] timeout_s)") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[-500:]
        raise BackupError(f"{what}: {argv[0]} failed with exit code {proc.returncode}: {detail}")


def _pg_env(password_env: str | None) -> dict:
    env = dict(os.environ)
    if password_env and os.environ.get(password_env):
        env["PGPASSWORD"] = os.environ[password_env]
    return env


def _derby_online(target: Path, pid: int, timeout_s: float) -> None:
    """Ask the running metastore (``pid``) to back its Derby database up into ``target``."""
    requests = requests_dir()
    try:
        responder = int((requests / "responder.pid").read_text().strip())
    except (OSError, ValueError):
        responder = None
    if responder != pid:
        raise BackupError(f"the running metastore (pid {pid}) does not take backup requests (it was started before "
                          "backups existed): restart it (python -m pipeline services stop && python -m pipeline "
                          "services start), then back up again")
    rid = uuid.uuid4().hex
    request, done, error = (requests / f"{rid}{suffix}" for suffix in (".request", ".done", ".error"))
    tmp = requests / f".{rid}.tmp"
    tmp.write_text(json.dumps({"target": str(target)}))
    tmp.replace(request)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done.exists():
            done.unlink()
            return
        if error.exists():
            message = error.read_text().strip()
            error.unlink()
            raise BackupError(f"the metastore could not back up its Derby database: {message}")
        time.sleep(0.2)
    request.unlink(missing_ok=True)
    raise BackupError(f"the metastore (pid {pid}) did not answer the backup request within {timeout_s:.0f} s "
                      f"([backup] timeout_s); see {_metastore_service().log_file}")


def _backup_metastore(out: Path, timeout_s: float) -> dict:
    """Copy the metastore's database into ``out/metastore``."""
    ms = config.metastore()
    dest = out / "metastore"
    dest.mkdir()
    if ms.db == "postgresql":
        dump = dest / "metastore.dump"
        _run(["pg_dump", "--format=custom", f"--file={dump}", f"--dbname={libpq_url(ms.db_url, ms.db_user)}"],
             _pg_env(config.METASTORE_DB_PASSWORD_ENV), timeout_s, "metastore backup")
        return {"kind": "postgresql", "path": "metastore/metastore.dump", "source": ms.db_url, "bytes": _size(dump)}
    source = derby_path()
    svc = _metastore_service()
    pid = svc.pid()
    if pid is not None and svc.healthy():
        _derby_online(dest, pid, timeout_s)
        how = "online"
    elif pid is None and not svc.healthy():
        if not source.exists():
            raise BackupError(f"no metastore database at {source}: nothing to back up")
        shutil.copytree(source, dest / source.name, ignore=lambda _d, names: [n for n in names if n in DERBY_LOCKS])
        how = "offline"
    elif pid is not None:
        raise BackupError(f"the metastore (pid {pid}) is not answering on {svc.host}:{svc.port}; "
                          f"wait until it is up (see {svc.log_file}) and run the backup again")
    else:
        raise BackupError(f"a metastore answers on {svc.host}:{svc.port} but was not started from this state dir "
                          f"({config.state().path}); run the backup where it runs")
    copy = dest / source.name
    if not (copy / "service.properties").exists():
        raise BackupError(f"the Derby backup in {copy} is incomplete (no service.properties)")
    return {"kind": "derby", "how": how, "path": f"metastore/{source.name}", "source": str(source),
            "bytes": _size(copy)}


def _sqlite_counts(path: Path) -> dict:
    counts = {}
    with sqlite3.connect(path) as conn:
        for table in ("tasks", "task_events"):
            try:
                counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            except sqlite3.OperationalError:
                counts[table] = None
    return counts


def _backup_history(out: Path, timeout_s: float) -> dict | None:
    """Copy luigid's task history into ``out/luigid``; None when luigid has not written one yet."""
    source = history_source()
    dest = out / "luigid"
    if isinstance(source, str):
        dest.mkdir()
        dump = dest / "task-history.dump"
        _run(["pg_dump", "--format=custom", f"--file={dump}", f"--dbname={libpq_url(source)}"], _pg_env(None),
             timeout_s, "task history backup")
        return {"kind": "postgresql", "path": "luigid/task-history.dump", "source": source, "bytes": _size(dump)}
    if not source.exists():
        log.warning("no luigid task history at %s: not in this backup", source)
        return None
    dest.mkdir()
    copy = dest / source.name
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return {"kind": "sqlite", "path": f"luigid/{source.name}", "source": str(source), "bytes": _size(copy),
            "rows": _sqlite_counts(copy)}


def create() -> dict:
    """Back up the catalog and the task history now; prune old backups. Returns the manifest."""
    cfg = config.backup()
    t0 = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    name = backup_name(now)
    root = backups_dir()
    root.mkdir(parents=True, exist_ok=True)
    work = root / f"{name}{PARTIAL}"
    try:
        work.mkdir()
    except FileExistsError:
        raise BackupError(f"a backup named {name} is already being written in {root}; try again") from None
    try:
        t1 = time.monotonic()
        metastore = _backup_metastore(work, cfg.timeout_s)
        metastore["seconds"] = round(time.monotonic() - t1, 2)
        t1 = time.monotonic()
        history = _backup_history(work, cfg.timeout_s)
        if history:
            history["seconds"] = round(time.monotonic() - t1, 2)
        manifest = {"format": 1, "name": name, "created_at": f"{now:%Y-%m-%dT%H:%M:%SZ}",
                    "warehouse": config.warehouse().uri, "metastore": metastore, "history": history,
                    "seconds": round(time.monotonic() - t0, 2)}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        work.rename(root / name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    pruned = to_prune([p.name for p in root.iterdir()], cfg.keep, name)
    for old in pruned:
        shutil.rmtree(root / old, ignore_errors=True)
    log.info("catalog backup %s written in %.1f s; pruned %s", root / name, manifest["seconds"], pruned or "none")
    return {**manifest, "dir": str(root / name), "pruned": pruned}


def resolve(name_or_path: str) -> Path:
    """A backup given as a directory or as a name under the backups directory; ``BackupError`` otherwise."""
    candidates = [Path(name_or_path).expanduser(), backups_dir() / name_or_path]
    for path in candidates:
        if (path / MANIFEST).is_file():
            return path.resolve()
    known = ", ".join(p.name for p in list_backups()[-5:]) or "none"
    raise BackupError(f"{name_or_path}: not a backup (no {MANIFEST}); backups in {backups_dir()}: {known}")


def _stage_copy(src: Path, dst: Path) -> Path:
    """Copy a backed-up database next to where it goes (before any service stops), for a quick swap."""
    staged = dst.with_name(f"{dst.name}.restoring")
    if staged.is_dir():
        shutil.rmtree(staged)
    elif staged.exists():
        staged.unlink()
    if src.is_dir():
        shutil.copytree(src, staged)
    else:
        shutil.copy2(src, staged)
    return staged


def _swap(staged: Path, dst: Path, now: dt.datetime) -> str | None:
    """Put ``staged`` at ``dst``; the database it replaces (and SQLite's side files) is kept aside."""
    aside = None
    if dst.exists():
        aside = replaced_name(dst, now)
        dst.rename(aside)
    for suffix in ("-journal", "-wal", "-shm"):
        side = dst.with_name(dst.name + suffix)
        if side.exists():
            side.rename(replaced_name(side, now))
    staged.rename(dst)
    return str(aside) if aside else None


def _require_stopped() -> None:
    """On a cluster the services are not ours: the operator stops them before a restore."""
    from pipeline.engine import services

    running = [svc.name for svc in services.all_services() if svc.name in ("metastore", "luigid") and svc.healthy()]
    if running:
        raise BackupError(f"[services] manage = false and {', '.join(running)} still answer(s): stop them before "
                          "restoring, then start them again after")


def restore(name_or_path: str, rebuild: bool = True) -> dict:
    """Put a backup's catalog and task history in place of the current ones (services stopped meanwhile),
    then (``rebuild``) re-point the catalog at the warehouse's live versions. Holds the warehouse lock."""
    from pipeline.engine import services
    from pipeline.io.lock import warehouse_lock

    source = resolve(name_or_path)
    manifest = json.loads((source / MANIFEST).read_text())
    ms = config.metastore()
    if manifest["metastore"]["kind"] != ms.db:
        raise BackupError(f"{source.name} holds a {manifest['metastore']['kind']} catalog but [metastore] db = "
                          f"{ms.db}")
    history = manifest.get("history")
    target = history_source()
    if history and (history["kind"] == "sqlite") != isinstance(target, Path):
        raise BackupError(f"{source.name} holds a {history['kind']} task history but luigid's is {target}")
    t0 = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    result: dict = {"backup": str(source), "created_at": manifest["created_at"], "replaced": {}}
    with warehouse_lock(f"restore {source.name}"):
        staged = {}
        if ms.db == "derby":
            staged[derby_path()] = _stage_copy(source / manifest["metastore"]["path"], derby_path())
        if history and isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            staged[target] = _stage_copy(source / history["path"], target)
        managed = services.managed()
        t1 = time.monotonic()
        if managed:
            services.stop_all()
        else:
            _require_stopped()
        for dst, copy in staged.items():
            result["replaced"][str(dst)] = _swap(copy, dst, now)
        if ms.db == "postgresql":
            _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                  f"--dbname={libpq_url(ms.db_url, ms.db_user)}", str(source / manifest["metastore"]["path"])],
                 _pg_env(config.METASTORE_DB_PASSWORD_ENV), config.backup().timeout_s, "metastore restore")
        if history and isinstance(target, str):
            _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                  f"--dbname={libpq_url(target)}", str(source / history["path"])], _pg_env(None),
                 config.backup().timeout_s, "task history restore")
        if managed:
            services.start_all()
        result["services_down_s"] = round(time.monotonic() - t1, 1)
        if rebuild:
            from pipeline.engine.spark import get_spark
            from pipeline.io import catalog

            result["rebuild"] = catalog.rebuild(get_spark("catalog-restore"))
    result["seconds"] = round(time.monotonic() - t0, 1)
    log.info("restored %s in %.1f s", source, result["seconds"])
    return result

