"""Runs a DAG of queued runs in the foreground: in dependency order, one at a time, in this process, through the
worker's own code path (``engine.runner.launch.execute_here``: the worker on the run's folder, this process its
head), with one progress display of the whole DAG.

A run of the DAG that another process owns (the engine took a run an earlier ``--detach`` queued, or another
foreground process) is waited for, not run twice: a run is claimed atomically before it starts. A run that ends
badly makes its waiting descendants dependency-failed (the store settles them) and the others go on. Ctrl-C stops
the run in progress gracefully (it checkpoints and ends interrupted) and ends the runs still waiting for this
process interrupted too: submitting the experiment again resumes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import store as st
from engine.errors import InputError
from engine.store.owners import engine_info

WAIT_POLL_S = 0.5
# What a DAG's stages are called on screen, in the order they run.
STAGES = {"classify": "fine-tunes", "gan-train": "GAN", "gan-import": "GAN", "gan-pool": "pool", "select": "selection"}


@dataclass
class DagOutcome:
    """Each run's final status, and the runs this process executed with their wall time in seconds."""

    status: dict[str, str]
    executed: dict[str, float] = field(default_factory=dict)


class _Display:
    """The whole DAG on stderr: per kind, runs done of all; the run in progress with its own bar (a terminal), or
    one plain line per run started and ended (a file, a pipe, CI)."""

    def __init__(self, store: st.Store, run_ids: Sequence[str]) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.kinds: dict[str, list[str]] = {}
        for run in store.get_runs(list(run_ids)):
            self.kinds.setdefault(run.kind, []).append(run.id)
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Display:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console, transient=False)
            self.bar.__enter__()
            for kind, ids in self.kinds.items():
                self.tasks[kind] = self.bar.add_task(f"{STAGES.get(kind, kind):<11} ({kind})", total=len(ids))
            self.tasks["current"] = self.bar.add_task("", total=None, visible=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def update(self, status: dict[str, str]) -> None:
        if self.bar is None:
            return
        for kind, ids in self.kinds.items():
            done = sum(status.get(r) in (*st.TERMINAL, st.INTERRUPTED) for r in ids)
            self.bar.update(self.tasks[kind], completed=done)

    def started(self, run: st.Run) -> None:
        if self.bar is None:
            self.console.print(f"{run.id}: started ({run.kind})", highlight=False)
        else:
            self.bar.update(self.tasks["current"], description=f"  {run.id}", completed=0, total=None, visible=True)

    def progress(self, run_id: str, done: int, total: int, desc: str) -> None:
        if self.bar is not None:
            self.bar.update(self.tasks["current"], completed=done, total=total or None,
                            description=f"  {run_id} {desc}".rstrip())

    def ended(self, run_id: str, status: str, reason: str | None, seconds: float) -> None:
        why = f" ({reason})" if reason else ""
        line = f"{run_id}: {status}{why} in {seconds:.0f} s"
        if self.bar is None:
            self.console.print(line, highlight=False, soft_wrap=True)
        else:
            self.bar.update(self.tasks["current"], visible=False)
            if status != st.SUCCEEDED:
                self.bar.console.print(line, style="red", highlight=False)

    def say(self, line: str) -> None:
        (self.bar.console if self.bar is not None else self.console).print(line, highlight=False, soft_wrap=True)


class ThreadShare:
    """Torch's intra-op threads for the runs this process executes: every core while other processes leave the
    cores idle, one thread while they take more than half a core. Two OpenMP threads spin-waiting against another
    busy process are several times slower than one thread (a StyleGAN2 ``demo`` step on 2 cores with one core
    busy elsewhere: 1,447 ms with 2 threads, 378 ms with 1; 234 vs 379 ms when quiet: ``bench/bench_threads.py``),
    so the share is re-measured every ``period`` seconds from ``/proc/stat`` minus this process's own CPU time.
    An explicit ``OMP_NUM_THREADS`` wins; elsewhere than Linux the threads stay as torch chose."""

    def __init__(self, period: float = 5.0) -> None:
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.period = period
        self.active = "OMP_NUM_THREADS" not in os.environ and Path("/proc/stat").is_file() and self.cores > 1
        self._last: tuple[float, float, float] | None = None
        self.threads: int | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        """(wall, busy CPU seconds of the machine, CPU seconds of this process)."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        own = os.times()
        return time.monotonic(), (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system

    def adjust(self, *, force: bool = False) -> None:
        """Re-measure (at most every ``period`` s unless ``force``) and set torch's threads; from the thread that
        runs the model (between two of its operations)."""
        if not self.active:
            return
        now = time.monotonic()
        if self._last is not None and not force and now - self._last[0] < self.period:
            return
        sample = self._sample()
        if self._last is not None and sample[0] - self._last[0] > 0.05:
            others = ((sample[1] - self._last[1]) - (sample[2] - self._last[2])) / (sample[0] - self._last[0])
            want = 1 if others > 0.5 else self.cores
            if want != self.threads:
                import torch

                torch.set_num_threads(want)
                self.threads = want
        self._last = sample

    def probe(self, seconds: float = 0.3) -> None:
        """A first measurement while this process is idle (before the first run)."""
        if self.active:
            self._last = self._sample()
            time.sleep(seconds)
            self.adjust(force=True)


def run_dag_here(store: st.Store, run_ids: Sequence[str], *, device: str | None = None) -> DagOutcome:
    """Be the head of a DAG until each of its runs has ended, or nothing can move without the user (a paused run):
    every run of ``run_ids`` that is (or becomes) queued starts, parents first: a local run executes in this
    process (one at a time), a cluster run is submitted as its job, which this process watches (ingests, judges,
    resubmits when preempted). Runs another process owns are waited for. ``device``: the local runs' device when
    their config says ``auto`` (default: cuda when a GPU is visible); on a CPU their threads follow
    :class:`ThreadShare`. While a local run executes, cluster runs are not watched: their children start after it.

    Ctrl-C: the local run in progress stops gracefully (interrupted), the runs waiting for this process end
    interrupted, and the cluster jobs this process submitted are cancelled (watched until they stopped; a second
    Ctrl-C stops watching, and the engine judges them)."""
    from engine.executors.local import detect_gpus
    from engine.runner.head import Head
    from engine.runner.launch import console_handler, execute_here

    ids = list(dict.fromkeys(run_ids))
    me = os.getpid()
    device = device or ("cuda" if detect_gpus() else "cpu")
    outcome = DagOutcome({})
    share = ThreadShare() if device == "cpu" else None
    if share is not None:
        share.probe()
    with _Display(store, ids) as display:
        handler = console_handler(display.console)
        handler.setLevel(logging.WARNING)  # a whole DAG: the runs' warnings and errors, not every epoch
        head = Head(store, say=display.say)
        waiting_said = cancelling = False
        while True:
            try:
                runs = {r.id: r for r in store.get_runs(ids)}
                status = {rid: r.status for rid, r in runs.items()}
                display.update(status)
                open_ = [runs[r] for r in ids if status[r] not in (*st.TERMINAL, st.INTERRUPTED)]
                mine = _watch_cluster(store, head, open_, me, start=not cancelling)
                if cancelling:
                    if not mine:
                        raise KeyboardInterrupt
                    time.sleep(WAIT_POLL_S)
                    continue
                if not open_:
                    break
                ready = sorted((r for r in open_ if r.status == st.QUEUED and r.executor == "local"),
                               key=lambda r: (-r.priority, r.seq))
                if ready:
                    run = ready[0]
                    if not store.claim(run.id, slot="foreground", engine_pid=None, pid=me, foreground_pid=me):
                        continue  # another process took it first: it is waited for like the others
                    display.started(run)
                    t0 = time.monotonic()

                    def on_progress(done: int, total: int, desc: str, rid: str = run.id) -> None:
                        display.progress(rid, done, total, desc)
                        if share is not None:
                            share.adjust()  # the kind's own thread, between two of its operations

                    if share is not None:
                        share.adjust(force=True)
                    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the outcome document
                        end = execute_here(store, run.id, device=device, console=handler, on_progress=on_progress)
                    seconds = time.monotonic() - t0
                    outcome.executed[run.id] = seconds
                    display.ended(run.id, end, store.get_run(run.id).exit_reason, seconds)
                    if end == st.INTERRUPTED:  # Ctrl-C or a stop: the rest waits for the next submission
                        raise KeyboardInterrupt
                    continue
                if not _can_move(store, open_):
                    display.say(f"{len(open_)} run(s) wait on paused runs (`ganaug runs resume ...`); stopping here")
                    break
                if not waiting_said and any(r.status in st.ACTIVE and r.foreground_pid != me for r in open_):
                    display.say("waiting for runs that another process (the engine?) is running")
                    waiting_said = True
                time.sleep(WAIT_POLL_S)
                store.reap_dead_owners()
            except KeyboardInterrupt:
                if cancelling:
                    raise
                cancelling = True
                runs_now = store.get_runs(ids)
                for run in runs_now:
                    if run.status in (st.QUEUED, st.BLOCKED) and run.foreground_pid == me:
                        store.finish(run.id, st.INTERRUPTED, "interrupted (Ctrl-C) before it started",
                                     only_from=(st.QUEUED, st.BLOCKED))
                jobs = [r.id for r in runs_now if r.executor == "slurm" and r.status in st.ACTIVE
                        and r.foreground_pid == me]
                if not jobs:
                    raise
                display.say(f"cancelling {len(jobs)} cluster job(s) (Ctrl-C again to stop watching them; the "
                            "engine then judges them)")
                from engine.runner.control import cancel_runs

                with contextlib.suppress(InputError):
                    cancel_runs(store, jobs)
    outcome.status = {r.id: r.status for r in store.get_runs(ids)}
    return outcome


def _watch_cluster(store: st.Store, head: Any, open_: list[st.Run], me: int, *, start: bool) -> list[st.Run]:
    """One pass of this process as the head of the DAG's cluster runs: submit the queued ones (``start``), ingest
    the folders of the active ones, judge their jobs (those this process submitted; every one when no engine
    serves the workspace, e.g. jobs a killed head left) and forward cancels. Returns the active cluster runs this
    process owns."""
    if start:
        for run in open_:
            if run.status == st.QUEUED and run.executor == "slurm":  # first submission, or a resubmission
                head.slurm.start(run.id, foreground_pid=me)
    cluster = [r.id for r in open_ if r.executor == "slurm"]
    if not cluster:
        return []
    active = [r for r in store.get_runs(cluster) if r.status in st.ACTIVE]
    no_engine = engine_info(store.workspace) is None
    head.watch(active, judge=lambda run: run.foreground_pid == me or no_engine)
    return [r for r in store.get_runs([r.id for r in active]) if r.status in st.ACTIVE and r.foreground_pid == me]


def _can_move(store: st.Store, open_: list[st.Run]) -> bool:
    """Whether a run still open can start without the user: it runs or waits queued somewhere, or an ancestor
    does (a run that only waits on paused runs, or is paused itself, cannot). Read afresh: this pass may have
    moved them (a job's outcome ingested), and a run that ended meanwhile is a move too."""
    seen: set[str] = set()
    ids = {r.id for r in open_}
    frontier = store.get_runs(list(ids))
    ended = (*st.TERMINAL, st.INTERRUPTED)
    while frontier:
        run = frontier.pop()
        if run.id in seen:
            continue
        seen.add(run.id)
        if run.status in (st.RUNNING, st.QUEUED) or (run.status in ended and run.id in ids):
            return True
        if run.status == st.BLOCKED:
            frontier += store.get_runs(list(run.parents))
    return False


def launch_experiment(store: st.Store, planned: Any, *, detach: bool = False,
                      priority: int = 0) -> tuple[Any, DagOutcome | None]:
    """Submit a plan (``engine.grid.Plan``, whose executor its runs go to) and run it: with this process as its
    head (the default), or by the engine (``detach``). Returns the submission and, in the foreground, the DAG's
    outcome."""
    from engine.grid import submit

    sub = submit(store, planned, priority=priority, foreground_pid=None if detach else os.getpid())
    if detach:
        return sub, None
    return sub, run_dag_here(store, sub.run_ids)
