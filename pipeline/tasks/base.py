"""What every task that writes the warehouse shares: the writer lock around ``run`` and the marker last."""

from __future__ import annotations

import functools
import logging

import luigi

from pipeline import fs
from pipeline.io import crash, lock

log = logging.getLogger(__name__)


def writes_warehouse(run):
    """Run the task holding the warehouse lock. A task that another writer completed while this one waited
    for the lock does nothing (its marker is there)."""

    @functools.wraps(run)
    def locked(self: luigi.Task):
        with lock.warehouse_lock(self.task_id), crash.task(self.task_family):
            if self.complete():
                log.info("%s was completed by another writer while waiting for the warehouse lock", self.task_id)
                return None
            return run(self)

    return locked


def write_marker(target: luigi.Target, payload: dict) -> None:
    """Write a task's marker: the last step of its run, after every table it publishes."""
    crash.point("task.before_marker")
    fs.write_json(target, payload)
