"""The ``local`` executor: the engine's slots on this machine (the default executor).

- Slots: one per visible CUDA GPU (the run gets that GPU in ``CUDA_VISIBLE_DEVICES``), else ``cpu_slots``.
- Each run executes in its own subprocess and process group (``python -m engine.runner.worker WORKSPACE RUN_ID``):
  a crash, segfault, OOM or kill of a run never takes the engine down, and the worker dies with the engine
  (PR_SET_PDEATHSIG), so no run ever goes on unsupervised.
- Cancel: SIGTERM to the worker's group (it checkpoints and ends interrupted, which the head makes cancelled),
  SIGKILL after the grace period. Pause and resume (SIGSTOP / SIGCONT) are sent by the command itself
  (``engine.runner.control``).

A foreground ``ganaug run`` is the local executor too: it executes the worker in its own process
(``engine.runner.launch``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from engine import store as st
from engine.errors import InputError
from engine.executors import Ended
from engine.runner.worker import DEVICE_ENV, ENGINE_PID_ENV

Say = Callable[[str], None]


@dataclass(frozen=True)
class Slot:
    name: str  # "gpu<index>" or "cpu<n>"
    gpu: str | None = None  # the CUDA device id the run sees as its only GPU
    threads: int = 1  # this slot's share of the CPU cores: runs side by side must not oversubscribe OpenMP

    @property
    def device(self) -> str:
        return "cuda" if self.gpu is not None else "cpu"

    def worker_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment of a run in this slot: its GPU only, and its share of the cores unless the user
        already chose a thread count."""
        env = dict(base)
        env["CUDA_VISIBLE_DEVICES"] = self.gpu or ""
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(self.threads))
        return env


def detect_gpus() -> list[str]:
    """Visible CUDA devices without importing torch: ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``,
    else (only when an NVIDIA driver is present) torch."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        out = []
        for dev in (d.strip() for d in cvd.split(",")):
            if not dev or dev.startswith("-"):
                break  # CUDA ignores everything after an invalid entry
            out.append(dev)
        return out
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
        except (subprocess.SubprocessError, OSError):
            return []
        return [str(i) for i, line in enumerate(ln for ln in listing.splitlines() if ln.startswith("GPU "))]
    if Path("/proc/driver/nvidia").exists():
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    return []


def make_slots(cpu_slots: int = 1, use_gpus: bool = True) -> list[Slot]:
    gpus = detect_gpus() if use_gpus else []
    cores = len(os.sched_getaffinity(0))
    if gpus:
        return [Slot(f"gpu{g}", gpu=g, threads=max(1, cores // len(gpus))) for g in gpus]
    if cpu_slots < 1:
        raise InputError(f"--cpu-slots must be at least 1 (got {cpu_slots})")
    return [Slot(f"cpu{i}", threads=max(1, cores // cpu_slots)) for i in range(cpu_slots)]


def signal_group(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


@dataclass
class Child:
    run_id: str
    slot: Slot
    proc: subprocess.Popen[bytes]
    term_sent: float | None = None
    cancelled: bool = False
    log: IO[bytes] | None = field(default=None, repr=False)


class LocalExecutor:
    """The slots of one engine and the worker processes running in them."""

    def __init__(self, workspace: Path, slots: list[Slot], *, engine_pid: int, grace: float, say: Say) -> None:
        self.workspace, self.slots, self.engine_pid, self.grace, self.say = workspace, slots, engine_pid, grace, say
        self.children: dict[str, Child] = {}  # slot name -> child

    def running(self) -> set[str]:
        return {c.run_id for c in self.children.values()}

    def capacity(self) -> int:
        return len(self.slots) - len(self.children)

    def start(self, store: st.Store, run_id: str) -> bool:
        """Claim ``run_id`` for a free slot and start its worker; False if another process claimed it first."""
        slot = next(s for s in self.slots if s.name not in self.children)
        if not store.claim(run_id, slot=slot.name, engine_pid=self.engine_pid):
            return False
        env = slot.worker_env(os.environ)
        env.update({ENGINE_PID_ENV: str(self.engine_pid), DEVICE_ENV: slot.device})
        log = None
        try:
            log = open(store.run_dir(run_id) / "log.txt", "ab")  # noqa: SIM115 (closed when reaped)
            proc = subprocess.Popen([sys.executable, "-m", "engine.runner.worker", str(self.workspace), run_id],
                                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            if log is not None:
                log.close()
            store.finish(run_id, st.FAILED, f"could not start the worker: {exc}")
            return True
        store.set_pid(run_id, proc.pid)
        self.children[slot.name] = Child(run_id, slot, proc, log=log)
        self.say(f"run {run_id} started in slot {slot.name} (pid {proc.pid})")
        return True

    def poll(self, *, stopping: bool = False) -> list[Ended]:
        """Workers that exited (their runs, with what to record if they wrote no outcome); SIGKILL to those that
        ignored a stop for longer than the grace period."""
        ended = []
        now = time.monotonic()
        for slot_name, child in list(self.children.items()):
            rc = child.proc.poll()
            if rc is not None:
                del self.children[slot_name]
                if child.log is not None:
                    child.log.close()
                ended.append((child.run_id, *self._fallback(child, rc, stopping)))
            elif child.term_sent is not None and now - child.term_sent > self.grace:
                signal_group(child.proc.pid, signal.SIGKILL)
        return ended

    @staticmethod
    def _fallback(child: Child, rc: int, stopping: bool) -> tuple[str, str]:
        if child.cancelled:
            return st.CANCELLED, "cancelled by user (killed after the grace period)"
        if stopping:
            return st.INTERRUPTED, "engine stopped"
        return st.FAILED, (f"worker killed by signal {signal.Signals(-rc).name}" if rc < 0
                           else f"worker exited with code {rc} without recording an outcome")

    def cancel(self, run_ids: set[str]) -> None:
        """A cancel was requested for these runs: ask the ones running here to stop (once)."""
        for child in self.children.values():
            if child.run_id in run_ids and child.term_sent is None:
                child.cancelled = True
                self._terminate(child)

    def _terminate(self, child: Child) -> None:
        child.term_sent = time.monotonic()
        signal_group(child.proc.pid, signal.SIGCONT)  # a paused (stopped) run must be able to react
        signal_group(child.proc.pid, signal.SIGTERM)

    def shutdown(self) -> list[Ended]:
        """Graceful stop: SIGTERM every run (they checkpoint and end interrupted), SIGKILL after the grace."""
        for child in self.children.values():
            self._terminate(child)
        deadline = time.monotonic() + self.grace
        ended: list[Ended] = []
        while self.children:
            ended += self.poll(stopping=True)
            if time.monotonic() > deadline:
                for child in self.children.values():
                    signal_group(child.proc.pid, signal.SIGKILL)
            time.sleep(0.02)
        return ended
