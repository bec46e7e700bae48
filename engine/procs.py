"""Process identity that survives pid reuse: a pid plus the process's start time.

A bare pid says nothing once its process is gone: the kernel hands the number to the next process, so "pid
1234 is alive" may be true of a stranger. Whoever records an owner (a foreground ``ganaug run``, a demo
render's temporary folder) records ``(pid, started)`` and asks ``alive(pid, started)`` later.
"""

from __future__ import annotations

import os

# /proc reports start times in clock ticks (1/100 s): two reads of one process agree far closer than this.
_SAME_START_S = 0.5


def started(pid: int | None = None) -> float | None:
    """Start time (epoch seconds) of process ``pid`` (default: this one), or None if there is none."""
    import psutil

    try:
        return psutil.Process(os.getpid() if pid is None else pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def alive(pid: int | None, started_at: float | None = None, needle: str | None = None) -> bool:
    """Process ``pid`` exists, is no zombie, started at ``started_at`` (when given) and has ``needle`` in its
    command line (when given). Without either check only the pid is compared: callers pass at least one."""
    import psutil

    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started_at is not None and abs(proc.create_time() - started_at) > _SAME_START_S:
            return False  # the pid was reused by another process
        return needle is None or needle in " ".join(proc.cmdline())
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process we cannot inspect: it exists, so never call it dead
        return True
