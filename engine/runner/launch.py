"""The one entry every "run this" command shares: enqueue, then detach or execute in the foreground.

Foreground execution goes through ``engine.runner.worker.execute``, the very code the engine's per-run
subprocess runs, so scripts need no daemon and a run behaves the same either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import store as st
from engine.errors import EXIT_OK, EXIT_RUN_FAILED, InputError
from engine.runner.kinds import kind_names, validate_config

WAIT_POLL_S = 0.2


def outcome(store: st.Store, run_id: str) -> dict[str, Any]:
    """The JSON summary of a run that ``run``/``runs wait`` print."""
    run = store.get_run(run_id)
    return {"run_id": run.id, "status": run.status, "run_dir": str(store.run_dir(run.id)), "kind": run.kind,
            "label": run.label, "attempt": run.attempt, "exit_reason": run.exit_reason,
            "started": run.started, "ended": run.ended}


def launch(kind: str, config: dict[str, Any], *, label: str | None = None, workspace: Path | None = None,
           detach: bool = False, json_out: bool = False, priority: int = 0, parents: Sequence[str] = (),
           experiment: str | None = None) -> int:
    """Enqueue one run; with ``detach`` print its id (or JSON) and return, else run it now in the
    foreground (rich progress on stderr) and print the outcome. Returns the exit code (0 ok, 1 failed)."""
    if detach:
        config = _checked(kind, config, workspace)
        with st.open_store(workspace) as store:
            run_id = store.create_run(kind, config, label=label, experiment=experiment, parents=parents,
                                      priority=priority)
            return _report_detached(store, run_id, json_out)
    doc = run_here(kind, config, label=label, workspace=workspace, priority=priority, parents=parents,
                   experiment=experiment)
    if json_out:
        print(json.dumps(doc))
    else:
        reason = f" ({doc['exit_reason']})" if doc["exit_reason"] else ""
        print(f"run {doc['run_id']} {doc['status']}{reason}; folder {doc['run_dir']}", file=sys.stderr)
    return EXIT_OK if doc["status"] == st.SUCCEEDED else EXIT_RUN_FAILED


def run_here(kind: str, config: dict[str, Any], *, label: str | None = None, workspace: Path | None = None,
             priority: int = 0, parents: Sequence[str] = (), experiment: str | None = None) -> dict[str, Any]:
    """Enqueue one run and execute it now in this process (the worker's code path); its outcome document."""
    config = _checked(kind, config, workspace)
    with st.open_store(workspace) as store:
        run_id = store.create_run(kind, config, label=label, experiment=experiment, parents=parents,
                                  priority=priority, foreground_pid=os.getpid())
        try:
            _run_foreground(store, run_id)
        except KeyboardInterrupt:  # Ctrl-C before the run started (e.g. waiting for parents): none is left to run it
            store.finish(run_id, st.INTERRUPTED, "interrupted (Ctrl-C) before it started",
                         only_from=(st.BLOCKED, st.QUEUED))
            raise
        return outcome(store, run_id)


def _checked(kind: str, config: dict[str, Any], workspace: Path | None) -> dict[str, Any]:
    """Refuse an unknown kind or a bad config before anything is enqueued."""
    if kind not in kind_names():
        raise InputError(f"unknown run kind {kind!r}; known: {', '.join(kind_names())}")
    return validate_config(kind, config, st.resolve_workspace(workspace))


def _report_detached(store: st.Store, run_id: str, json_out: bool) -> int:
    from engine.runner.daemon import engine_info

    doc = outcome(store, run_id)
    if json_out:
        print(json.dumps(doc))
    else:
        print(run_id)
    if engine_info(store.workspace) is None:
        print(f"note: no engine serves {store.workspace}; start one with `ganaug engine start`", file=sys.stderr)
    return EXIT_OK


def _run_foreground(store: st.Store, run_id: str) -> str:
    """Wait for the parents (if any), claim the run for this process and execute it here."""
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from engine.runner.daemon import detect_gpus
    from engine.runner.worker import execute

    console = Console(stderr=True)
    if (status := store.get_run(run_id).status) == st.BLOCKED:
        console.print(f"{run_id}: waiting for its parent runs (they run in the engine or another shell)")
    while status == st.BLOCKED:
        time.sleep(WAIT_POLL_S)
        status = store.get_run(run_id).status
    if status != st.QUEUED:
        return status
    if not store.claim(run_id, slot="foreground", engine_pid=None, pid=os.getpid(), foreground_pid=os.getpid()):
        return store.get_run(run_id).status
    handler = RichHandler(console=console, show_path=False, level=logging.INFO)
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(run_id, total=None)

        def on_progress(done: int, total: int, desc: str) -> None:
            bar.update(task, completed=done, total=total or None, description=f"{run_id} {desc}".strip())

        # stdout carries only the outcome (one JSON document with --json): a kind's prints go to stderr
        with contextlib.redirect_stdout(sys.stderr):
            return execute(store, run_id, device="cuda" if detect_gpus() else "cpu", console=handler,
                           on_progress=on_progress)
