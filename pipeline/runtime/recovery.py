"""Recovery of luigid's state before a build: tasks left RUNNING by Luigi workers that no longer exist.

luigid keeps a killed worker's tasks RUNNING, with their resources held, until its ``[scheduler]
worker_disconnect_delay`` passes, and only the worker running a task may change its status. A build started in
that time finds its tasks "being run by another worker" or "not granted run permission" and ends at once.
:func:`recover` asks luigid which tasks are RUNNING on which workers; a task whose worker ran on this host
under a PID that no longer exists is reported FAILED in that worker's name (which frees the task and its
resources; the next build re-schedules it) and the dead worker is disabled. Tasks held by live workers, or by
workers on other hosts (whose PIDs cannot be checked here), are waited for up to ``[recovery]
wait_for_live_holders_s``. :func:`explain` turns a failed build's Luigi execution summary into terminal lines.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import luigi
import luigi.rpc

from pipeline import config

log = logging.getLogger(__name__)

DEAD = "dead"
ALIVE = "alive"
OTHER_HOST = "other host"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class HeldTask:
    """A task luigid shows RUNNING, with the worker that runs it as luigid knows it."""

    task_id: str
    name: str
    worker: str
    host: str | None
    pid: int | None
    since: float | None
    last_active: float | None
    resources: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What to do about the held tasks: take over ``dead`` ones, wait for ``waiting`` (task, verdict) pairs."""

    dead: list[HeldTask]
    waiting: list[tuple[HeldTask, str]]


@dataclass
class Report:
    """Outcome of :func:`recover`: tasks taken over, tasks still held when it went on, seconds waited."""

    taken_over: list[HeldTask] = field(default_factory=list)
    still_held: list[tuple[HeldTask, str]] = field(default_factory=list)
    waited_s: float = 0.0


def _as_int(value: object) -> int | None:
    """``value`` as an int, or None when it is missing or not a number."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def held_tasks(workers: Iterable[Mapping]) -> list[HeldTask]:
    """The RUNNING tasks in a ``worker_list()`` answer, one :class:`HeldTask` per task and worker."""
    held = []
    for worker in workers:
        for task_id, task in (worker.get("running") or {}).items():
            held.append(HeldTask(
                task_id=task_id,
                name=task.get("display_name") or task_id,
                worker=worker["name"],
                host=worker.get("host"),
                pid=_as_int(worker.get("pid")),
                since=task.get("time_running"),
                last_active=worker.get("last_active"),
                resources=dict(task.get("resources_running") or task.get("resources") or {}),
            ))
    return held


def classify(task: HeldTask, this_host: str, own_pid: int, pid_alive: Callable[[int], bool]) -> str:
    """Whether the worker holding ``task`` is DEAD, ALIVE, on an OTHER_HOST, or UNKNOWN (no host or pid).

    A worker on this host is dead when its pid no longer exists, or is this process's own pid (this process
    runs no Luigi worker while it recovers, so an earlier process that had the same pid is gone).
    """
    if not task.host or task.pid is None:
        return UNKNOWN
    if task.host != this_host:
        return OTHER_HOST
    if task.pid == own_pid or not pid_alive(task.pid):
        return DEAD
    return ALIVE


def concerns(task: HeldTask, resources: Collection[str] | None) -> bool:
    """Whether a build needing ``resources`` (None: any task luigid runs) must wait for ``task``."""
    return resources is None or bool(set(task.resources) & set(resources))


def plan(held: Iterable[HeldTask], this_host: str, own_pid: int, pid_alive: Callable[[int], bool],
         resources: Collection[str] | None = None) -> Plan:
    """Dead holders' tasks to take over (all of them) and the live or uncheckable ones to wait for."""
    dead, waiting = [], []
    for task in held:
        verdict = classify(task, this_host, own_pid, pid_alive)
        if verdict == DEAD:
            dead.append(task)
        elif concerns(task, resources):
            waiting.append((task, verdict))
    return Plan(dead, waiting)


def takeover_expl(task: HeldTask, own_pid: int) -> str:
    """The explanation luigid records for a task taken over from a dead worker."""
    return f"worker {task.worker} (pid {task.pid} on {task.host}) is gone; taken over by pid {own_pid}"


def _when(epoch: float | None, now: float) -> str:
    """An epoch time as local ``YYYY-MM-DD HH:MM:SS (N s ago)``, or ``an unknown time``."""
    if epoch is None:
        return "an unknown time"
    stamp = dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} ({max(0.0, now - epoch):.0f} s ago)"


def _resources(task: HeldTask) -> str:
    """The resources a task holds, as ``a=1, b=1`` or ``no resources``."""
    return ", ".join(f"{k}={v}" for k, v in sorted(task.resources.items())) or "no resources"


def describe_takeover(task: HeldTask, now: float) -> str:
    """One log line for a task taken over from a dead worker."""
    return (f"took over {task.name} from dead worker {task.worker} (pid {task.pid} on {task.host}, running since "
            f"{_when(task.since, now)}): marked FAILED in luigid, {_resources(task)} freed")


def describe_wait(task: HeldTask, verdict: str, now: float) -> str:
    """One log line for a task held by a live or uncheckable worker."""
    why = {ALIVE: "alive", OTHER_HOST: "on another host, cannot check its pid",
           UNKNOWN: "no host or pid known"}.get(verdict, verdict)
    return (f"  {task.name} holds {_resources(task)}, run by worker {task.worker} (pid {task.pid} on {task.host}, "
            f"{why}; last heard from {_when(task.last_active, now)}) since {_when(task.since, now)}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def connect(url: str, timeout_s: float) -> luigi.rpc.RemoteScheduler:
    """Luigi's RPC client for luigid at ``url``, trying each request once (no 30 s retry waits)."""
    scheduler = luigi.rpc.RemoteScheduler(url, connect_timeout=timeout_s)
    scheduler._rpc_retry_attempts = 1
    scheduler._rpc_log_retries = False
    return scheduler


def take_over(scheduler: luigi.rpc.RemoteScheduler, task: HeldTask, own_pid: int) -> None:
    """Report ``task`` FAILED in its dead worker's name (frees it and its resources), then disable that worker.

    Disabling removes the dead worker from the tasks it had scheduled, so luigid stops reserving resources for
    it; it can never ask for work again anyway.
    """
    scheduler.add_task(task_id=task.task_id, worker=task.worker, status="FAILED",
                       expl=takeover_expl(task, own_pid), resources=task.resources)
    scheduler.disable_worker(worker=task.worker)


def recover(url: str, resources: Collection[str] | None = None, settings: config.recovery | None = None,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Report:
    """Take over tasks of dead workers on this host and wait for the live holders a build needing ``resources``
    (None: any running task) would meet; returns what was done. Call it from a process running no Luigi worker.

    If luigid cannot be reached, logs that and returns an empty report (the build then reports it).
    """
    settings = settings or config.recovery()
    report = Report()
    if not settings.enabled:
        return report
    this_host, own_pid = socket.gethostname(), os.getpid()
    scheduler = connect(url, settings.rpc_timeout_s)
    t0 = clock()
    deadline = t0 + settings.wait_for_live_holders_s
    shown: set[str] = set()
    last_shown = None
    try:
        while True:
            todo = plan(held_tasks(scheduler.worker_list()), this_host, own_pid, pid_alive, resources)
            for task in todo.dead:
                take_over(scheduler, task, own_pid)
                log.warning("%s", describe_takeover(task, time.time()))
                report.taken_over.append(task)
            if not todo.waiting:
                report.still_held = []
                break
            report.still_held = todo.waiting
            left = deadline - clock()
            if left <= 0:
                log.warning("luigid still shows %d task(s) held by live or unchecked workers after %.0f s; "
                            "going on (the build will report them):", len(todo.waiting), clock() - t0)
                for task, verdict in todo.waiting:
                    log.warning("%s", describe_wait(task, verdict, time.time()))
                break
            ids = {task.task_id for task, _ in todo.waiting}
            if ids != shown or last_shown is None or clock() - last_shown >= 30:
                log.warning("waiting up to %.0f s more (looking every %.0f s) for %d task(s) held by other workers:",
                            left, settings.poll_s, len(todo.waiting))
                for task, verdict in todo.waiting:
                    log.warning("%s", describe_wait(task, verdict, time.time()))
                shown, last_shown = ids, clock()
            sleep(max(0.1, min(settings.poll_s, left)))
    except luigi.rpc.RPCError as exc:
        log.warning("recovery: luigid at %s did not answer (%s); going on without it", url, exc)
    finally:
        scheduler.close()
    report.waited_s = clock() - t0
    if report.waited_s >= 1 and not report.still_held:
        log.warning("the held tasks were released after %.0f s", report.waited_s)
    return report


_REASONS = (
    ("failed", "failed (tracebacks in the log)"),
    ("scheduling_error", "failed scheduling (complete() or requires() raised)"),
    ("run_by_other_worker", "were being run by another worker"),
    ("not_run", "were not granted run permission by the scheduler (a resource they need was held)"),
    ("still_pending_ext", "were missing external dependencies"),
    ("upstream_failure", "had failed dependencies"),
    ("upstream_run_by_other_worker", "had dependencies being run by another worker"),
    ("upstream_scheduling_error", "had dependencies whose scheduling failed"),
    ("upstream_missing_dependency", "had missing dependencies"),
)


def reasons(summary: Mapping[str, Collection], blockers: Mapping[str, Collection], shown: int = 5) -> list[str]:
    """Terminal lines naming why a build did not finish, from Luigi's summary sets (status -> tasks) and the
    other workers that ran its tasks (worker id -> tasks); at most ``shown`` task names per line."""
    lines = []
    for key, human in _REASONS:
        tasks = sorted(str(t) for t in summary.get(key, ()))
        if not tasks:
            continue
        more = f" and {len(tasks) - shown} more" if len(tasks) > shown else ""
        lines.append(f"{len(tasks)} task(s) {human}: {', '.join(tasks[:shown])}{more}")
    for worker, tasks in sorted(blockers.items()):
        names = sorted(str(t) for t in tasks)
        lines.append(f"worker {worker} was running {', '.join(names[:shown])}"
                     f"{f' and {len(names) - shown} more' if len(names) > shown else ''}")
    return lines


def explain(result: luigi.execution_summary.LuigiRunResult) -> list[str]:
    """:func:`reasons` for the result of ``luigi.build(..., detailed_summary=True)``."""
    from luigi import execution_summary

    summary = execution_summary._summary_dict(result.worker)
    blockers = execution_summary._get_external_workers(result.worker)
    lines = reasons(summary, blockers)
    if not lines:
        lines = [result.one_line_summary]
    return lines
