"""A dynamic class-data-sharing archive (AppCDS) of the Spark driver's classes, so a Spark JVM starts faster.

A Spark driver loads about 16,000 classes from PySpark's 279 jars each time it starts. The first session on a
machine, when the archive is missing, starts a trainer in the background
(``pipeline.engine.class_archive_trainer``): it opens a session like the pipeline's, reads the catalog,
writes a Parquet file and reads it back as rows and as Arrow, and its JVM writes the classes it loaded at exit
(``-XX:ArchiveClassesAtExit``) to a temporary file, renamed into place only when complete. Later drivers, the
pipeline's and HiveServer2's, map it (``-XX:SharedArchiveFile``).

The archive is keyed by the JVM and the jars it was made from (their directory, names and sizes: a JVM uses an
archive only with the class path it was made with) and by what the trainer runs (``WORKLOAD``), and kept per
machine under ``[spark] class_archive_dir``. An archive the JVM cannot use (another JDK, a changed class path)
is ignored silently (``-Xshare:auto``); a trainer that dies leaves no archive, and the next session starts
another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

DYNAMIC_ARCHIVE_MAGIC = bytes.fromhex("a8ab0bf0")  # 0xf00baba8, little-endian: written last, when complete
QUIET = "-Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
STALE_TRAINER_S = 600
WORKLOAD = "rows+arrow"  # what the trainer runs: a changed workload trains a new archive


def default_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ecommerce-dw"


def archive_path(directory: Path) -> Path:
    """Where the archive of this JVM and PySpark's jars lives: the name carries a digest of both."""
    import pyspark

    jars_dir = Path(pyspark.__file__).resolve().parent / "jars"
    java = shutil.which("java") or ""
    digest = hashlib.sha256(f"{os.path.realpath(java)}|{jars_dir}|{WORKLOAD}".encode())  # the JVM checks the class path
    for jar in sorted(jars_dir.glob("*.jar")):
        digest.update(f"{jar.name}:{jar.stat().st_size}".encode())
    return directory / f"spark-driver-{digest.hexdigest()[:16]}.jsa"


def complete(path: Path) -> bool:
    """True when ``path`` is a whole dynamic archive (the JVM writes its header last)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == DYNAMIC_ARCHIVE_MAGIC
    except OSError:
        return False


def java_options(path: Path) -> str:
    """Driver JVM options that map the archive when it is there; '' otherwise."""
    return f"-XX:SharedArchiveFile={path} {QUIET}" if complete(path) else ""


def start_trainer(path: Path) -> bool:
    """Start the background trainer unless one is already at work; True when started."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".training")
    try:
        if time.time() - lock.stat().st_mtime < STALE_TRAINER_S:
            return False
        lock.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    with open(path.with_suffix(".log"), "ab") as out:
        subprocess.Popen([sys.executable, "-m", "pipeline.engine.class_archive_trainer", str(path)], stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.info("training a Spark class archive in the background: %s", path)
    return True
