"""Named crash points: where a process may die between two steps of a publication.

``ECOM_CRASH_AT=<point>[@<TaskFamily>][:<n>]`` makes the process exit at once (``os._exit(137)``, as after
SIGKILL: no cleanup, no ``finally``, no marker) the ``n``-th time (default 1) it reaches ``<point>``; with
``@<TaskFamily>``, the ``n``-th time it reaches it while running a task of that family (``task``). Unset, a
point is one dictionary lookup. The fault-injection tests kill a run at each point and check that rerunning it
converges to the tables of a run that never crashed.
"""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger(__name__)

ENV = "ECOM_CRASH_AT"
EXIT_CODE = 137

POINTS: dict[str, str] = {
    "publish.written": "a table or partition version is written, the catalog not swapped yet",
    "publish.swapped": "the catalog points at the new version, its _current pointer not written yet",
    "publish.partitions_added": "new partitions are registered, existing ones not swapped yet",
    "ingest.raw_published": "a batch's lines are in transactions_raw, its invoice-date index not yet",
    "ingest.quarantine_published": "the batch's quarantine is published, its audit rows not yet",
    "snapshot.published": "a master table carries the snapshot, its audit rows not yet",
    "retry.raw_published": "released lines are in transactions_raw, the quarantine not rewritten yet",
    "retry.quarantine_published": "the quarantine marks the lines released, the audit not updated yet",
    "dq.results_published": "data-quality results are recorded, the task's verdict and marker not yet",
    "alerts.delivered": "an alert batch is delivered, not yet recorded in ecommerce_mart.alerts",
    "anomaly.log_published": "a status change is in anomaly_status_log, the anomalies partition not yet",
    "sla.published": "sla_status is published, alerts not sent yet",
    "task.before_marker": "every table of a task is published, its Luigi marker not written yet",
}


def _parse(spec: str) -> tuple[str, str | None, int] | None:
    if not spec:
        return None
    where, _, nth = spec.partition(":")
    name, _, family = where.partition("@")
    if name not in POINTS:
        raise ValueError(f"${ENV}={spec!r}: unknown crash point {name!r}; known: {', '.join(POINTS)}")
    return name, family or None, int(nth or 1)


_target = _parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}
_task: list[str] = []


@contextlib.contextmanager
def task(family: str):
    """Mark the points reached inside as reached by a task of ``family``."""
    _task.append(family)
    try:
        yield
    finally:
        _task.pop()


def point(name: str) -> None:
    """Die here if ``$ECOM_CRASH_AT`` names this point (and the running task's family) and its hit count is
    reached."""
    if _target is None or _target[0] != name or (_target[1] and _target[1] not in _task[-1:]):
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _target[2]:
        log.error("crash point %s reached (hit %d%s): exiting with %d", name, _hits[name],
                  f" in {_task[-1]}" if _task else "", EXIT_CODE)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_CODE)
