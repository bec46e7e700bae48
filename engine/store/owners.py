"""Who owns a running run, and whether that owner still lives.

A run in progress belongs to the engine that launched its worker (``engine_pid``), to a foreground ``ganaug
run`` (``foreground_pid`` + ``foreground_started``), or, once submitted, to its cluster job (``job_id``). The
engine is alive exactly while it holds ``flock(engine.lock)`` (the kernel drops it when the process dies, kill -9
included) and ``engine.pid`` names it; a foreground owner is alive while a process with that pid AND that start
time exists (a pid alone may have been handed to another process). Any store command can therefore tell an
orphan from a live run without an engine. A cluster job outlives the head that submitted it: only a head asking
the cluster (``engine.executors``) judges it, by the job's state.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import procs
from engine.store.location import engine_file
from engine.store.provenance import host as this_host

if TYPE_CHECKING:
    from engine.store.core import Run

LOCK_FILE, PID_FILE = "engine.lock", "engine.pid"


def engine_info(workspace: Path) -> dict[str, Any] | None:
    """``engine.pid`` of the live engine serving ``workspace``, or None when no engine holds the lock."""
    lock = engine_file(workspace, LOCK_FILE)
    if not lock.exists():
        return None
    try:
        fh = open(lock, "rb")  # noqa: SIM115 (closed below; closing drops our probe)
    except OSError:
        return None  # unreadable (a copied folder without permissions): no engine we could talk to
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: an engine is alive
        else:
            return None
    try:
        return json.loads(engine_file(workspace, PID_FILE).read_text())
    except (OSError, ValueError):
        return {"pid": None, "ready": False}  # starting up: lock taken, pid file not written yet


def worker_alive(run: Run) -> bool:
    """The run's worker process still exists (pid plus a command line naming this run)."""
    return procs.alive(run.pid, needle=run.id)


def owner_gone(run: Run, live_engine: dict[str, Any] | None, caller_engine: int | None = None) -> str | None:
    """Why the owner of an active or reserved run is gone (one phrase), or None while it lives or cannot be judged.

    ``live_engine`` is ``engine_info`` of the run's workspace; ``caller_engine`` the pid of the engine asking,
    which alone may call one of its own runs orphaned (its worker is not among its children)."""
    if run.pid is None and run.foreground_pid is None:
        return None  # held before it ever started (a paused queued run): nobody owns it
    if run.job_id is not None:
        return None  # a cluster job owns it: judged by the job's state (engine.executors), never by a local pid
    if run.host not in (None, this_host()):
        return None  # started on another machine: nothing here can check it
    if run.engine_pid is not None:
        if caller_engine is not None and run.engine_pid == caller_engine:
            return "worker lost"  # our own run, but not one of our children
        if live_engine is None:
            return f"engine {run.engine_pid} died"
        if live_engine.get("pid") is None:
            return None  # an engine is starting: its recovery judges this run
        return None if live_engine["pid"] == run.engine_pid else f"engine {run.engine_pid} died"
    if run.foreground_pid is not None:
        if procs.alive(run.foreground_pid, run.foreground_started):
            return None
        return f"foreground process {run.foreground_pid} died"
    return "worker lost"
