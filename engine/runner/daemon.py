"""The background engine: one detached daemon per store that starts queued runs on their executors.

- Exactly one engine per workspace: it holds ``fcntl.flock`` on ``engine.lock`` (beside the database:
  ``engine.store.location``) for its life. The kernel drops the lock when the process dies (kill -9 included), so a
  dead engine's lock is simply taken over by the next start; ``engine.pid`` (JSON) says who holds it.
- Executors (``engine.executors``): ``local`` runs wait for one of the engine's slots and execute in a worker
  subprocess there; ``slurm`` runs are submitted as cluster jobs once their parents succeeded. Either way the
  worker writes only its run folder and the engine, as the head process (``engine.runner.head``), ingests it.
- Crash recovery: on start, runs left running by a dead engine (or a dead foreground ``ganaug run``) are
  marked interrupted, then the policy applies to every interrupted run: ``resume`` (re-queue; the kind
  resumes from its checkpoint), ``restart`` (drop checkpoints, re-queue) or ``leave`` (until ``runs retry``).
  Cluster jobs outlive the engine: a restarted engine finds them running and watches them again.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from engine import procs
from engine import store as st
from engine.errors import InputError, RunFailed
from engine.executors.local import LocalExecutor, Slot, make_slots
from engine.fsutil import atomic_write_json
from engine.runner.head import Head
from engine.store.location import engine_file
from engine.store.owners import LOCK_FILE, PID_FILE, engine_info

LOG_FILE = "engine.log"
# engine.log is rotated past this size (engine.log.1 ... .LOG_KEEP): a daemon serving for months stays bounded.
LOG_MAX_BYTES = int(os.environ.get("GANAUG_ENGINE_LOG_MAX", str(10 << 20)))
LOG_KEEP = 3
POLICIES = ("resume", "restart", "leave")
EXIT_ALREADY_RUNNING = 3
POLL_S = float(os.environ.get("GANAUG_POLL", "0.5"))
ORPHAN_CHECK_S = 5.0
# Cluster jobs queued per pass at most (sbatch calls are throttled by submitit; the rest follow next pass).
SUBMIT_PER_PASS = 50


def check_options(*, policy: str = "resume", cpu_slots: int = 1, grace: float = 0.0) -> None:
    """The engine's options, refused in one line before anything starts."""
    if policy not in POLICIES:
        raise InputError(f"--on-interrupted must be one of {', '.join(POLICIES)} (got {policy!r})")
    if cpu_slots < 1:
        raise InputError(f"--cpu-slots must be at least 1 (got {cpu_slots})")
    if not grace >= 0 or grace == float("inf"):  # also refuses NaN
        raise InputError(f"--grace must be a finite number of seconds >= 0 (got {grace})")


# ------------------------------------------------------------------------------------------ lock & info
def _try_lock(path: Path, wait_s: float = 0.0) -> IO[bytes] | None:
    """The open, exclusively flocked lock file, or None if another process holds it for ``wait_s``."""
    fh = open(path, "a+b")  # noqa: SIM115 (held open for the daemon's life)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                return None
            time.sleep(0.02)


def rotate_log(workspace: Path) -> bool:
    """Shift ``engine.log`` to ``engine.log.1`` (``.1`` to ``.2``, ..., dropping the oldest) once it is bigger than
    ``LOG_MAX_BYTES``; True when it did."""
    log = workspace / LOG_FILE
    try:
        if log.stat().st_size <= LOG_MAX_BYTES:
            return False
        for k in range(LOG_KEEP - 1, 0, -1):
            older = workspace / f"{LOG_FILE}.{k}"
            if older.exists():
                os.replace(older, workspace / f"{LOG_FILE}.{k + 1}")
        os.replace(log, workspace / f"{LOG_FILE}.1")
    except OSError:
        return False
    return True


# ------------------------------------------------------------------------------------------ the engine
class Engine:
    """The daemon's state and loop (``serve``). Runs in the foreground of its own process."""

    def __init__(self, workspace: Path, slots: list[Slot], *, policy: str = "resume", grace: float = 30.0,
                 poll: float = POLL_S) -> None:
        check_options(policy=policy, grace=grace)
        self.workspace, self.slots, self.policy, self.grace, self.poll = workspace, slots, policy, grace, poll
        self.stopping = False
        self.pid = os.getpid()
        self.local = LocalExecutor(workspace, slots, engine_pid=self.pid, grace=grace, say=self.say)

    def say(self, msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} engine[{self.pid}] {msg}", flush=True)
        self._rotate_own_log()

    def _rotate_own_log(self) -> None:
        """When our stdout is ``engine.log`` (a detached engine) and it grew too big: rotate it and point stdout
        and stderr (where a traceback would go) at a fresh file."""
        log = self.workspace / LOG_FILE
        try:
            if os.fstat(1).st_ino != log.stat().st_ino:
                return  # run by hand in a terminal, or already rotated by someone else
        except OSError:
            return
        if rotate_log(self.workspace):
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)

    def open(self) -> None:
        """The store and the head's machinery (``serve`` does this once it holds the lock)."""
        self.store = st.Store(self.workspace)
        self.head = Head(self.store, self.say)

    def serve(self) -> int:
        lock = _try_lock(engine_file(self.workspace, LOCK_FILE), wait_s=1.0)
        if lock is None:
            info = engine_info(self.workspace) or {}
            self.say(f"another engine (pid {info.get('pid')}) serves {self.workspace}; exiting")
            return EXIT_ALREADY_RUNNING
        pid_file = engine_file(self.workspace, PID_FILE)
        try:
            self.open()
            if pid_file.exists():
                self.say(f"took over the lock of a dead engine ({pid_file.read_text().strip()[:120]})")
            self._write_pid_file(ready=False)
            signal.signal(signal.SIGTERM, self._on_stop)
            signal.signal(signal.SIGINT, self._on_stop)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            # A finished worker (SIGCHLD) or a stop request wakes the loop at once instead of after `poll`.
            self._wake_r, wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(wake_w, False)
            signal.set_wakeup_fd(wake_w)
            signal.signal(signal.SIGCHLD, lambda signum, frame: None)
            self.recover()
            self._write_pid_file(ready=True)
            self.say(f"serving {self.workspace} with slots {', '.join(s.name for s in self.slots)}")
            last_orphan_check = time.monotonic()
            while not self.stopping:
                self.tick()
                if time.monotonic() - last_orphan_check > ORPHAN_CHECK_S:
                    self.reap_orphans()
                    last_orphan_check = time.monotonic()
                self._sleep()
            self.shutdown()
            return 0
        finally:
            with contextlib.suppress(OSError):
                info = json.loads(pid_file.read_text())
                if info.get("pid") == self.pid:
                    pid_file.unlink()
            lock.close()

    def _sleep(self) -> None:
        select.select([self._wake_r], [], [], self.poll)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    def _write_pid_file(self, *, ready: bool) -> None:
        atomic_write_json(engine_file(self.workspace, PID_FILE), {
            "pid": self.pid, "ready": ready, "started": time.time(), "policy": self.policy, "grace": self.grace,
            "slots": [{"name": s.name, "device": s.device, "gpu": s.gpu} for s in self.slots]})

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    # -- recovery
    def reap_orphans(self) -> list[str]:
        """Runs whose owner is gone (a dead engine, a dead foreground ``ganaug run``, a worker we lost) are
        settled by the store's one rule (``Store.reap_dead_owners``): interrupted, cancelled when a cancel was
        requested, still paused when the user paused them. Cluster jobs are judged by their state instead
        (``tick``)."""
        found = self.store.reap_dead_owners(engine_pid=self.pid, mine=self.local.running())
        for run_id in found:
            run = self.store.get_run(run_id)
            self.say(f"run {run_id} {run.status}: {run.exit_reason}")
        return found

    def recover(self) -> None:
        """At start: settle orphans, then apply the policy to interrupted runs. Re-queueing them is a resume
        (``resumes`` + 1), not a new attempt."""
        self.reap_orphans()
        if self.policy == "leave":
            return
        for run in self.store.list_runs(status=st.INTERRUPTED):
            try:
                self.store.retry(run.id, restart=self.policy == "restart", resume=True)
            except InputError as exc:  # e.g. its parent was removed or ended badly meanwhile
                self.say(f"run {run.id} stays interrupted: {exc}")
            else:
                self.say(f"run {run.id} re-queued ({self.policy})")

    # -- the loop
    def tick(self) -> None:
        for run_id, status, reason in self.local.poll():
            self.head.settle(run_id, status, reason)
        active = self.store.list_runs(status=st.ACTIVE)
        self.head.watch(active, judge=self._judges)
        self.local.cancel({r.id for r in active if r.cancel_requested})
        if self.stopping or self.store.queue_paused():
            return
        for run_id in self.store.runnable(self.local.capacity(), "local"):
            self.local.start(self.store, run_id)
        for run_id in self.store.runnable(SUBMIT_PER_PASS, "slurm"):
            self.head.slurm.start(run_id, engine_pid=self.pid)

    def _judges(self, run: st.Run) -> bool:
        """Whether this engine judges a cluster run's job: not while a live foreground ``ganaug run`` does."""
        return run.foreground_pid is None or not procs.alive(run.foreground_pid, run.foreground_started)

    def shutdown(self) -> None:
        """Graceful stop: SIGTERM every local run (they checkpoint and end interrupted), SIGKILL after the grace.
        Cluster jobs go on: the next engine watches them again."""
        self.say("stopping")
        for run_id, status, reason in self.local.shutdown():
            self.head.settle(run_id, status, reason)
        self.say("stopped")


# ------------------------------------------------------------------------------------------ client side
def start_engine(workspace: Path, *, cpu_slots: int = 1, use_gpus: bool = True, policy: str = "resume",
                 grace: float = 30.0, timeout: float = 60.0) -> tuple[bool, dict[str, Any]]:
    """Start a detached engine for ``workspace``; returns (started_by_us, engine info).

    (False, info) means an engine was already serving this store (a concurrent start lost the race)."""
    check_options(policy=policy, cpu_slots=cpu_slots, grace=grace)
    st.open_store(workspace).close()  # surfaces a read-only workspace or a newer schema here, as one line
    info = engine_info(workspace)
    if info is not None:
        return False, info
    cmd = [sys.executable, "-m", "engine.runner.daemon", str(workspace), "--cpu-slots", str(cpu_slots),
           "--on-interrupted", policy, "--grace", str(grace)] + ([] if use_gpus else ["--no-gpus"])
    rotate_log(workspace)
    with open(workspace / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc == EXIT_ALREADY_RUNNING:
            return False, engine_info(workspace) or {}
        if rc is not None:
            raise RunFailed(f"the engine exited at start (code {rc}); see {workspace / LOG_FILE}")
        info = engine_info(workspace)
        if info and info.get("pid") == proc.pid and info.get("ready"):
            return True, info
        time.sleep(0.02)
    raise RunFailed(f"the engine did not become ready within {timeout:.0f} s; see {workspace / LOG_FILE}")


def stop_engine(workspace: Path, timeout: float | None = None) -> dict[str, Any] | None:
    """Ask the engine to stop gracefully and wait until it released the lock; its info, or None if none ran."""
    info = engine_info(workspace)
    if info is None or not info.get("pid"):
        return None
    os.kill(int(info["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + (timeout if timeout is not None else float(info.get("grace", 30)) + 30)
    while engine_info(workspace) is not None:
        if time.monotonic() > deadline:
            raise RunFailed(f"the engine (pid {info['pid']}) did not stop in time; it keeps stopping in background")
        time.sleep(0.05)
    return info


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.runner.daemon WORKSPACE ...``: the daemon process itself (started by ``start_engine``)."""
    ap = argparse.ArgumentParser(prog="python -m engine.runner.daemon")
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--cpu-slots", type=int, default=1)
    ap.add_argument("--no-gpus", action="store_true")
    ap.add_argument("--on-interrupted", choices=POLICIES, default="resume")
    ap.add_argument("--grace", type=float, default=30.0)
    args = ap.parse_args(argv)
    try:
        slots = make_slots(args.cpu_slots, use_gpus=not args.no_gpus)
        engine = Engine(args.workspace.absolute(), slots, policy=args.on_interrupted, grace=args.grace)
        return engine.serve()
    except InputError as exc:  # e.g. the store was found damaged: one line in engine.log, not a traceback
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} engine[{os.getpid()}] error: {exc}", flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
