"""The head process's side of every run it watches: the engine watches all of them, a foreground ``ganaug run``
its own.

Workers write only their run folders (``engine.store.runfolder``); the head keeps the store the single source of
truth: it ingests the folders (``engine.store.ingest``), settles an execution that ended without writing its
outcome, judges cluster jobs by their state (``engine.executors.slurm``), resubmits a cluster run that was
interrupted (preempted, killed, timed out) so that it resumes from its checkpoint, and forwards cancels.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence

from engine import store as st
from engine.errors import InputError
from engine.executors.slurm import SlurmExecutor, SlurmOptions, cancel_job
from engine.store.ingest import Ingestor

# Cluster runs' folders are read at most this often: on a network file system every open is a round trip to the
# server, and a job's worker appends its metrics every couple of seconds anyway.
CLUSTER_INGEST_S = float(os.environ.get("GANAUG_CLUSTER_INGEST", "2"))


class Head:
    def __init__(self, store: st.Store, say: Callable[[str], None]) -> None:
        self.store, self.say = store, say
        self.ingestor = Ingestor(store)
        self.slurm = SlurmExecutor(store, say)
        self._watched: set[str] = set()
        self._last_cluster_pass = float("-inf")

    def settle(self, run_id: str, status: str, reason: str) -> None:
        """An execution of ``run_id`` ended: ingest what it left; if it wrote no outcome, record ``status``."""
        try:
            run = self.store.get_run(run_id)
        except InputError:  # removed meanwhile (`runs wait X && runs rm X`)
            self.say(f"run {run_id} ended (removed meanwhile)")
            return
        found = self._apply(self.ingestor.ingest([run]))
        if self.store.finish(run_id, status, reason, only_from=st.ACTIVE):
            self.say(f"run {run_id} {self.store.get_run(run_id).status}: {reason}")
            self._after_interrupt(run_id)
        elif not found:
            self.say(f"run {run_id} ended (outcome recorded by its worker)")
        self.ingestor.forget(run_id)

    def watch(self, active: Sequence[st.Run], *, judge: Callable[[st.Run], bool] = lambda run: True) -> None:
        """One pass over ``active`` runs (as just read from the store): ingest their folders (a cluster run's at most
        every ``CLUSTER_INGEST_S``), then judge the cluster jobs among them (those ``judge`` accepts: not a run
        another live head watches) and forward cancels."""
        cluster_pass = time.monotonic() - self._last_cluster_pass >= CLUSTER_INGEST_S
        if cluster_pass:
            self._last_cluster_pass = time.monotonic()
        self._apply(self.ingestor.ingest([r for r in active if cluster_pass or r.executor == "local"]))
        ids = {r.id for r in active}
        for gone in self._watched - ids:
            self.ingestor.forget(gone)
            self.slurm.forget(gone)
        self._watched = ids
        if not cluster_pass:
            return
        wanted = {r.id for r in active if r.executor == "slurm" and r.job_id}
        jobs = [r for r in (self.store.list_runs(status=st.ACTIVE) if wanted else [])  # after this pass's outcomes
                if r.id in wanted and r.job_id and judge(r)]
        for run_id, status, reason in self.slurm.judge(jobs):
            self.settle(run_id, status, reason)
        self.slurm.cancel([r for r in jobs if r.cancel_requested])

    def _apply(self, settled: list[tuple[str, str]]) -> bool:
        for run_id, outcome in settled:
            run = self.store.get_run(run_id)
            self.say(f"run {run_id} {run.status}{f': {run.exit_reason}' if run.exit_reason else ''}")
            if outcome == "interrupted":
                self._after_interrupt(run_id)
        return bool(settled)

    def _after_interrupt(self, run_id: str) -> None:
        """A cluster run that ended interrupted (not by the user) is resubmitted at once and resumes from its
        checkpoint (a resume, not an attempt), up to its ``max_resubmits``; a local one waits for the engine's
        ``--on-interrupted`` policy."""
        run = self.store.get_run(run_id)
        if run.executor != "slurm" or run.status != st.INTERRUPTED:
            return
        limit = SlurmOptions.from_json(run.executor_opts).max_resubmits
        if run.resumes >= limit:
            self.say(f"run {run_id} stays interrupted: resumed {run.resumes} times (max_resubmits {limit}); "
                     f"`ganaug runs retry {run_id}` resubmits it")
            return
        with contextlib.suppress(InputError):
            cancel_job(run)  # Slurm may have requeued the old job on its own: only the new one may run the run
        try:
            new = self.store.retry(run_id, resume=True)
        except InputError as exc:
            self.say(f"run {run_id} stays interrupted: {exc}")
            return
        self.say(f"run {run_id} {new}: resubmitting it (resume {run.resumes + 1})")
