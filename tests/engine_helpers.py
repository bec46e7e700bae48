"""Helpers of the tests that drive the engine, foreground runs and cluster jobs through the real CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from engine import store as st

GANAUG = str(Path(sys.executable).parent / "ganaug")
FAST_ENV = {"GANAUG_POLL": "0.05", "GANAUG_HEARTBEAT": "0.2", "GANAUG_METRIC_FLUSH": "0.1", "HF_HUB_OFFLINE": "1",
            "GANAUG_CLUSTER_INGEST": "0.1"}


def default_sigint() -> None:
    """``preexec_fn`` of a child the test interrupts with SIGINT: Ctrl-C must reach it even when the test run
    itself was started with SIGINT ignored (nohup, ``&``), which children would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(ws: Path, *args: str, check: bool = True, timeout: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``ganaug ARGS`` on workspace ``ws`` (fast engine tunables, extra ``env``); the finished process."""
    env = os.environ | FAST_ENV | {"GANAUG_WORKSPACE": str(ws)} | (env or {})
    proc = subprocess.run([GANAUG, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ganaug {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(cond: Callable[[], object], timeout: float = 30, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _processes_of(ws: Path, module: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if module in cmd and str(ws) in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def kill_everything(ws: Path) -> None:
    """Teardown: SIGKILL this workspace's engines, workers and local cluster jobs (found by command line, nothing
    else)."""
    for module in ("engine.runner.daemon", "engine.runner.worker", "submitit.local._local", "submitit.core._submit"):
        for proc in _processes_of(ws, module):
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.killpg(proc.pid, signal.SIGKILL) if module == "engine.runner.worker" else proc.kill()


def status_of(ws: Path, run_id: str) -> str:
    with st.open_store(ws) as s:
        return s.get_run(run_id).status


def wait_status(ws: Path, run_id: str, wanted: tuple[str, ...], timeout: float = 30) -> str:
    return wait_for(lambda: (s := status_of(ws, run_id)) in wanted and s, timeout, f"{run_id} in {wanted}")


