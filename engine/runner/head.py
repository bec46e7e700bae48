"""The head process's side of every run it watches: the engine watches all of them, a foreground ``ganaug run``
its own.

Workers write only their run folders (``engine.store.runfolder``); the head keeps the store the single source of
truth: it ingests the folders (``engine.store.ingest``), settles an execution that ended without writing its
outcome, judges cluster jobs by their state (``engine.executors.slurm``), resubmits a cluster run that was
interrupted (preempted, killed, timed out) so that it resumes from its checkpoint, and forwards cancels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from engine import store as st
from engine.errors import InputError
from engine.executors.slurm import SlurmExecutor, SlurmOptions, cancel_job
from engine.store.ingest import Ingestor


class Head:
    def __init__(self, store: st.Store, say: Callable[[str], None]) -> None:
        self.store, self.say = store, say
        self.ingestor = Ingestor(store)
        self.slurm = SlurmExecutor(store, say)
        self._watched: set[str] = set()

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
        """One pass over ``active`` runs (as just read from the store): ingest every folder, then judge the cluster
        jobs among them (those ``judge`` accepts: not a run another live head watches) and forward cancels."""
        self._apply(self.ingestor.ingest(active))
        ids = {r.id for r in active}
        for gone in self._watched - ids:
            self.ingestor.forget(gone)
        self._watched = ids
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
