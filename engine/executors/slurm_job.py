"""What a Slurm job runs (``engine.executors.slurm`` submits it): the one worker code path on one run folder.

Its own module, because submitit pickles the callable by reference: a node imports this module (and with it the
same ganaug) to run the job, and the head imports submitit only when it submits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import DelayedSubmission


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Point this process's stdout and stderr (file descriptors: native code too) at ``path`` for a while: a job's
    output lands in the run's ``log.txt``, as an engine worker's does."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


class JobTask(submitit.helpers.Checkpointable):
    """What a job runs: the worker on one run folder. submitit pickles it (by reference to this module, so the
    nodes import the same ganaug), runs it, and on the USR2 Slurm sends before the time limit (or at a
    preemption, where the cluster signals it) lets it stop gracefully and calls ``checkpoint``: its checkpointing
    hook, which requeues the same job to resume from the run's checkpoint."""

    def __init__(self, run_dir: str, device: str, threads: int | None, resumes: int, max_requeues: int,
                 requeues: int = 0) -> None:
        self.run_dir, self.device, self.threads = run_dir, device, threads
        self.resumes, self.max_requeues, self.requeues = resumes, max_requeues, requeues

    def __call__(self) -> str:
        from engine.runner.worker import execute

        job_id = submitit.JobEnvironment().job_id
        # requeued by this hook, or by Slurm itself (a preemption in REQUEUE mode): either way one resume more
        resumes = self.resumes + max(self.requeues, int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0))
        if self.threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, str(self.threads))
        usr = submitit.JobEnvironment._usr_sig()
        submitit_handler = signal.getsignal(usr)  # submitit's: checkpoint() below, then requeue and exit
        may_requeue = callable(submitit_handler) and self.requeues < self.max_requeues
        run_dir = Path(self.run_dir)
        why = f"job {job_id}: time limit or preemption ({signal.Signals(usr).name})"
        with _output_to(run_dir / "log.txt"):
            outcome = execute(run_dir, device=self.device, job_id=job_id, resumes=resumes, stop_signals={usr: why},
                              requeue_signal=usr if may_requeue else None, exit_when_superseded=True)
        if may_requeue and outcome.stop_signal == usr:
            submitit_handler(usr, None)  # does not return: the job is requeued
        return outcome.status

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """submitit's hook: the kind has saved its state (it stopped gracefully); the requeued job resumes it."""
        return DelayedSubmission(JobTask(self.run_dir, self.device, self.threads, self.resumes, self.max_requeues,
                                         self.requeues + 1))
