"""User commands on runs that need more than a store update: the process signals of cancel, pause and resume.

The store records the user's intent (``cancel_requested``, ``paused``); a run executing in the engine is
signalled through its process group (the engine made it a group leader), a foreground ``ganaug run`` is
signalled directly (it has no engine to relay a cancel). The CLI and the TUI both call these, so a run
behaves the same whichever client the user chose.
"""

from __future__ import annotations

import os
import signal

from engine import store as st
from engine.errors import InputError


def cancel_run(store: st.Store, run_id: str) -> str:
    """Cancel one run; returns its status afterwards (still running/paused while it stops gracefully)."""
    run = store.get_run(run_id)
    new = store.request_cancel(run.id)
    if new in st.ACTIVE and run.engine_pid is None and run.pid:  # a foreground run: ask it directly
        send_signal(run.pid, signal.SIGCONT, group=False)
        send_signal(run.pid, signal.SIGTERM, group=False)
    return new


def pause_run(store: st.Store, run_id: str) -> str:
    """Hold a waiting run, or suspend a running one (SIGSTOP) until ``resume_run``; returns ``paused``."""
    run = store.get_run(run_id)
    new = store.set_paused(run.id, True)
    if run.status == st.RUNNING:
        send_signal(run.pid, signal.SIGSTOP, group=run.engine_pid is not None)
    return new


def resume_run(store: st.Store, run_id: str) -> str:
    """Undo ``pause_run``: a held run waits again, a suspended one continues (SIGCONT); returns its status."""
    run = store.get_run(run_id)
    new = store.set_paused(run.id, False)
    if new == st.RUNNING:
        send_signal(run.pid, signal.SIGCONT, group=run.engine_pid is not None)
    return new


def send_signal(pid: int | None, sig: int, *, group: bool) -> None:
    """Signal a run's process (or its group); a process that is gone already is no error."""
    if not pid:
        return
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise InputError(f"cannot signal process {pid}: {exc.strerror}") from None
