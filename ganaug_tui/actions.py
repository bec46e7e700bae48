"""What the UI changes, as plain functions run in thread workers: each opens its own ``Store`` and goes through
the engine's own commands (``engine.runner.control``, ``engine.runner.daemon``), exactly like ``ganaug runs ...``.

Every function returns the one line the user is told afterwards; an ``InputError`` is the line of a refusal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import store as st
from engine.errors import InputError
from engine.runner import control


class ReadOnly(InputError):
    """The workspace was opened to look only (``--read-only``, or it is not writable)."""


def _writer(workspace: Path, read_only: bool) -> st.Store:
    if read_only:
        raise ReadOnly(f"{workspace} is open read-only: nothing can be changed from here")
    return st.open_store(workspace)


def _engine_note(workspace: Path) -> str:
    from engine.runner.daemon import engine_info

    return "" if engine_info(workspace) else " (no engine serves this workspace: press e on Queue to start one)"


def cancel(workspace: Path, run_id: str, read_only: bool = False) -> str:
    with _writer(workspace, read_only) as store:
        new = control.cancel_run(store, run_id)
    if new in st.ACTIVE:
        return f"{run_id}: cancelling (it checkpoints and stops)"
    return f"{run_id}: {new}"


def retry(workspace: Path, run_id: str, read_only: bool = False) -> str:
    with _writer(workspace, read_only) as store:
        new = store.retry(run_id)
    return f"{run_id}: {new}, attempt +1" + (_engine_note(workspace) if new == st.QUEUED else "")


def toggle_pause(workspace: Path, run_id: str, read_only: bool = False) -> str:
    with _writer(workspace, read_only) as store:
        status = store.get_run(run_id).status
        new = control.resume_run(store, run_id) if status == st.PAUSED else control.pause_run(store, run_id)
    return f"{run_id}: {new}" + (" (suspended)" if status == st.RUNNING else "")


def shift_priority(workspace: Path, run_id: str, delta: int, read_only: bool = False) -> str:
    with _writer(workspace, read_only) as store:
        new = store.get_run(run_id).priority + delta
        store.set_priority(run_id, new)
    return f"{run_id}: priority {new}"


def toggle_queue(workspace: Path, read_only: bool = False) -> str:
    with _writer(workspace, read_only) as store:
        store.set_queue_paused(not store.queue_paused())
        paused = store.queue_paused()
    return "queue paused: no new run starts, running ones go on" if paused else "queue resumed"


def start_engine(workspace: Path, cpu_slots: int = 1, read_only: bool = False) -> str:
    from engine.runner.daemon import start_engine as start

    if read_only:
        raise ReadOnly(f"{workspace} is open read-only: no engine can be started from here")
    started, info = start(workspace, cpu_slots=cpu_slots)
    slots = ", ".join(s["name"] for s in info.get("slots", []))
    return (f"engine started (pid {info.get('pid')}, slots {slots}); it keeps running after you quit" if started
            else f"an engine already serves this workspace (pid {info.get('pid')})")


def stop_engine(workspace: Path, read_only: bool = False) -> str:
    from engine.runner.daemon import stop_engine as stop

    if read_only:
        raise ReadOnly(f"{workspace} is open read-only: its engine cannot be stopped from here")
    info = stop(workspace)
    return "no engine was running" if info is None else f"engine (pid {info['pid']}) stopped; its runs are interrupted"


def create_workspace(workspace: Path) -> str:
    """Create the run store (the user confirmed it)."""
    st.open_store(workspace).close()
    return f"created the run store {st.db_path(workspace)}"


def enqueue_build(workspace: Path, build: Any, file: Path | None, read_only: bool = False) -> str:
    """Queue the Builder's experiment (``ganaug_tui.screens.builder.Build``) through the experiment grid: its new
    runs, its reused ones linked to their labels, and its spec in the store, as ``ganaug run --detach`` does."""
    from engine import grid

    if read_only:
        raise ReadOnly(f"{workspace} is open read-only: nothing can be changed from here")
    _, sub = grid.enqueue(workspace, build.experiment(workspace, file),
                          only=list(build.only) if build.only else None, replicates=build.replicates)
    return (f"{build.name}: queued {len(sub.created)} new run(s), re-queued {len(sub.requeued)}, reused "
            f"{len(sub.reused) - len(sub.requeued)}" + (_engine_note(workspace) if sub.created or sub.requeued else ""))


def export_results(workspace: Path, experiment: str, out: Path) -> str:
    """``ganaug results EXPERIMENT --out OUT``'s files (``engine.analysis.write_files``): the table as CSV and the
    box-plots as PNG and SVG. Reads the store only, so it works on a read-only copy too."""
    from engine.analysis import analyse, write_files

    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; nothing written")
    with st.open_store(workspace, readonly=True, create=False) as store:
        res = analyse(store, experiment)
    files = write_files(res, out)
    return f"{experiment}: wrote {len(files)} files to {out.resolve()} ({', '.join(f.name for f in files[:3])}, …)"


def act_on_experiment(workspace: Path, experiment: str, label: str | None, action: str,
                      read_only: bool = False) -> str:
    """``ganaug runs cancel|retry|pause|resume --experiment E [--label L]``: the engine's housekeeping
    (``engine.workspace.act_on_experiment``), with the process signals of ``engine.runner.control``."""
    from collections import Counter

    from engine.workspace import act_on_experiment as act

    with _writer(workspace, read_only) as store:
        done, kept = act(store, experiment, label, action, cancel=control.cancel_runs, pause=control.pause_runs)
    states = Counter(new for _, new in done)
    line = (f"{experiment}" + (f" / {label}" if label else "") + f": {action}: "
            + ", ".join(f"{n} {state}" for state, n in states.items()))
    if kept:
        line += f"; {len(kept)} run(s) other labels or experiments share were left alone"
    return line + (_engine_note(workspace) if states.get(st.QUEUED) else "")
