"""The HiveServer2 query guard: a Spark SQL extension (``guard/QueryGuard.java``) built into a jar on demand.

HiveServer2 is a query service, not a shell. The Spark Thrift Server loads the guard with
``spark.sql.extensions`` (``pipeline.engine.services.HiveServer2``; the pipeline's own Spark session does not) and
its check rule refuses, before anything runs, reflection (``reflect``, ``java_method``, ``try_reflect``),
``SELECT TRANSFORM ... USING`` scripts, ``ADD JAR/FILE/ARCHIVE``, ``CREATE FUNCTION``, ``LOAD DATA``,
switching ``spark.sql.runSQLOnFiles`` back on, and the data source DDL that would read or write files of the
client's choosing anyway: ``CREATE [GLOBAL] TEMPORARY VIEW ... USING``, ``INSERT OVERWRITE [LOCAL] DIRECTORY``,
a table or database created or altered with a ``LOCATION`` (or a ``path`` option / serde property, or a
partition's location), and a table ``USING`` a source that is no file format (``jdbc``, ...). Tables created
through HiveServer2 are managed ones, in the warehouse. Every refusal is an ``AnalysisException`` whose
message starts with :data:`REFUSED`.

The jar is compiled with ``javac`` against the jars of the installed pyspark and kept as
``<state>/guard/query-guard-<hash>.jar``; the hash covers the source and the Spark version, so an edit or a
pyspark upgrade builds a new jar and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

SOURCE = Path(__file__).with_name("guard") / "QueryGuard.java"
EXTENSION = "ecommerce.guard.QueryGuard"  # the value of spark.sql.extensions
REFUSED = "refused by the query guard"
INSTALL_JDK = "install a JDK: apt-get install openjdk-17-jdk-headless"


class GuardBuildError(RuntimeError):
    """The guard jar cannot be built; the message says what to do."""


def java_tool(name: str) -> str | None:
    """A JDK/JRE program (``java``, ``javac``) from ``$JAVA_HOME/bin`` first, then ``$PATH``."""
    search = os.environ.get("PATH", "")
    if os.environ.get("JAVA_HOME"):
        search = f"{os.environ['JAVA_HOME']}/bin:{search}"
    return shutil.which(name, path=search)


def find_javac() -> str:
    javac = java_tool("javac")
    if not javac:
        raise GuardBuildError(f"javac not found: the HiveServer2 query guard is compiled on first start; {INSTALL_JDK}")
    return javac


def spark_version(jars_dir: Path) -> str:
    """The Spark build the guard compiles against (the name of its catalyst jar)."""
    catalyst = sorted(p.name for p in jars_dir.glob("spark-catalyst_*.jar"))
    if not catalyst:
        raise GuardBuildError(f"no spark-catalyst jar in {jars_dir}: is pyspark installed?")
    return catalyst[-1]


def jar_path(state_dir: Path, jars_dir: Path) -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + b"\0" + spark_version(jars_dir).encode()).hexdigest()[:16]
    return state_dir / "guard" / f"query-guard-{digest}.jar"


def ensure_jar(state_dir: Path, jars_dir: Path) -> Path:
    """The guard jar for this source and Spark, compiled now if it is not there yet."""
    jar = jar_path(state_dir, jars_dir)
    if jar.exists():
        return jar
    javac = find_javac()
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=jar.parent, prefix=".build-") as tmp:
        classes = Path(tmp) / "classes"
        proc = subprocess.run(
            [javac, "--release", "17", "-nowarn", "-Xlint:-path", "-encoding", "UTF-8", "-d", str(classes),
             "-cp", f"{jars_dir}/*", str(SOURCE)],
            capture_output=True, text=True, timeout=300,
        )
        if proc.returncode != 0:
            raise GuardBuildError(f"javac failed to compile {SOURCE} against {jars_dir}:\n"
                                  f"{(proc.stdout + proc.stderr)[-4000:]}")
        partial = Path(tmp) / jar.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: pipeline.engine.query_guard\n\n")
            for path in sorted(classes.rglob("*.class")):
                zf.write(path, path.relative_to(classes).as_posix())
        partial.replace(jar)  # atomic: a concurrent start sees no jar or a whole one
    return jar
