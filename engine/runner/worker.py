"""Executes ONE run: builds the concrete RunContext, calls the kind, records the outcome.

The same ``execute`` runs in the engine's per-run subprocess (``python -m engine.runner.worker WORKSPACE RUN_ID``)
and in the foreground of ``ganaug run``, so a run behaves identically however it was started.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import store as st
from engine.runner.kinds import get_kind

# Tunables (env, so tests and the engine can tighten them without new flags).
HEARTBEAT_S = float(os.environ.get("GANAUG_HEARTBEAT", "5"))
METRIC_FLUSH_S = float(os.environ.get("GANAUG_METRIC_FLUSH", "2"))
METRIC_FLUSH_ROWS = 5000
PROGRESS_S = 0.5
CHECKPOINT = "last.pt"
ENGINE_PID_ENV = "GANAUG_ENGINE_PID"
DEVICE_ENV = "GANAUG_DEVICE"  # set by the engine from its slot: "cuda" or "cpu"


class WorkerContext:
    """The concrete ``engine.runner.kinds.RunContext``: metrics buffered and flushed in batches, progress
    rate-limited into the store, checkpoints written atomically, a stop flag for graceful shutdown."""

    def __init__(self, store: st.Store, run: st.Run, *, device: str, log: logging.Logger,
                 on_progress: Callable[[int, int, str], None] | None = None) -> None:
        self.run_id = run.id
        self.label = run.label
        self.experiment = run.experiment
        self.run_dir = store.run_dir(run.id)
        self.config: dict[str, Any] = run.config
        self.seed = int(run.config.get("seed", 0))
        self.device = device
        self.workspace = store.workspace
        self.log = log
        self._store = store
        self._on_progress = on_progress
        self._buf: list[tuple[str, int, float, float]] = []
        self._buf_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._last_progress = 0.0
        self._stop = threading.Event()

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

    def flush(self, store: st.Store | None = None) -> None:
        """Write buffered metric points in one transaction (``store``: the calling thread's connection)."""
        with self._buf_lock:
            rows, self._buf = self._buf, []
            self._last_flush = time.monotonic()
        try:
            (store or self._store).write_metrics(self.run_id, rows)
        except BaseException:
            with self._buf_lock:  # keep them for the next attempt
                self._buf[:0] = rows
            raise

    # -- progress
    def progress(self, done: int, total: int, desc: str = "") -> None:
        if self._on_progress is not None:
            self._on_progress(done, total, desc)
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_S or done >= total:
            self._last_progress = now
            self._store.set_progress(self.run_id, int(done), int(total), desc)

    # -- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / CHECKPOINT

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Flush metrics first (so the stored series always reaches the checkpoint), then write atomically."""
        import torch

        from engine.fsutil import atomic_path

        self.flush()
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

    def request_stop(self) -> None:
        self._stop.set()


class _Heartbeat(threading.Thread):
    """Writes the heartbeat, flushes stale metric buffers and notices a cancel request from the store."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(daemon=True, name="ganaug-heartbeat")
        self.ctx = ctx
        self.cancelled = False
        self._halt = threading.Event()

    def run(self) -> None:
        store = st.Store(self.ctx.workspace)  # own connection: sqlite connections stay in their thread
        try:
            while not self._halt.wait(min(HEARTBEAT_S, METRIC_FLUSH_S)):
                if store.heartbeat(self.ctx.run_id):
                    self.cancelled = True
                    self.ctx.request_stop()
                self.ctx.flush(store)
        finally:
            store.close()

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=10)


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


def execute(store: st.Store, run_id: str, *, device: str, console: logging.Handler | None = None,
            on_progress: Callable[[int, int, str], None] | None = None,
            install_signals: bool = True) -> str:
    """Run an already-claimed (status running) run to its end; returns the final status.

    SIGTERM (and SIGINT) ask the kind to stop: it checkpoints and returns; the run then ends cancelled
    when a cancel was requested, else interrupted (resumable). An exception ends it failed with the
    traceback in ``log.txt``.
    """
    run = store.get_run(run_id)
    run_dir = store.run_dir(run.id)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    log = run_logger(run_dir, run.id, console)
    ctx = WorkerContext(store, run, device=device, log=log, on_progress=on_progress)
    previous: dict[int, Any] = {}
    if install_signals and threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: object) -> None:
            if ctx.stop_requested() and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            log.info("received %s: stopping gracefully", signal.Signals(signum).name)
            ctx.request_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    beat = _Heartbeat(ctx)
    beat.start()
    log.info("run %s (kind %s, attempt %d) on %s, pid %d", run.id, run.kind, run.attempt, device, os.getpid())
    status, reason = st.FAILED, None
    try:
        fn = get_kind(run.kind)
        fn(ctx)
        if ctx.stop_requested():
            cancelled = beat.cancelled or store.get_run(run.id).cancel_requested
            status = st.CANCELLED if cancelled else st.INTERRUPTED
            reason = "cancelled by user" if cancelled else "stopped (engine shutdown or signal)"
        else:
            status = st.SUCCEEDED
    except KeyboardInterrupt:
        status, reason = st.INTERRUPTED, "interrupted (Ctrl-C)"
        log.info("interrupted")
    except BaseException as exc:  # the run failed; the worker itself must record it
        status = st.FAILED
        reason = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1][:500]
        log.error("run failed:\n%s", traceback.format_exc())
    finally:
        beat.halt()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        ctx.flush()
    except Exception:  # the outcome matters more than the last few points
        log.error("could not flush metrics:\n%s", traceback.format_exc())
    store.finish(run.id, status, reason)
    log.info("run %s %s%s", run.id, status, f": {reason}" if reason else "")
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    return status


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
    with st.Store(Path(args[0])) as store:
        status = execute(store, args[1], device=os.environ.get(DEVICE_ENV, "cpu"))
    return 0 if status == st.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
