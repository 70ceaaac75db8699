"""The benchmark's rows, their targets, and how ``python -m bench`` prints them: one table, then one JSON line.

Pure: no pipeline imports, so the formatting is tested with small inline rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """What a row must meet: ``kind="seconds"``: the pipeline figure at most ``limit`` seconds (shown in
    ``unit``, ``s`` or ``ms``); ``kind="ratio"``: pipeline / DuckDB at most ``limit``; ``rss_mib``: also the
    peak RSS at most that many MiB."""

    limit: float
    kind: str = "seconds"
    unit: str = "s"
    rss_mib: float | None = None

    def text(self) -> str:
        """The target as printed: ``<= 60 s``, ``<= 200 ms``, ``ratio <= 5x, peak RSS <= 2 GiB``."""
        if self.kind == "ratio":
            out = f"ratio <= {self.limit:g}x"
        else:
            out = f"<= {self.limit * 1000:g} ms" if self.unit == "ms" else f"<= {self.limit:g} s"
        if self.rss_mib is not None:
            out += f", peak RSS <= {self.rss_mib / 1024:g} GiB"
        return out


@dataclass
class Row:
    """One workload as measured in a run. ``status`` says why a figure is missing (``not run (...)``,
    ``failed: ...``); ``notes`` is printed in the table, ``detail`` only in the JSON."""

    key: str
    workload: str
    target: Target
    pipeline_s: float | None = None
    duckdb_s: float | None = None
    peak_rss_mib: float | None = None
    status: str = ""
    notes: str = ""
    detail: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """Pipeline seconds over DuckDB seconds, when both were measured."""
        if self.pipeline_s is None or not self.duckdb_s:
            return None
        return self.pipeline_s / self.duckdb_s

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None when the figures it needs were not measured."""
        if self.pipeline_s is None:
            return None
        if self.target.kind == "ratio":
            if self.ratio is None:
                return None
            ok = self.ratio <= self.target.limit
        else:
            ok = self.pipeline_s <= self.target.limit
        if self.target.rss_mib is not None:
            if self.peak_rss_mib is None:
                return None
            ok = ok and self.peak_rss_mib <= self.target.rss_mib
        return ok

    def as_json(self) -> dict:
        """The row as one JSON object: figures rounded, target text and limit, met, status, notes, detail."""
        return {
            "key": self.key, "workload": self.workload,
            "pipeline_s": _round(self.pipeline_s), "duckdb_s": _round(self.duckdb_s),
            "ratio": None if self.ratio is None else round(self.ratio, 2),
            "target": self.target.text(), "target_kind": self.target.kind, "target_limit": self.target.limit,
            "target_rss_mib": self.target.rss_mib, "peak_rss_mib": self.peak_rss_mib, "met": self.met,
            "status": self.status or "measured", "notes": self.notes, "detail": self.detail,
        }


def _round(value: float | None) -> float | None:
    """Seconds rounded for the JSON (milliseconds kept for sub-second figures)."""
    if value is None:
        return None
    return round(value, 3) if value < 10 else round(value, 1)


# The benchmark's rows, in the order they are printed: key, workload, target.
CATALOGUE: tuple[tuple[str, str, Target], ...] = (
    ("make-run", "`make run`: the demo window (7 days, `python -m pipeline run` on a fresh state dir)", Target(60)),
    ("one-day", "one day through luigid (`MartsReady` of one day, with checks and anomalies, after its ingestion)",
     Target(10)),
    ("year-ingest", "full real year, ingestion (`IngestBackfill`) vs DuckDB ingestion reference",
     Target(10, "ratio")),
    ("year-marts", "full real year, star schema + marts (`MartsBackfill`) + checks + anomalies, together with "
     "ingestion", Target(90)),
    ("anomalies", "anomaly detection over the year", Target(60)),
    ("sla", "one SLA evaluation (`python -m pipeline sla --now ...`)", Target(3)),
    ("review", "an analyst records an anomaly review (`python -m pipeline anomaly LINE_ID ACKNOWLEDGED --by bench`, "
               "median of 3 lines)",
     Target(1)),
    ("dashboard-first", "first dashboard page after HiveServer2 starts", Target(2)),
    ("dashboard-cached", "cached dashboard page", Target(0.3)),
    ("purchase-history", "one customer's purchase history over HiveServer2, p95", Target(0.2, unit="ms")),
    ("scale-1m-day", "scale: 1M-line synthetic day, ingestion + star + marts vs DuckDB same work on same files",
     Target(5, "ratio", rss_mib=2048)),
    ("scale-10m-month", "scale: 10M-line synthetic month (~330k lines a day) vs DuckDB", Target(3, "ratio")),
)
KEYS = tuple(key for key, _, _ in CATALOGUE)
SCALE_KEYS = ("scale-1m-day", "scale-10m-month")
DEFAULT_KEYS = tuple(k for k in KEYS if k not in SCALE_KEYS)


def new_rows() -> dict[str, Row]:
    """One empty row per catalogue entry, in the catalogue's order."""
    return {key: Row(key, workload, target) for key, workload, target in CATALOGUE}


def format_seconds(value: float | None, unit: str = "s") -> str:
    """Seconds as printed: ``200 ms`` in milliseconds, else ``0.27 s``, ``12.3 s`` or ``203 s``."""
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    if value < 1:
        return f"{value:.2f} s"
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


def _cells(row: Row) -> list[str]:
    """A row's cells: workload, pipeline, DuckDB, ratio, target, met, notes."""
    if row.pipeline_s is None:
        pipeline = row.status or "not measured"
    else:
        pipeline = format_seconds(row.pipeline_s, row.target.unit)
        if row.peak_rss_mib is not None:
            pipeline += f", peak RSS {row.peak_rss_mib / 1024:.1f} GiB"
    met = {True: "yes", False: "NO", None: "-"}[row.met]
    ratio = "-" if row.ratio is None else f"{row.ratio:.1f}x"
    notes = row.notes if row.pipeline_s is None or not row.status else f"{row.status}; {row.notes}".rstrip("; ")
    return [row.workload, pipeline, format_seconds(row.duckdb_s, row.target.unit), ratio, row.target.text(), met,
            notes]


def table(rows: list[Row]) -> list[str]:
    """The rows as one Markdown table (the README's figures come from it)."""
    lines = ["| workload | pipeline | DuckDB | ratio | target | met | notes |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in _cells(row)) + " |")
    return lines


def summary_json(rows: list[Row], run: dict) -> str:
    """One line of JSON: the run's facts (``run``) and every row."""
    return json.dumps({"run": run, "rows": [r.as_json() for r in rows]}, default=str)


def not_run(rows: dict[str, Row], keys: list[str], why: str) -> None:
    """Mark ``keys`` as not run this time, saying why (and so how to run them)."""
    for key in keys:
        rows[key].status = f"not run ({why})"


def failed(rows: dict[str, Row], keys: list[str], error: BaseException) -> None:
    """Mark the rows of ``keys`` that have no figure yet as failed, with the error's first line."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    for key in keys:
        if rows[key].pipeline_s is None and not rows[key].status:
            rows[key].status = f"failed: {first}"
