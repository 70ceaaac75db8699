"""luigid, with one correction to its scheduler; run as ``python -m pipeline.engine.scheduler_server`` with
luigid's own options.

luigi's scheduler records which worker runs a task (``worker_running``) when it hands the task out, and keeps
it after the run. A batch (``TransactionBatch(window=4,8,12,16,20)``) is not handed out: the worker reports it
RUNNING itself, and the scheduler takes that worker only when the task has none recorded. So when the same
batch runs again while luigid still holds the task from its last run (a rerun of a day, a recovery after a
crash), the task stays RUNNING "by" the previous, finished worker: the new worker's DONE is ignored, the
windows stay BATCH_RUNNING and the day never completes. Here a task reported RUNNING while the scheduler does
not hold it as running belongs to the worker that reports it.
"""

from __future__ import annotations

import sys

from luigi import cmdline, scheduler

_add_task = scheduler.Scheduler.add_task


def add_task(self, task_id=None, status=scheduler.PENDING, **kwargs):
    """``Scheduler.add_task``, after forgetting the worker of a task's previous run when a worker reports it
    RUNNING anew."""
    if status == scheduler.RUNNING and task_id is not None:
        task = self._state.get_task(task_id)
        if task is not None and task.status not in (scheduler.RUNNING, scheduler.BATCH_RUNNING):
            task.worker_running = None
    return _add_task(self, task_id=task_id, status=status, **kwargs)


def install() -> None:
    scheduler.Scheduler.add_task = add_task


if __name__ == "__main__":
    install()
    cmdline.luigid(sys.argv[1:])
