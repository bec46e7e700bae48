"""Executes ONE run: reads it from its ``run.json``, builds the RunContext, calls the kind, writes the outcome.

The same ``execute`` runs in an engine slot's subprocess (``python -m engine.runner.worker WORKSPACE RUN_ID``), in
the foreground of ``ganaug run`` and inside a cluster job (``engine.executors.slurm``), so a run behaves the same
however and wherever it was started. It never opens the store: metrics, progress, heartbeat and the outcome go
into the run folder (``engine.store.runfolder``) and the head process ingests them (``engine.store.ingest``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.runner.kinds import get_kind
from engine.store.runfolder import RUN_JSON, FolderWriter, MetricRow, read_json

# Tunables (env, so tests and the engine can tighten them without new flags).
HEARTBEAT_S = float(os.environ.get("GANAUG_HEARTBEAT", "5"))
METRIC_FLUSH_S = float(os.environ.get("GANAUG_METRIC_FLUSH", "2"))
METRIC_FLUSH_ROWS = 5000
PROGRESS_S = 0.5
CHECKPOINT = "last.pt"
ENGINE_PID_ENV = "GANAUG_ENGINE_PID"
DEVICE_ENV = "GANAUG_DEVICE"  # set by the engine from its slot: "cuda" or "cpu"
EXIT_SUPERSEDED = 3
_ACTIVE = ("running", "paused")


@dataclass(frozen=True)
class RunSpec:
    """The run as its ``run.json`` describes it (the store rewrites that file at every state change)."""

    id: str
    kind: str
    label: str | None
    experiment: str | None
    config: dict[str, Any]
    seed: int
    attempt: int
    resumes: int
    status: str
    job_id: str | None

    @classmethod
    def read(cls, run_dir: Path) -> RunSpec:
        doc = read_json(run_dir / RUN_JSON)
        if doc is None:
            raise InputError(f"{run_dir / RUN_JSON}: missing or unreadable; is {run_dir.name!r} a run?")
        return cls(id=doc["id"], kind=doc["kind"], label=doc.get("label"), experiment=doc.get("experiment"),
                   config=doc["config"], seed=int(doc.get("seed", 0)), attempt=int(doc.get("attempt", 1)),
                   resumes=int(doc.get("resumes", 0)), status=doc.get("status", ""), job_id=doc.get("job_id"))


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | failed | interrupted
    reason: str | None
    stop_signal: int | None = None  # the signal that asked it to stop, if one did


class WorkerContext:
    """The concrete ``engine.runner.kinds.RunContext``: metrics buffered and appended to the run folder in
    batches, progress rate-limited, checkpoints written atomically, a stop flag for graceful shutdown."""

    def __init__(self, spec: RunSpec, run_dir: Path, *, device: str, log: logging.Logger, writer: FolderWriter,
                 on_progress: Callable[[int, int, str], None] | None = None) -> None:
        self.run_id = spec.id
        self.label = spec.label
        self.experiment = spec.experiment
        self.run_dir = run_dir
        self.config: dict[str, Any] = spec.config
        self.seed = int(spec.config.get("seed", 0))
        self.device = device
        self.workspace = run_dir.parent
        self.log = log
        self._writer = writer
        self._on_progress = on_progress
        self._buf: list[MetricRow] = []
        self._buf_lock = threading.Lock()
        self._write_lock = threading.Lock()  # batches reach the file in the order they left the buffer
        self._last_flush = time.monotonic()
        self._last_progress = 0.0
        self._stop = threading.Event()
        self.stop_signal: int | None = None

    # -- metrics
    def metric(self, name: str, value: float, step: int) -> None:
        self.metrics({name: value}, step)

    def metrics(self, values: dict[str, float], step: int) -> None:
        wall = time.time()
        with self._buf_lock:
            self._buf.extend((n, int(step), float(v), wall) for n, v in values.items())
            due = len(self._buf) >= METRIC_FLUSH_ROWS or time.monotonic() - self._last_flush >= METRIC_FLUSH_S
        if due:
            self.flush()

    def flush(self, *, sync: bool = False) -> None:
        """Append buffered metric points to the run folder (``sync``: and to stable storage)."""
        with self._write_lock:
            with self._buf_lock:
                rows, self._buf = self._buf, []
                self._last_flush = time.monotonic()
            try:
                self._writer.append_metrics(rows, sync=sync)
            except BaseException:
                with self._buf_lock:  # keep them for the next attempt
                    self._buf[:0] = rows
                raise

    def flush_if_stale(self) -> None:
        if time.monotonic() - self._last_flush >= METRIC_FLUSH_S:
            self.flush()

    # -- progress
    def progress(self, done: int, total: int, desc: str = "") -> None:
        if self._on_progress is not None:
            self._on_progress(done, total, desc)
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_S or done >= total:
            self._last_progress = now
            self._writer.progress(int(done), int(total), desc)

    # -- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / CHECKPOINT

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Flush metrics first (so the series always reaches the checkpoint), then write atomically."""
        import torch

        from engine.fsutil import atomic_path

        self.flush(sync=True)
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.is_file():
            return None
        import torch

        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)

    # -- stopping
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self, signum: int | None = None) -> None:
        if not self._stop.is_set():
            self.stop_signal = signum
        self._stop.set()


class _Heartbeat(threading.Thread):
    """Writes the heartbeat, flushes stale metric buffers and, in a worker process of its own, ends it at once
    when its run was taken over (``superseded``)."""

    def __init__(self, ctx: WorkerContext, writer: FolderWriter, spec: RunSpec, *, exit_when_superseded: bool) -> None:
        super().__init__(daemon=True, name="ganaug-heartbeat")
        self.ctx, self.writer, self.spec, self.exit_when_superseded = ctx, writer, spec, exit_when_superseded
        self._halt = threading.Event()

    def run(self) -> None:
        last_beat = time.monotonic()
        while not self._halt.wait(min(HEARTBEAT_S, METRIC_FLUSH_S)):
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic()
                self.writer.heartbeat()
                if self.exit_when_superseded and (why := superseded(self.ctx.run_dir, self.spec)):
                    self.ctx.log.error("stopping at once without writing anything: %s", why)
                    os._exit(EXIT_SUPERSEDED)
            self.ctx.flush_if_stale()

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def superseded(run_dir: Path, mine: RunSpec) -> str | None:
    """Why this execution no longer owns its run (per ``run.json``), or None while it does: the run was settled or
    re-queued meanwhile (its head judged this execution dead and started another), or another cluster job runs it.
    Such an execution must stop without writing: its files would mix with the new owner's."""
    now = read_json(run_dir / RUN_JSON)
    if now is None:
        return None
    if now.get("status") not in _ACTIVE:
        return f"the run is {now.get('status')} now"
    if (int(now.get("attempt", 0)), int(now.get("resumes", 0))) > (mine.attempt, mine.resumes):
        return f"the run was restarted (attempt {now.get('attempt')}, resume {now.get('resumes')})"
    if mine.job_id is not None and now.get("job_id") not in (None, mine.job_id):
        return f"job {now.get('job_id')} runs it now"
    return None


def run_logger(run_dir: Path, run_id: str, console: logging.Handler | None = None) -> logging.Logger:
    """``runs/<id>/log.txt`` (appended across attempts), plus an optional console handler."""
    log = logging.getLogger(f"ganaug.run.{run_id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fh = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(fh)
    if console is not None:
        log.addHandler(console)
    return log


def execute(run_dir: Path, *, device: str, console: logging.Handler | None = None,
            on_progress: Callable[[int, int, str], None] | None = None, install_signals: bool = True,
            stop_signals: Mapping[int, str] | None = None, requeue_signal: int | None = None,
            job_id: str | None = None, resumes: int | None = None, exit_when_superseded: bool = False) -> Outcome:
    """Run the (claimed) run of ``run_dir`` to its end and write its outcome (``done.json``).

    A stop signal (default SIGTERM, SIGINT; ``stop_signals`` maps more to a reason) asks the kind to stop: it
    checkpoints and returns, and the run ends interrupted (the head makes that cancelled when a cancel was
    requested). ``requeue_signal``: the stop it causes is marked ``requeued`` (a cluster job that will resume in
    place). An exception ends it failed with the traceback in ``log.txt``. ``job_id`` / ``resumes``: the cluster
    job running it and its own resume count (a job requeued in place knows it before the head does)."""
    spec = RunSpec.read(run_dir)
    if job_id is not None or resumes is not None:
        spec = replace(spec, job_id=job_id or spec.job_id, resumes=spec.resumes if resumes is None else resumes)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    log = run_logger(run_dir, spec.id, console)
    if exit_when_superseded and (why := superseded(run_dir, spec)):
        log.error("not starting: %s", why)  # e.g. a job Slurm restarted on its own after its head resubmitted it
        os._exit(EXIT_SUPERSEDED)
    writer = FolderWriter(run_dir, {"run_id": spec.id, "attempt": spec.attempt, "resumes": spec.resumes,
                                    "job_id": spec.job_id})
    writer.start()
    ctx = WorkerContext(spec, run_dir, device=device, log=log, writer=writer, on_progress=on_progress)
    reasons = {signal.SIGTERM: "stopped by SIGTERM", signal.SIGINT: "stopped by SIGINT", **(stop_signals or {})}
    previous: dict[int, Any] = {}
    if install_signals and threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: object) -> None:
            if ctx.stop_requested() and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            log.info("received %s: stopping gracefully", signal.Signals(signum).name)
            ctx.request_stop(signum)

        for sig in reasons:
            previous[sig] = signal.signal(sig, on_signal)
    beat = _Heartbeat(ctx, writer, spec, exit_when_superseded=exit_when_superseded)
    beat.start()
    log.info("run %s (kind %s, attempt %d, resume %d) on %s, pid %d%s", spec.id, spec.kind, spec.attempt,
             spec.resumes, device, os.getpid(), f", job {spec.job_id}" if spec.job_id else "")
    status, reason = "failed", None
    try:
        fn = get_kind(spec.kind)
        fn(ctx)
        if ctx.stop_requested():
            status, reason = "interrupted", reasons.get(ctx.stop_signal or signal.SIGTERM, "stopped")
        else:
            status = "succeeded"
    except KeyboardInterrupt:
        status, reason = "interrupted", "interrupted (Ctrl-C)"
        log.info("interrupted")
    except InputError as exc:  # bad input only found while running (a truncated image): its one line, no traceback
        status, reason = "failed", " ".join(str(exc).split())
        log.error("run failed: %s", reason)
    except BaseException as exc:  # the run failed; the worker itself must record it
        status = "failed"
        reason = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1][:500]
        log.error("run failed:\n%s", traceback.format_exc())
    finally:
        beat.halt()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        ctx.flush(sync=True)
    except Exception:  # the outcome matters more than the last few points
        log.error("could not flush metrics:\n%s", traceback.format_exc())
    requeued = status == "interrupted" and requeue_signal is not None and ctx.stop_signal == requeue_signal
    writer.done(status, reason, requeued=requeued)
    log.info("run %s %s%s%s", spec.id, status, f": {reason}" if reason else "", " (requeued)" if requeued else "")
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    return Outcome(status, reason, ctx.stop_signal)


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the engine that launched it dies (kill -9 included)."""
    expected = os.environ.get(ENGINE_PID_ENV)
    if not sys.platform.startswith("linux") or not expected:
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(expected):  # the engine died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.runner.worker WORKSPACE RUN_ID``: the engine's per-run subprocess."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m engine.runner.worker WORKSPACE RUN_ID", file=sys.stderr)
        return 2
    _die_with_parent()
    try:
        outcome = execute(Path(args[0]) / args[1], device=os.environ.get(DEVICE_ENV, "cpu"), exit_when_superseded=True)
    except InputError as exc:  # e.g. its run.json is gone: one line in the run's log, the engine records the exit
        print(f"worker: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0 if outcome.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
