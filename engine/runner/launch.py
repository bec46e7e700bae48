"""The one entry every "run this" command shares: enqueue, then detach or execute in the foreground.

Foreground execution goes through ``engine.runner.worker.execute``, the very code the engine's per-run
subprocess and a cluster job run, so scripts need no daemon and a run behaves the same either way. In the
foreground this process is the head too (``engine.runner.head``): it ingests the run's folder while it runs. With
``executor=slurm`` the run becomes a cluster job and this process watches it until it ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine import store as st
from engine.errors import EXIT_OK, EXIT_RUN_FAILED, InputError
from engine.executors import ExecutorSpec
from engine.runner.kinds import kind_names, validate_config

WAIT_POLL_S = 0.2


def outcome(store: st.Store, run_id: str) -> dict[str, Any]:
    """The JSON summary of a run that ``run``/``runs wait`` print."""
    run = store.get_run(run_id)
    return {"run_id": run.id, "status": run.status, "run_dir": str(store.run_dir(run.id)), "kind": run.kind,
            "label": run.label, "attempt": run.attempt, "resumes": run.resumes, "exit_reason": run.exit_reason,
            "started": run.started, "ended": run.ended, **scores(store.run_dir(run.id))}


def scores(run_dir: Path) -> dict[str, Any]:
    """``auc`` ({test set: AUC}) and ``val_auc`` from the run's ``result.json``; None where it has none (yet)."""
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        result = {}
    if not isinstance(result, dict):
        result = {}
    return {"auc": result.get("auc"), "val_auc": result.get("val_auc")}


def launch(kind: str, config: dict[str, Any], *, label: str | None = None, workspace: Path | None = None,
           detach: bool = False, json_out: bool = False, priority: int = 0, parents: Sequence[str] = (),
           experiment: str | None = None, executor: ExecutorSpec | None = None) -> int:
    """Enqueue one run; with ``detach`` print its id (or JSON) and return, else run it now in the
    foreground (rich progress on stderr) and print the outcome. Returns the exit code (0 ok, 1 failed).
    ``executor``: where it executes (default: local; ``engine.executors``)."""
    spec = executor or ExecutorSpec()
    if detach:
        config = _checked(kind, config, workspace, spec)
        with st.open_store(workspace) as store:
            run_id = store.create_run(kind, config, label=label, experiment=experiment, parents=parents,
                                      priority=priority, **spec.fields(kind))
            return _report_detached(store, run_id, json_out)
    doc = run_here(kind, config, label=label, workspace=workspace, priority=priority, parents=parents,
                   experiment=experiment, executor=spec)
    if json_out:
        print(json.dumps(doc))
    else:
        reason = f" ({doc['exit_reason']})" if doc["exit_reason"] else ""
        print(f"run {doc['run_id']} {doc['status']}{reason}; folder {doc['run_dir']}", file=sys.stderr)
    return EXIT_OK if doc["status"] == st.SUCCEEDED else EXIT_RUN_FAILED


def run_here(kind: str, config: dict[str, Any], *, label: str | None = None, workspace: Path | None = None,
             priority: int = 0, parents: Sequence[str] = (), experiment: str | None = None,
             executor: ExecutorSpec | None = None) -> dict[str, Any]:
    """Enqueue one run and execute it now (the worker's code path: in this process, or as a cluster job this
    process watches); its outcome document."""
    spec = executor or ExecutorSpec()
    config = _checked(kind, config, workspace, spec)
    with st.open_store(workspace) as store:
        run_id = store.create_run(kind, config, label=label, experiment=experiment, parents=parents,
                                  priority=priority, foreground_pid=os.getpid(), **spec.fields(kind))
        try:
            _run_foreground(store, run_id)
        except KeyboardInterrupt:  # Ctrl-C before the run started (e.g. waiting for parents): none is left to run it
            store.finish(run_id, st.INTERRUPTED, "interrupted (Ctrl-C) before it started",
                         only_from=(st.BLOCKED, st.QUEUED))
            raise
        return outcome(store, run_id)


def _checked(kind: str, config: dict[str, Any], workspace: Path | None, spec: ExecutorSpec) -> dict[str, Any]:
    """Refuse an unknown kind or a bad config before anything is enqueued (device checks ask ``spec``)."""
    if kind not in kind_names():
        raise InputError(f"unknown run kind {kind!r}; known: {', '.join(kind_names())}")
    with spec.targeting(kind):
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


def console_handler(console: Any) -> logging.Handler:
    """Where a foreground run's log lines go: rich on a terminal; plain, whole lines (never cut to a width)
    otherwise, so a log piped to a file or another program keeps every column."""
    if console.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=console, show_path=False, level=logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    return handler


def _run_foreground(store: st.Store, run_id: str) -> str:
    """Wait for the parents (if any), then execute the run here or, for a cluster run, submit and watch it."""
    from rich.console import Console

    console = Console(stderr=True)
    if store.get_run(run_id).executor == "slurm":
        with _progress_bar(console, run_id) as on_progress:
            return watch_jobs_here(store, [run_id], say=lambda msg: console.print(msg, highlight=False),
                                   on_progress=lambda run: _show(on_progress, run))[run_id]
    if (status := store.get_run(run_id).status) == st.BLOCKED:
        console.print(f"{run_id}: waiting for its parent runs (they run in the engine or another shell)")
    while status == st.BLOCKED:
        time.sleep(WAIT_POLL_S)
        status = store.get_run(run_id).status
    if status != st.QUEUED:
        return status
    if not store.claim(run_id, slot="foreground", engine_pid=None, pid=os.getpid(), foreground_pid=os.getpid()):
        return store.get_run(run_id).status
    # stdout carries only the outcome (one JSON document with --json): a kind's prints go to stderr
    with _progress_bar(console, run_id) as on_progress, contextlib.redirect_stdout(sys.stderr):
        return execute_here(store, run_id, console=console_handler(console), on_progress=on_progress)


def execute_here(store: st.Store, run_id: str, *, device: str | None = None, console: logging.Handler | None = None,
                 on_progress: Callable[[int, int, str], None] | None = None) -> str:
    """Execute a run this process has claimed, in this process, as its own head: the worker's code path, its
    folder ingested live by a thread, its outcome settled into the store. Returns its final status. ``device``:
    the run's device when its config says ``auto`` (default: cuda when a GPU is visible)."""
    from engine.executors.local import detect_gpus
    from engine.runner.head import Head
    from engine.runner.worker import execute

    with _live_ingest(store.workspace, run_id):
        execute(store.run_dir(run_id), device=device or ("cuda" if detect_gpus() else "cpu"), console=console,
                on_progress=on_progress)
    Head(store, say=lambda msg: None).settle(run_id, st.FAILED, "the worker ended without writing its outcome")
    return store.get_run(run_id).status


def watch_jobs_here(store: st.Store, run_ids: Sequence[str], *, say: Callable[[str], None],
                    on_progress: Callable[[st.Run], None] | None = None) -> dict[str, str]:
    """Act as the head of cluster runs until each has ended (or waits only on runs the user holds): submit the
    queued ones (at first, or again after a preemption), ingest their folders, judge their jobs by their state.
    Runs still blocked wait for their parents. Ctrl-C cancels their jobs (``scancel``); a second Ctrl-C stops
    watching (the jobs are then the engine's to watch). Returns each run's status; ``on_progress`` gets each
    active run after every pass."""
    from engine.runner.control import cancel_runs
    from engine.runner.head import Head

    ids = list(dict.fromkeys(run_ids))
    me = os.getpid()
    head = Head(store, say)
    cancelling = False
    while True:
        try:
            runs = store.get_runs(ids)
            open_ = [r for r in runs if r.status not in (*st.TERMINAL, st.INTERRUPTED)]
            if not open_ or all(r.status == st.PAUSED and not r.launched for r in open_):
                return {r.id: r.status for r in runs}
            for run in open_:
                if run.status == st.QUEUED and run.executor == "slurm":  # first submission, or a resubmission
                    head.slurm.start(run.id, foreground_pid=me)
            active = [r for r in store.get_runs([r.id for r in open_]) if r.status in st.ACTIVE]
            head.watch(active)
            if on_progress is not None:
                for run in store.get_runs([r.id for r in active]):
                    on_progress(run)
            time.sleep(WAIT_POLL_S)
            store.reap_dead_owners()  # parents that another, now dead, process owned end: their children move
        except KeyboardInterrupt:
            if cancelling:
                raise
            cancelling = True
            say("cancelling the jobs (Ctrl-C again to stop watching; they are then the engine's to watch)")
            with contextlib.suppress(InputError):
                cancel_runs(store, [r.id for r in store.get_runs(ids) if r.status not in st.TERMINAL])


@contextlib.contextmanager
def _progress_bar(console: Any, run_id: str) -> Any:
    """An ``on_progress(done, total, desc)`` callback drawing a transient bar on stderr."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(run_id, total=None)

        def on_progress(done: int, total: int, desc: str) -> None:
            bar.update(task, completed=done, total=total or None, description=f"{run_id} {desc}".strip())

        yield on_progress


@contextlib.contextmanager
def _live_ingest(workspace: Path, run_id: str) -> Any:
    """While a run executes in this process: ingest its folder in a thread (its own store connection), so the
    TUI and ``ganaug runs`` see its metrics and progress live."""
    from engine.runner.head import Head
    from engine.runner.worker import METRIC_FLUSH_S

    halt = threading.Event()

    def loop() -> None:
        with st.Store(workspace) as store:
            head = Head(store, say=lambda msg: None)
            while not halt.wait(METRIC_FLUSH_S):
                with contextlib.suppress(InputError):  # removed or a store hiccup: the next pass tries again
                    head.watch([store.get_run(run_id)])

    thread = threading.Thread(target=loop, daemon=True, name="ganaug-ingest")
    thread.start()
    try:
        yield
    finally:
        halt.set()
        thread.join(timeout=30)


def _show(on_progress: Callable[[int, int, str], None], run: st.Run) -> None:
    p = run.progress or {}
    if p.get("total"):
        on_progress(int(p.get("done") or 0), int(p["total"]), str(p.get("desc") or ""))
