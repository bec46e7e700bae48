"""The head's side of the run folder contract (``engine.store.runfolder``): read what workers wrote into the store.

- Incremental: a byte offset per metrics file; a pass reads only the bytes appended since, and only complete
  lines. The small files (progress, heartbeat, outcome) are read whole and compared with what was read last time
  (opening a file is what makes a network file system show another node's latest write; a cached ``stat`` is not).
- Idempotent: the new offset commits in the same transaction as the rows it covers, and only if the stored offset
  is still where the range starts (``Store.apply_updates``). A head that crashes re-reads exactly what it had not
  committed; two heads reading one folder never apply a range twice or out of order; and a metric is unique per
  (run, name, step) anyway, a later line replacing an earlier one (a resumed run rewrites the steps after its
  checkpoint).
- Cheap: one transaction per pass for every run it covers; the outcome of a run settles it (``Store.finish``).

A file another execution of the run left behind (an earlier attempt, or the execution before a resume) is told
apart by the attempt and resume count the worker stamps on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.store.core import ACTIVE, FAILED, INTERRUPTED, SUCCEEDED, FolderUpdate, Run, Store
from engine.store.runfolder import DONE, HEARTBEAT, METRICS, PROGRESS, read_metrics

_STATUS = {"succeeded": SUCCEEDED, "failed": FAILED, "interrupted": INTERRUPTED}
# A worker's clock and the head's may differ a little (another node): files stamped this much before the run
# started still count as this execution's.
_CLOCK_SLACK_S = 5.0


class Ingestor:
    """Reads run folders into one store. Keep one per head process: it remembers offsets and what it read."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._offsets: dict[str, int] = {}
        self._last: dict[tuple[str, str], bytes] = {}  # (run id, file) -> the bytes read last time
        self.bad_lines = 0  # metric lines that did not parse (skipped), for the head's log

    def ingest(self, runs: Sequence[Run]) -> list[tuple[str, str]]:
        """One pass over the folders of ``runs`` (as the caller just read them from the store). Returns ``(run id,
        outcome)`` for each run whose outcome this pass found and applied (``Store.finish``; the run may then be
        cancelled rather than interrupted, when a cancel was requested)."""
        if not runs:
            return []
        unknown = [r.id for r in runs if r.id not in self._offsets]
        if unknown:
            self._offsets.update(self.store.ingest_offsets(unknown))
        updates, outcomes = [], []
        for run in runs:
            update, done = self._read(run)
            updates.append(update)
            if done is not None:
                outcomes.append((run, done))
        stale = set(self.store.apply_updates(updates))
        for u in updates:
            if u.run_id in stale:
                del self._offsets[u.run_id]  # another head got there first: start from the stored offset
            else:
                self._offsets[u.run_id] = u.end
        settled = []
        for run, done in outcomes:
            if not done.get("requeued") and self.store.finish(run.id, _STATUS[done["status"]], done.get("reason"),
                                                              only_from=ACTIVE):
                settled.append((run.id, done["status"]))
        return settled

    def forget(self, run_id: str) -> None:
        """Drop what is remembered of a run (it ended, or was removed)."""
        self._offsets.pop(run_id, None)
        for name in (DONE, HEARTBEAT, PROGRESS):
            self._last.pop((run_id, name), None)

    # ------------------------------------------------------------------ one folder
    def _read(self, run: Run) -> tuple[FolderUpdate, dict[str, Any] | None]:
        folder = self.store.run_dir(run.id)
        # The outcome first: a worker writes it after its last metrics, so they are all there once it is seen.
        done = self._this_execution(run, self._changed(run.id, folder / DONE))
        if done is not None and (done.get("status") not in _STATUS or run.status not in ACTIVE):
            done = None
        start = self._offsets[run.id]
        update = FolderUpdate(run.id, start=start, end=start)
        try:
            with open(folder / METRICS, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
        except OSError:
            size = None
        if size is not None and size < start:  # replaced by a shorter file (a folder deleted by hand): re-read
            update.start = update.end = start = 0
            update.rewound = True
        if size is not None and size > start:
            update.rows, update.end, bad = read_metrics(folder / METRICS, start)
            self.bad_lines += bad
        progress = self._changed(run.id, folder / PROGRESS)
        if progress is not None and _after_start(progress, run):
            update.progress = {k: progress.get(k) for k in ("done", "total", "desc", "time")}
        beat = self._this_execution(run, self._changed(run.id, folder / HEARTBEAT))
        if beat is not None:
            update.heartbeat, update.host = float(beat.get("time", 0)), beat.get("host")
            if int(beat.get("resumes", 0)) > run.resumes:
                update.resumes = int(beat["resumes"])
                update.resume_reason = f"job {beat.get('job_id')} restarted in place and resumes from its checkpoint"
        if done is not None:
            resumes = int(done.get("resumes", 0)) + (1 if done.get("requeued") else 0)
            if resumes > max(run.resumes, update.resumes or 0):
                update.resumes = resumes
                if done.get("requeued"):
                    update.resume_reason = f"job {done.get('job_id')} requeued: {done.get('reason')}"
        return update, done

    def _changed(self, run_id: str, path: Path) -> dict[str, Any] | None:
        """The JSON object in ``path`` when its bytes differ from the last read, else None."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        key = (run_id, path.name)
        if self._last.get(key) == data:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return None  # a torn copy (no atomic rename on this file system): read again next pass
        self._last[key] = data
        return doc if isinstance(doc, dict) else None

    @staticmethod
    def _this_execution(run: Run, doc: dict[str, Any] | None) -> dict[str, Any] | None:
        """``doc`` if the run's current execution wrote it: its attempt, at least its resume count (a job requeued in
        place counts on before the head does), and its job (a job Slurm restarted on its own after the run was
        resubmitted is another execution)."""
        if doc is None:
            return None
        try:
            same = int(doc.get("attempt", -1)) == run.attempt and int(doc.get("resumes", -1)) >= run.resumes
        except (TypeError, ValueError):
            return None
        return doc if same and doc.get("job_id") == run.job_id else None


def _after_start(doc: dict[str, Any], run: Run) -> bool:
    try:
        return run.started is not None and float(doc.get("time", 0)) >= run.started - _CLOCK_SLACK_S
    except (TypeError, ValueError):
        return False
