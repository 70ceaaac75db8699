"""Invalidate one date of the daily graph, so the next run publishes its tables again (Airflow's "clear").

An operator who fixed a transform, a data-quality rule or a reference file wants a published date rebuilt
without touching the rest of the warehouse. ``python -m pipeline invalidate --date D --from TASK`` removes
the Luigi markers of the table tasks of date D that are built from TASK (TASK included): the next run of D
(``python -m pipeline run --start D --end D``, or a Luigi build of ``MartsReady(D)``) finds exactly those
tasks incomplete and rebuilds them from the loaded lines, which are not touched.

The daily graph of D is what ``MartsReady(D)`` requires, transitively, restricted to the tasks of date D:
other dates' tasks (the previous day's customer sales, the anomaly baseline's facts) and date-less ones
(``DimDate``) stay published. Ingestion cannot be invalidated: a loaded batch is never loaded twice, and
late lines or lines released from quarantine are picked up by the next run on their own.

Before removing any marker the command leaves the date's invalidation note (``invalidation_marker``):
who, when, why and which tasks. ``MartsReady`` reads it to record the republication as a new revision of
``ecommerce_mart.marts_ready`` with that reason. Markers are removed from the most downstream task back to
TASK, so at every moment the removed ones are the downstream part of the plan; after a crash, running the
same command again removes the markers the note still lists.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import logging
from dataclasses import dataclass

import luigi
from luigi.task import flatten

from pipeline import clock
from pipeline.io import fs, lock
from pipeline.tasks import quality
from pipeline.tasks.base import TableForDate
from pipeline.tasks.ready import (
    CUSTOMER_MARTS,
    DATE_MARTS,
    DataQualityChecks,
    DimCustomer,
    MartsReady,
    invalidation,
    invalidation_marker,
)
from pipeline.tasks.star import CustomerSalesDaily, DimCountry, DimProduct, FactSales

log = logging.getLogger(__name__)

DEFAULT_FROM = "FactSales"
TABLE_FAMILIES: dict[str, type[TableForDate]] = {cls.__name__: cls for cls in (
    FactSales, DimProduct, DimCountry, CustomerSalesDaily, DimCustomer, *DATE_MARTS,
    *CUSTOMER_MARTS, quality.DetectAnomalies, DataQualityChecks, MartsReady)}
INGESTION_FAMILIES = ("ReplayDay", "ProductsSnapshot", "CountriesSnapshot", "TransactionBatch", "RetryQuarantine",
                      "IngestDay")


class Refused(ValueError):
    """The invalidation cannot be done as asked; the message says why in one line."""


@dataclass(frozen=True)
class Invalidation:
    """What invalidating a date does: the tasks whose markers go (dependencies first).

    ``note`` is the date's earlier invalidation note when the command finishes an interrupted one, else None.
    """

    day: dt.date
    from_family: str
    tasks: tuple[luigi.Task, ...]
    note: dict | None = None

    @property
    def resumed(self) -> bool:
        return self.note is not None


def _of_day(task: luigi.Task, day: dt.date) -> bool:
    return task.param_kwargs.get("date") == day


def daily_graph(day: dt.date) -> dict[luigi.Task, list[luigi.Task]]:
    """The tasks of date ``day`` that ``MartsReady(day)`` requires transitively, each with its requirements of
    that date, in the order ``requires()`` gives them. Only ``requires()`` is called."""
    root = MartsReady(day)
    graph: dict[luigi.Task, list[luigi.Task]] = {}
    todo = [root]
    while todo:
        task = todo.pop()
        if task in graph:
            continue
        graph[task] = [dep for dep in flatten(task.requires()) if _of_day(dep, day)]
        todo.extend(graph[task])
    return graph


def check_family(from_family: str) -> None:
    if from_family in INGESTION_FAMILIES:
        raise Refused(f"{from_family} is ingestion: re-ingesting a loaded batch is not supported (its lines are "
                      "in ecommerce_db once); late input and lines released from quarantine are picked up "
                      "automatically by the next run. Invalidate from a table task instead: "
                      f"{', '.join(TABLE_FAMILIES)}")
    if from_family not in TABLE_FAMILIES:
        raise Refused(f"unknown task {from_family!r}; invalidate from one of: {', '.join(TABLE_FAMILIES)}")


def plan(day: dt.date, from_family: str = DEFAULT_FROM) -> list[luigi.Task]:
    """The table tasks of ``day`` built from ``from_family``'s task of that date (it included), dependencies
    first: the tasks the next run rebuilds once their markers are gone. Raises ``Refused`` for an ingestion
    task or an unknown name. Reads no marker."""
    check_family(from_family)
    graph = daily_graph(day)
    start = next((t for t in graph if t.task_family == from_family), None)
    if start is None:
        return []
    needs_start: dict[luigi.Task, bool] = {}

    def built_from_start(task: luigi.Task) -> bool:
        if task not in needs_start:
            needs_start[task] = task == start or any(built_from_start(dep) for dep in graph[task])
        return needs_start[task]

    ordered: list[luigi.Task] = []
    visited: set[luigi.Task] = set()

    def visit(task: luigi.Task) -> None:
        if task in visited:
            return
        visited.add(task)
        for dep in graph[task]:
            visit(dep)
        if isinstance(task, TableForDate) and built_from_start(task):
            ordered.append(task)

    visit(MartsReady(day))
    return ordered


def marker_digest(task: luigi.Task) -> str | None:
    """A digest of the task's marker as it is now (None: no marker). A rebuild writes a different marker (its
    ``published_at``, a new data-quality run id), whatever clock the run was on."""
    out = task.output()
    if not out.exists():
        return None
    if isinstance(out, luigi.LocalTarget):
        text = fs.read_text(out)
    else:
        with out.fs.client.read(out.path, encoding="utf-8") as fh:
            text = fh.read()
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _left_by(note: dict, task: luigi.Task) -> bool:
    """Whether an interrupted invalidation still has to remove the task's marker: it exists and is the one the
    note recorded (a note without digests: any marker)."""
    digest = marker_digest(task)
    recorded = note.get("markers")
    return digest is not None and (recorded is None or recorded.get(task.task_id) == digest)


def prepare(day: dt.date, from_family: str = DEFAULT_FROM) -> Invalidation:
    """What ``python -m pipeline invalidate --date day --from from_family`` does now.

    A date whose marts are ready (``MartsReady(day)`` complete) gets a new invalidation. A date whose
    ``MartsReady`` marker is gone while its note lists tasks whose markers are still the ones it recorded
    gets the rest of that interrupted invalidation. Any other date is refused: nothing of it is
    published to invalidate, or the next run is already rebuilding it.
    """
    tasks = plan(day, from_family)
    if MartsReady(day).complete():
        return Invalidation(day, from_family, tuple(tasks))
    note = invalidation(day)
    if note.get("tasks"):
        listed = set(note["tasks"])
        left = [t for t in plan(day, note.get("from_task", DEFAULT_FROM)) if t.task_id in listed and _left_by(note, t)]
        if left:
            return Invalidation(day, note.get("from_task", DEFAULT_FROM), tuple(left), note)
        raise Refused(f"{day} is not complete: its invalidation from {note.get('from_task')} at "
                      f"{note['invalidated_at']} is done; the next run (python -m pipeline run --start {day} "
                      f"--end {day}) rebuilds it")
    raise Refused(f"{day} is not complete (MartsReady({day}) has no marker): there is nothing published to "
                  f"invalidate; build it with python -m pipeline run --start {day} --end {day}")


def note_for(inv: Invalidation, by: str, reason: str = "") -> dict:
    """The invalidation note of a new invalidation, as ``MartsReady`` reads it, with the digest of each marker
    it is about to remove (``markers``), so a rerun after a crash tells them from markers rebuilt since."""
    text = f"invalidated from {inv.from_family} by {by}" + (f": {reason}" if reason else "")
    return {"date": inv.day.isoformat(), "invalidated_at": clock.now().isoformat(), "from_task": inv.from_family,
            "tasks": [t.task_id for t in inv.tasks], "by": by, "reason": text,
            "markers": {t.task_id: marker_digest(t) for t in inv.tasks}}


def apply(inv: Invalidation, reason: str = "", by: str | None = None) -> tuple[dict, list[luigi.Task]]:
    """Write the date's invalidation note, then remove the markers of ``inv.tasks`` downstream first, holding
    the warehouse lock. Returns the note in force and the tasks whose marker was removed.

    The date is checked again under the lock; if a run changed it since ``inv`` was prepared, ``Refused``.
    Finishing an interrupted invalidation keeps its note.
    """
    command = f"python -m pipeline invalidate --date {inv.day} --from {inv.from_family}"
    with lock.warehouse_lock(command):
        now = prepare(inv.day, inv.from_family)
        if [t.task_id for t in now.tasks] != [t.task_id for t in inv.tasks] or now.resumed != inv.resumed:
            raise Refused(f"{inv.day} changed while the invalidation was being confirmed (a run published it); "
                          "run the command again")
        note = inv.note
        if note is None:
            note = note_for(inv, by or getpass.getuser(), reason)
            fs.write_json(invalidation_marker(inv.day), note)
            log.info("%s: invalidation noted: %s", inv.day, note)
        removed = []
        for task in reversed(inv.tasks):
            out = task.output()
            if out.exists():
                out.remove()
                removed.append(task)
                log.info("%s: removed the marker of %s (%s)", inv.day, task.task_id, out.path)
    return note, removed
