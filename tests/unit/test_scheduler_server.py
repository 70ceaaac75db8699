"""luigid's scheduler (the real ``luigi.scheduler.Scheduler``, in process) with the correction of
``pipeline.engine.scheduler_server``: a batch that runs again under the same id can be marked done, and a
task marked done a moment ago can be claimed again."""

import pytest
from luigi import scheduler

from pipeline.engine import scheduler_server, services

BATCH = "TransactionBatch_2010_12_02_4_8_12_16_20_dd44917d82"
WINDOWS = [f"TransactionBatch_2010_12_02_{w}" for w in (4, 8, 12, 16, 20)]


def _run_batch(sched: scheduler.Scheduler, worker: str) -> None:
    """What a worker does with a batch: its windows PENDING, the batch from get_work reported RUNNING, then DONE."""
    sched.add_task_batcher(worker=worker, task_family="TransactionBatch", batched_args=["window"])
    for window in WINDOWS:
        sched.add_task(worker=worker, task_id=window, family="TransactionBatch", status=scheduler.PENDING,
                       params={"date": "2010-12-02", "window": window.rsplit("_", 1)[1]}, batchable=True)
    work = sched.get_work(worker=worker)
    assert work["batch_id"] is not None and sorted(work["batch_task_ids"]) == sorted(WINDOWS)
    sched.add_task(worker=worker, task_id=BATCH, family="TransactionBatch", status=scheduler.RUNNING,
                   batch_id=work["batch_id"], params={"date": "2010-12-02", "window": "4,8,12,16,20"})
    sched.add_task(worker=worker, task_id=BATCH, status=scheduler.DONE)


@pytest.fixture
def sched(tmp_path):
    return scheduler.Scheduler(state_path=str(tmp_path / "state.pickle"), stable_done_cooldown_secs=0,
                               record_task_history=False)


def test_the_same_batch_run_again_by_another_worker_is_done(sched, monkeypatch):
    monkeypatch.setattr(scheduler.Scheduler, "add_task", scheduler_server.add_task)
    _run_batch(sched, "first-worker")
    _run_batch(sched, "second-worker")
    state = sched.task_list("", "")
    assert state[BATCH]["status"] == scheduler.DONE
    assert all(state[w]["status"] == scheduler.DONE for w in WINDOWS)
    assert state[BATCH]["worker_running"] is None or state[BATCH]["worker_running"] == "second-worker"


def test_luigi_alone_leaves_that_batch_running_by_the_first_worker(sched):
    """The defect the correction is for, as luigi has it: if this starts failing, luigi fixed it."""
    _run_batch(sched, "first-worker")
    _run_batch(sched, "second-worker")
    state = sched.task_list("", "")
    assert state[BATCH]["status"] == scheduler.RUNNING
    assert state[BATCH]["worker_running"] == "first-worker"


def _rebuild_right_after_done(sched: scheduler.Scheduler) -> dict:
    """A task built and marked DONE, then (its date invalidated) claimed PENDING by the next run's worker at once."""
    task = "MartsReady_2010_12_13"
    sched.add_task(worker="first-run", task_id=task, family="MartsReady", status=scheduler.PENDING)
    assert sched.get_work(worker="first-run")["task_id"] == task
    sched.add_task(worker="first-run", task_id=task, status=scheduler.DONE)
    sched.add_task(worker="rebuild", task_id=task, family="MartsReady", status=scheduler.PENDING)
    return sched.get_work(worker="rebuild")


def test_with_the_configured_cooldown_a_task_done_a_moment_ago_is_built_again(tmp_path):
    settings = services.scheduler_settings()
    assert settings["stable_done_cooldown_secs"] == "0"
    sched = scheduler.Scheduler(state_path=str(tmp_path / "state.pickle"), record_task_history=False,
                                stable_done_cooldown_secs=int(settings["stable_done_cooldown_secs"]))
    assert _rebuild_right_after_done(sched)["task_id"] == "MartsReady_2010_12_13"


def test_with_luigis_default_cooldown_that_claim_is_ignored(tmp_path):
    """Why the cooldown is configured: luigi's default (10 s) drops the claim and the rebuild never runs."""
    sched = scheduler.Scheduler(state_path=str(tmp_path / "state.pickle"), record_task_history=False,
                                stable_done_cooldown_secs=10)
    work = _rebuild_right_after_done(sched)
    assert work["task_id"] is None and work["n_pending_tasks"] == 0
