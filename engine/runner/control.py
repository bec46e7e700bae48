"""User commands on runs that need more than a store update: the process signals of cancel, pause and resume.

The store records the user's intent (``cancel_requested``, ``paused``) for every named run or for none (ids are
all resolved first); a run executing in the engine is then signalled through its process group (the engine made
it a group leader), a foreground ``ganaug run`` directly (it has no engine to relay a cancel), a cluster job
through its executor (``scancel``; ``scancel --signal=STOP|CONT``). The CLI and the TUI both call these, so a run
behaves the same whichever client the user chose.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from engine import procs
from engine import store as st
from engine.errors import InputError
from engine.executors.slurm import cancel_job, signal_job


def cancel_runs(store: st.Store, run_ids: Sequence[str]) -> list[tuple[st.Run, str]]:
    """Cancel runs; (run before, status afterwards) each — still running/paused while it stops gracefully."""
    done = store.cancel_runs(run_ids)
    for run, new in done:
        if new not in st.ACTIVE:
            continue
        if run.job_id is not None:  # a cluster job: its head records the end once the job stopped
            cancel_job(run)
        elif run.engine_pid is None and run.pid:  # a foreground run: ask it directly
            signal_owner(run, signal.SIGCONT)
            signal_owner(run, signal.SIGTERM)
    return done


def pause_runs(store: st.Store, run_ids: Sequence[str], paused: bool) -> list[tuple[st.Run, str]]:
    """Hold waiting runs or suspend running ones (SIGSTOP); ``paused=False`` undoes it (SIGCONT)."""
    done = store.pause_runs(run_ids, paused)
    for run, new in done:
        sig = signal.SIGSTOP if paused and run.status == st.RUNNING else \
            signal.SIGCONT if not paused and new == st.RUNNING else None
        if sig is None:
            continue
        if run.job_id is not None:
            signal_job(run, store.run_dir(run.id), sig)
        else:
            signal_owner(run, sig)
    return done


def cancel_run(store: st.Store, run_id: str) -> str:
    return cancel_runs(store, [run_id])[0][1]


def pause_run(store: st.Store, run_id: str) -> str:
    return pause_runs(store, [run_id], True)[0][1]


def resume_run(store: st.Store, run_id: str) -> str:
    return pause_runs(store, [run_id], False)[0][1]


def signal_owner(run: st.Run, sig: int) -> None:
    """Signal the process running ``run``: the engine worker's process group, or the foreground process itself
    (only while it is still the process that claimed the run: a pid alone may belong to someone else by now)."""
    if not run.pid:
        return
    engine_run = run.engine_pid is not None
    if not engine_run and run.foreground_started is not None and not procs.alive(run.pid, run.foreground_started):
        return
    try:
        (os.killpg if engine_run else os.kill)(run.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise InputError(f"cannot signal process {run.pid}: {exc.strerror}") from None
