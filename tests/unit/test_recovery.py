"""Decision logic of pipeline.runtime.recovery on plain worker_list() answers: which held tasks are dead
(taken over), alive or uncheckable (waited for), and the reasons printed after a failed build."""

from pipeline.runtime import recovery

HOST = "etl-1"
OWN_PID = 4242
LIVE_PIDS = {100, 4242}


def _alive(pid: int) -> bool:
    return pid in LIVE_PIDS


def _task(task_id: str, resources: dict | None = None, since: float = 1_700_000_000.0) -> dict:
    return {"display_name": task_id.split("_")[0] + "(date=2010-12-01)", "status": "RUNNING",
            "worker_running": "?", "time_running": since, "resources": resources or {},
            "resources_running": resources or {}}


def _worker(name: str, host: str | None, pid, running: dict) -> dict:
    info = {"name": name, "last_active": 1_700_000_050.0, "started": 1_699_999_000.0, "state": "active",
            "salt": "000000001", "workers": 1, "username": "etl", "running": running, "num_running": len(running)}
    if host is not None:
        info["host"] = host
    if pid is not None:
        info["pid"] = pid
    return info


WORKERS = [
    _worker("w-dead", HOST, 99, {"FactSales_a": _task("FactSales_a", {"ecommerce_db_writer": 1})}),
    _worker("w-live", HOST, 100, {"SlaMonitor_b": _task("SlaMonitor_b", {"alerts_writer": 1})}),
    _worker("w-remote", "etl-2", 99, {"MartsReady_c": _task("MartsReady_c", {"ecommerce_db_writer": 1,
                                                                             "alerts_writer": 1})}),
    _worker("w-nopid", HOST, None, {"Plain_d": _task("Plain_d")}),
    _worker("w-own-pid", HOST, OWN_PID, {"TransactionBatch_e": _task("TransactionBatch_e",
                                                                      {"ecommerce_db_writer": 1})}),
    _worker("w-idle", HOST, 98, {}),
]


def _verdicts(held):
    return {t.worker: recovery.classify(t, HOST, OWN_PID, _alive) for t in held}


def test_held_tasks_reads_worker_list():
    held = recovery.held_tasks(WORKERS)
    assert [(t.task_id, t.worker, t.host, t.pid) for t in held] == [
        ("FactSales_a", "w-dead", HOST, 99), ("SlaMonitor_b", "w-live", HOST, 100),
        ("MartsReady_c", "w-remote", "etl-2", 99), ("Plain_d", "w-nopid", HOST, None),
        ("TransactionBatch_e", "w-own-pid", HOST, OWN_PID)]
    assert held[0].resources == {"ecommerce_db_writer": 1}
    assert held[0].since == 1_700_000_000.0 and held[0].last_active == 1_700_000_050.0


def test_pid_given_as_text_is_read():
    (held,) = recovery.held_tasks([_worker("w", HOST, "99", {"T_x": _task("T_x")})])
    assert held.pid == 99


def test_classify_dead_alive_other_host_unknown():
    assert _verdicts(recovery.held_tasks(WORKERS)) == {
        "w-dead": recovery.DEAD,
        "w-live": recovery.ALIVE,
        "w-remote": recovery.OTHER_HOST,
        "w-nopid": recovery.UNKNOWN,
        "w-own-pid": recovery.DEAD,
    }


def test_same_pid_on_another_host_is_not_checked_here():
    (remote,) = recovery.held_tasks([_worker("w", "etl-2", 100, {"T_x": _task("T_x")})])
    assert recovery.classify(remote, HOST, OWN_PID, lambda pid: False) == recovery.OTHER_HOST


def test_plan_takes_over_every_dead_task_and_waits_for_all_others():
    plan = recovery.plan(recovery.held_tasks(WORKERS), HOST, OWN_PID, _alive)
    assert [t.worker for t in plan.dead] == ["w-dead", "w-own-pid"]
    assert [(t.worker, v) for t, v in plan.waiting] == [
        ("w-live", recovery.ALIVE), ("w-remote", recovery.OTHER_HOST), ("w-nopid", recovery.UNKNOWN)]


def test_plan_waits_only_for_holders_of_the_needed_resources():
    plan = recovery.plan(recovery.held_tasks(WORKERS), HOST, OWN_PID, _alive, resources={"alerts_writer"})
    assert [t.worker for t in plan.dead] == ["w-dead", "w-own-pid"]
    assert [t.worker for t, _ in plan.waiting] == ["w-live", "w-remote"]


def test_nothing_held_nothing_to_do():
    plan = recovery.plan(recovery.held_tasks([_worker("w-idle", HOST, 98, {})]), HOST, OWN_PID, _alive)
    assert plan.dead == [] and plan.waiting == []


def test_takeover_expl_and_log_line_name_the_dead_worker():
    dead = recovery.held_tasks(WORKERS)[0]
    assert recovery.takeover_expl(dead, OWN_PID) == "worker w-dead (pid 99 on etl-1) is gone; taken over by pid 4242"
    line = recovery.describe_takeover(dead, now=1_700_000_030.0)
    assert "FactSales(date=2010-12-01)" in line and "w-dead" in line and "pid 99 on etl-1" in line
    assert "(30 s ago)" in line and "ecommerce_db_writer=1 freed" in line


def test_wait_line_says_who_holds_what_since_when():
    remote = recovery.held_tasks(WORKERS)[2]
    line = recovery.describe_wait(remote, recovery.OTHER_HOST, now=1_700_000_060.0)
    assert "MartsReady(date=2010-12-01) holds alerts_writer=1, ecommerce_db_writer=1" in line
    assert "pid 99 on etl-2, on another host" in line and "last heard from" in line and "(60 s ago)" in line


def test_reasons_name_tasks_per_cause_and_the_blocking_workers():
    summary = {
        "failed": {"FactSales(date=2010-12-02)"},
        "run_by_other_worker": {"TransactionBatch(date=2010-12-01, window_hour=9)"},
        "not_run": {f"MartsReady(date=2010-12-0{i})" for i in range(1, 8)},
        "upstream_failure": set(),
        "completed": {"ProductsSnapshot(date=2010-12-01)"},
    }
    blockers = {"Worker(pid=99)": {"TransactionBatch(date=2010-12-01, window_hour=9)"}}
    lines = recovery.reasons(summary, blockers)
    assert lines == [
        "1 task(s) failed (tracebacks in the log): FactSales(date=2010-12-02)",
        "1 task(s) were being run by another worker: TransactionBatch(date=2010-12-01, window_hour=9)",
        "7 task(s) were not granted run permission by the scheduler (a resource they need was held): "
        "MartsReady(date=2010-12-01), MartsReady(date=2010-12-02), MartsReady(date=2010-12-03), "
        "MartsReady(date=2010-12-04), MartsReady(date=2010-12-05) and 2 more",
        "worker Worker(pid=99) was running TransactionBatch(date=2010-12-01, window_hour=9)",
    ]


def test_no_reasons_for_a_clean_summary():
    assert recovery.reasons({"completed": {"A()"}, "already_done": {"B()"}}, {}) == []
