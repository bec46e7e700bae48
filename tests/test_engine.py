"""The background engine through its real CLI: detached daemon, one per store, slots, priorities,
failures, cancel, kill -9 recovery with checkpoint resume. Every daemon and worker is killed in teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
from engine_helpers import (
    FAST_ENV,
    GANAUG,
    _processes_of,
    cli,
    default_sigint,
    status_of,
    wait_for,
    wait_status,
)

from engine import store as st
from engine.runner.daemon import PID_FILE, engine_info


def test_two_concurrent_starts_give_one_engine(ws):
    env = os.environ | FAST_ENV
    procs = [subprocess.Popen([GANAUG, "engine", "start", "--workspace", str(ws)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    messages = sorted(err.strip().splitlines()[-1].split(" (")[0] for _, err in outs)
    assert messages == ["engine already running", "engine started"]
    time.sleep(1.2)  # a losing daemon gives up after 1 s of trying the lock
    daemons = _processes_of(ws, "engine.runner.daemon")
    assert len(daemons) == 1 and daemons[0].pid == engine_info(ws)["pid"]
    doc = json.loads(cli(ws, "engine", "status", "--json").stdout)
    assert doc["running"] is True and doc["pid"] == daemons[0].pid and doc["slots"][0]["name"] == "cpu0"
    assert doc["queued"] == 0 and doc["running_runs"] == []
    cli(ws, "engine", "stop")
    assert engine_info(ws) is None and not (ws / PID_FILE).exists()
    assert json.loads(cli(ws, "engine", "status", "--json").stdout)["running"] is False


def test_failed_run_logs_traceback_and_next_queued_run_starts(ws):
    with st.open_store(ws) as s:
        bad = s.create_run("fail", {"message": "kaboom", "steps": 3})
        good = s.create_run("sleep", {"seconds": 0})
    cli(ws, "engine", "start", "--no-gpus")
    proc = cli(ws, "runs", "wait", bad, good, "--timeout", "60", check=False)
    assert proc.returncode == 1  # one of them failed
    assert status_of(ws, bad) == st.FAILED and status_of(ws, good) == st.SUCCEEDED
    with st.open_store(ws) as s:
        log = (s.run_dir(bad) / "log.txt").read_text()
        assert "Traceback" in log and "RuntimeError: kaboom" in log
        assert s.get_run(bad).exit_reason == "RuntimeError: kaboom"
        assert s.metrics(bad)["step"].tolist() == [0, 1, 2]  # buffered points are flushed even on failure


def test_priorities_then_fifo_with_one_slot(ws):
    cli(ws, "queue", "pause")
    cli(ws, "engine", "start", "--cpu-slots", "1")
    with st.open_store(ws) as s:
        ids = [s.create_run("sleep", {"seconds": 0}, priority=p) for p in (0, 5, 0, 10)]
    cli(ws, "runs", "priority", ids[2], "1")
    time.sleep(0.3)
    assert {status_of(ws, r) for r in ids} == {st.QUEUED}  # paused queue: nothing starts
    cli(ws, "queue", "resume")
    cli(ws, "runs", "wait", *ids, "--timeout", "60")
    with st.open_store(ws) as s:
        order = sorted(ids, key=lambda r: s.get_run(r).started)
    assert order == [ids[3], ids[1], ids[2], ids[0]]


def test_cancelled_running_parent_makes_descendants_dependency_failed(ws):
    with st.open_store(ws) as s:
        parent = s.create_run("count", {"n": 10_000, "interval": 0.05})
        child = s.create_run("sleep", {"seconds": 0}, parents=[parent])
        grandchild = s.create_run("sleep", {"seconds": 0}, parents=[child])
    cli(ws, "engine", "start", "--grace", "10")
    wait_status(ws, parent, (st.RUNNING,))
    cli(ws, "runs", "cancel", parent)
    assert wait_status(ws, parent, (st.CANCELLED, st.FAILED)) == st.CANCELLED
    assert status_of(ws, child) == status_of(ws, grandchild) == st.DEPENDENCY_FAILED
    with st.open_store(ws) as s:
        assert (s.run_dir(parent) / "checkpoints" / "last.pt").is_file()  # it checkpointed on the way out


def test_kill_9_of_the_engine_then_restart_resumes_from_checkpoint(ws):
    n = 60
    with st.open_store(ws) as s:
        rid = s.create_run("count", {"n": n, "interval": 0.04, "checkpoint_every": 7})
    cli(ws, "engine", "start")
    engine_pid = engine_info(ws)["pid"]
    wait_for(lambda: (ws / rid / "checkpoints" / "last.pt").is_file(), what="a first checkpoint")
    with st.open_store(ws) as s:
        wait_for(lambda: len(s.metrics(rid)) >= 20, what="20 metric points")
        worker_pid = s.get_run(rid).pid
    os.kill(engine_pid, signal.SIGKILL)
    # the worker dies with its engine: nothing keeps running unsupervised
    wait_for(lambda: not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == "zombie",
             timeout=10, what="the worker to die with the engine")
    assert status_of(ws, rid) == st.RUNNING and engine_info(ws) is None  # stale lock: free again
    cli(ws, "engine", "start")
    assert wait_status(ws, rid, (st.SUCCEEDED, st.FAILED)) == st.SUCCEEDED
    with st.open_store(ws) as s:
        run = s.get_run(rid)
        steps = s.metrics(rid, "count")["step"].tolist()
        events = [e["kind"] for e in s.events(rid)]
    assert (run.attempt, run.resumes) == (1, 1) and "interrupted" in events  # a crash-resume is no new attempt
    assert steps == list(range(n))  # no gap, no duplicate
    result = json.loads((ws / rid / "result.json").read_text())
    assert 0 < result["resumed_from"] < n
    assert f"resuming from step {result['resumed_from']}" in (ws / rid / "log.txt").read_text()
    assert "engine" in (ws / "engine.log").read_text()


def test_leave_policy_keeps_interrupted_runs_until_retry(ws):
    with st.open_store(ws) as s:
        rid = s.create_run("count", {"n": 10_000, "interval": 0.05})
    cli(ws, "engine", "start")
    wait_status(ws, rid, (st.RUNNING,))
    cli(ws, "engine", "stop")  # graceful: the run checkpoints and ends interrupted
    assert status_of(ws, rid) == st.INTERRUPTED
    assert (ws / rid / "checkpoints" / "last.pt").is_file()
    cli(ws, "engine", "start", "--on-interrupted", "leave")
    time.sleep(0.3)
    assert status_of(ws, rid) == st.INTERRUPTED
    cli(ws, "runs", "retry", rid)
    wait_status(ws, rid, (st.RUNNING,))


def test_stale_lock_and_pid_file_of_a_dead_engine_are_taken_over(ws):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ws / "engine.lock").write_text("")
    (ws / PID_FILE).write_text(json.dumps({"pid": dead.pid, "ready": True, "slots": []}))
    assert json.loads(cli(ws, "engine", "status", "--json").stdout)["running"] is False
    proc = cli(ws, "engine", "start")
    assert "engine started" in proc.stderr
    assert engine_info(ws)["pid"] != dead.pid
    assert "took over the lock of a dead engine" in (ws / "engine.log").read_text()


def test_gpu_slots_follow_cuda_visible_devices(ws):
    cli(ws, "engine", "start", env={"CUDA_VISIBLE_DEVICES": "1,3"})
    status = json.loads(cli(ws, "engine", "status", "--json").stdout)
    assert [(s["name"], s["gpu"], s["device"]) for s in status["slots"]] == [("gpu1", "1", "cuda"),
                                                                            ("gpu3", "3", "cuda")]
    with st.open_store(ws) as s:
        rid = s.create_run("sleep", {"seconds": 0})
    cli(ws, "runs", "wait", rid, "--timeout", "60")
    with st.open_store(ws) as s:
        assert s.get_run(rid).slot == "gpu1"  # (the sleep kind never touches CUDA; the context says cuda)
        assert "on cuda" in (s.run_dir(rid) / "log.txt").read_text()


def test_a_killed_worker_fails_its_run_but_not_the_engine(ws):
    with st.open_store(ws) as s:
        doomed = s.create_run("sleep", {"seconds": 600})
        after = s.create_run("sleep", {"seconds": 0})
    cli(ws, "engine", "start")
    wait_status(ws, doomed, (st.RUNNING,))
    with st.open_store(ws) as s:
        pid = wait_for(lambda: s.get_run(doomed).pid, what="the worker pid")
    os.killpg(pid, signal.SIGKILL)  # as the OOM killer or a segfault would end it
    assert wait_status(ws, doomed, (st.FAILED,)) == st.FAILED
    assert wait_status(ws, after, (st.SUCCEEDED,)) == st.SUCCEEDED
    with st.open_store(ws) as s:
        assert s.get_run(doomed).exit_reason == "worker killed by signal SIGKILL"
    assert json.loads(cli(ws, "engine", "status", "--json").stdout)["running"] is True


def test_pause_and_resume_a_running_run(ws):
    with st.open_store(ws) as s:
        rid = s.create_run("count", {"n": 40, "interval": 0.05})
    cli(ws, "engine", "start")
    with st.open_store(ws) as s:
        wait_for(lambda: len(s.metrics(rid)) >= 3, what="first metrics")
        cli(ws, "runs", "pause", rid)
        assert s.get_run(rid).status == st.PAUSED
        time.sleep(0.4)  # let a flush in flight land
        frozen = len(s.metrics(rid))
        time.sleep(0.6)
        assert len(s.metrics(rid)) == frozen  # SIGSTOP: it makes no progress
        cli(ws, "runs", "resume", rid)
        assert s.get_run(rid).status == st.RUNNING
    assert wait_status(ws, rid, (st.SUCCEEDED, st.FAILED)) == st.SUCCEEDED


def test_a_run_ignoring_cancel_is_killed_after_the_grace_period(ws):
    with st.open_store(ws) as s:
        rid = s.create_run("sleep", {"seconds": 600, "ignore_stop": True})
    cli(ws, "engine", "start", "--grace", "0.5")
    wait_status(ws, rid, (st.RUNNING,))
    t0 = time.monotonic()
    cli(ws, "runs", "cancel", rid)
    assert wait_status(ws, rid, (st.CANCELLED, st.FAILED), timeout=20) == st.CANCELLED
    assert time.monotonic() - t0 < 15
    with st.open_store(ws) as s:
        assert "grace period" in s.get_run(rid).exit_reason


def test_interrupted_foreground_run_is_resumed_by_the_engine(ws):
    env = os.environ | FAST_ENV | {"GANAUG_WORKSPACE": str(ws)}
    fg = subprocess.Popen([GANAUG, "run", "count", "--set", "n=150", "--set", "interval=0.02", "--json"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=default_sigint)
    try:
        with st.open_store(ws) as s:
            rid = wait_for(lambda: [r.id for r in s.list_runs(status=st.RUNNING)], what="the run")[0]
            wait_for(lambda: len(s.metrics(rid)) >= 10, what="metrics")
        fg.send_signal(signal.SIGINT)  # Ctrl-C: checkpoint and stop
        out, _ = fg.communicate(timeout=30)
    finally:
        fg.kill()
    assert fg.returncode == 1 and json.loads(out)["status"] == st.INTERRUPTED
    assert json.loads((ws / rid / "run.json").read_text())["status"] == st.INTERRUPTED
    assert (ws / rid / "checkpoints" / "last.pt").is_file()
    cli(ws, "engine", "start")  # default policy: resume
    assert wait_status(ws, rid, (st.SUCCEEDED, st.FAILED), timeout=60) == st.SUCCEEDED
    with st.open_store(ws) as s:
        assert s.metrics(rid, "count")["step"].tolist() == list(range(150))
        assert s.get_run(rid).slot == "cpu0" and (s.get_run(rid).attempt, s.get_run(rid).resumes) == (1, 1)
    assert json.loads((ws / rid / "result.json").read_text())["resumed_from"] >= 10


def test_slots_share_the_cores_without_overriding_the_user(monkeypatch):
    from engine.executors.local import make_slots

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("engine.executors.local.detect_gpus", lambda: [])
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    slots = make_slots(cpu_slots=3)
    assert [s.threads for s in slots] == [2, 2, 2]
    env = slots[0].worker_env({"PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == "2" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert slots[0].worker_env({"OMP_NUM_THREADS": "5"})["OMP_NUM_THREADS"] == "5"
    monkeypatch.setattr("engine.executors.local.detect_gpus", lambda: ["0", "1"])
    gpu = make_slots()
    assert [(s.gpu, s.threads) for s in gpu] == [("0", 4), ("1", 4)]
    assert gpu[1].worker_env({})["CUDA_VISIBLE_DEVICES"] == "1"


def test_runs_left_waiting_by_a_dead_foreground_process_do_not_stay_queued_forever(ws):
    """`ganaug run --after X` killed (Ctrl-C, SSH drop) while it waited: its run is reserved for a dead process.
    The engine must treat it like a dead foreground run (interrupted, then resumed by its policy)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with st.open_store(ws) as s:
        parent = s.create_run("sleep", {"seconds": 0.3})
        waiting = s.create_run("sleep", {"seconds": 0}, parents=[parent], foreground_pid=dead.pid)
        queued = s.create_run("sleep", {"seconds": 0}, foreground_pid=dead.pid)
        mine = s.create_run("sleep", {"seconds": 0}, foreground_pid=os.getpid())  # its owner lives: untouched
    cli(ws, "engine", "start")
    cli(ws, "runs", "wait", parent, waiting, queued, "--timeout", "30")
    with st.open_store(ws) as s:
        for rid in (waiting, queued):
            run = s.get_run(rid)
            assert (run.attempt, run.resumes) == (1, 1)
            assert "foreground process" in " ".join(e["message"] for e in s.events(rid))
        assert s.get_run(mine).status == st.QUEUED and s.get_run(mine).foreground_pid == os.getpid()


def test_a_run_whose_folder_is_gone_still_runs_and_the_engine_survives(ws):
    """A folder deleted by hand (or not made yet by a creator that crashed) must not take the engine down."""
    import shutil

    with st.open_store(ws) as s:
        rid = s.create_run("sleep", {"seconds": 0})
    shutil.rmtree(ws / rid)
    cli(ws, "engine", "start")
    cli(ws, "runs", "wait", rid, "--timeout", "30")
    assert (ws / rid / "log.txt").is_file()
    assert json.loads(cli(ws, "engine", "status", "--json").stdout)["running"] is True


def test_reaping_a_worker_whose_run_was_already_removed_does_not_crash_the_engine(ws):
    """`runs wait X && runs rm X` can remove a run between its worker's last write and the engine's reap."""
    from engine.executors.local import Slot
    from engine.runner.daemon import Engine

    engine = Engine(ws, [Slot("cpu0")])
    engine.open()
    rid = engine.store.create_run("sleep", {"seconds": 0})
    engine.store.finish(rid, st.SUCCEEDED)  # what the engine records from the worker's outcome
    engine.store.remove([rid])
    engine.head.settle(rid, st.FAILED, "worker exited")  # the worker's exit reaped afterwards: must not raise
    engine.store.close()


def test_a_cancel_asked_of_an_orphan_survives_the_engine_start(ws):
    """A cancel flagged on a run whose owner then died must not be undone by the next engine's resume policy."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with st.open_store(ws) as s:
        rid = s.create_run("count", {"n": 10}, foreground_pid=dead.pid)
        s.claim(rid, slot="foreground", engine_pid=None, pid=dead.pid, foreground_pid=dead.pid)
        assert s.request_cancel(rid) == st.RUNNING  # flagged; the owner never acted on it
    cli(ws, "engine", "start")  # policy resume
    assert wait_status(ws, rid, (st.CANCELLED, st.QUEUED, st.RUNNING, st.SUCCEEDED)) == st.CANCELLED
    time.sleep(0.3)
    with st.open_store(ws) as s:
        run = s.get_run(rid)
    assert run.status == st.CANCELLED and (run.attempt, run.resumes) == (1, 0)


def test_a_run_the_user_paused_stays_paused_across_an_engine_crash(ws):
    n = 40
    with st.open_store(ws) as s:
        rid = s.create_run("count", {"n": n, "interval": 0.05, "checkpoint_every": 5})
    cli(ws, "engine", "start")
    wait_for(lambda: (ws / rid / "checkpoints" / "last.pt").is_file(), what="a first checkpoint")
    cli(ws, "runs", "pause", rid)
    os.kill(engine_info(ws)["pid"], signal.SIGKILL)
    wait_for(lambda: engine_info(ws) is None, what="the engine to be gone")
    cli(ws, "engine", "start")
    time.sleep(0.5)
    with st.open_store(ws) as s:
        run = s.get_run(rid)
    assert run.status == st.PAUSED and run.pid is None and run.resumes == 1  # held, not re-run behind the user
    cli(ws, "runs", "resume", rid)
    assert wait_status(ws, rid, (st.SUCCEEDED, st.FAILED)) == st.SUCCEEDED
    with st.open_store(ws) as s:
        assert s.metrics(rid, "count")["step"].tolist() == list(range(n))
        assert (s.get_run(rid).attempt, s.get_run(rid).resumes) == (1, 1)


def test_engine_log_is_rotated(ws):
    from engine.runner.daemon import LOG_FILE, LOG_KEEP

    with st.open_store(ws) as s:
        ids = [s.create_run("sleep", {"seconds": 0}) for _ in range(12)]
    cli(ws, "engine", "start", env={"GANAUG_ENGINE_LOG_MAX": "600"})
    cli(ws, "runs", "wait", *ids, "--timeout", "60")
    cli(ws, "engine", "stop")
    logs = sorted(p.name for p in ws.glob(f"{LOG_FILE}*"))
    assert logs == [LOG_FILE, *(f"{LOG_FILE}.{k}" for k in range(1, LOG_KEEP + 1))]  # the oldest are dropped
    assert all((ws / name).stat().st_size < 600 + 300 for name in logs)  # at most one line over the limit
    assert "stopped" in (ws / LOG_FILE).read_text()  # the daemon kept writing into the fresh file
