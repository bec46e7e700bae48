"""The run folder contract between a worker and the head process: what a worker writes while it runs, and how the
head reads it back.

A worker (an engine slot, a foreground ``ganaug run``, or a cluster job on another node) never opens the database:
SQLite's WAL needs every process that opens it on one host, and a cluster's shared file system is not one. A
worker reads its run from ``run.json`` (written by the store at every state change) and writes only into
``<workspace>/<run-id>/``:

- ``metrics.jsonl`` — append-only, one JSON array ``[name, step, value, wall]`` per line. A batch is one append of
  whole lines (open, write, close: closing is what makes the bytes visible to other NFS clients). A writer killed
  mid-append leaves at most one partial last line; the next worker of the run cuts it off before it appends, and
  the head never reads past the last newline.
- ``progress.json`` — ``{done, total, desc, time}``, replaced atomically (rate-limited).
- ``heartbeat.json`` — ``{time, run_id, pid, host, started, attempt, resumes, job_id}`` (``started``: the worker
  process's start time, so a pid is never mistaken for a later process's), replaced atomically when the worker
  starts and every few seconds.
- ``done.json`` — the outcome, written last (after the final metrics, both fsynced): ``{status, reason, time,
  attempt, resumes, requeued, pid, host, job_id}`` with status ``succeeded`` | ``failed`` | ``interrupted``;
  ``requeued`` is true when the job was put back in the cluster's queue to resume in place.

The head (``engine.store.ingest``) reads these incrementally (a byte offset per metrics file, committed with the
rows) and keeps the store the single source of truth.
"""

from __future__ import annotations

import functools
import json
import math
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import procs
from engine.fsutil import atomic_write_json, replace_text

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
PROGRESS = "progress.json"
HEARTBEAT = "heartbeat.json"
DONE = "done.json"
OUTCOMES = ("succeeded", "failed", "interrupted")

MetricRow = tuple[str, int, float | None, float]


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing, half-copied or not an object."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class FolderWriter:
    """The worker's side: everything it reports goes through here into its run folder.

    ``identity`` (attempt, resumes, job_id ...) is stamped on the heartbeat and the outcome, so the head can tell
    this execution's files from those an earlier attempt left behind."""

    def __init__(self, run_dir: Path, identity: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.identity = {**identity, "pid": os.getpid(), "host": socket.gethostname(), "started": procs.started()}
        self.metrics_path = run_dir / METRICS

    def start(self) -> None:
        """Before the first write of this execution: drop a partial last line an earlier, killed writer left
        (the head has not read it: it stops at the last newline), then announce this execution."""
        cut_partial_line(self.metrics_path)
        self.heartbeat()

    def append_metrics(self, rows: Sequence[MetricRow], *, sync: bool = False) -> None:
        """One append of whole lines; ``sync``: also to stable storage (before a checkpoint and the outcome)."""
        if not rows:
            return
        data = "".join(_line(n, s, v, w) for n, s, v, w in rows).encode()
        with open(self.metrics_path, "ab") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())

    def progress(self, done: int, total: int, desc: str) -> None:
        replace_text(self.run_dir / PROGRESS, json.dumps({"done": done, "total": total, "desc": desc,
                                                          "time": time.time()}))

    def heartbeat(self) -> None:
        replace_text(self.run_dir / HEARTBEAT, json.dumps({**self.identity, "time": time.time()}))

    def done(self, status: str, reason: str | None, *, requeued: bool = False) -> None:
        assert status in OUTCOMES, status
        atomic_write_json(self.run_dir / DONE, {**self.identity, "status": status, "reason": reason,
                                                "requeued": requeued, "time": time.time()})


@functools.lru_cache(maxsize=4096)
def _name(name: str) -> str:
    return json.dumps(name)


def _line(name: str, step: int, value: float | None, wall: float) -> str:
    """One metrics line; ``repr`` of a finite float is its shortest exact decimal, which JSON reads back bit for bit
    (and costs half of ``json.dumps`` of the whole row: a worker writes millions of these)."""
    if value is not None and math.isfinite(value) and math.isfinite(wall):
        return f"[{_name(name)}, {int(step)}, {value!r}, {wall!r}]\n"
    return f"{json.dumps([name, int(step), value, wall])}\n"  # NaN / Infinity / null, as Python's json reads them


def cut_partial_line(path: Path) -> None:
    """Truncate ``path`` after its last newline (nothing to do when it ends with one or does not exist)."""
    try:
        fh = open(path, "r+b")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            start = max(0, pos - 65536)
            fh.seek(start)
            block = fh.read(pos - start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep != end:
            fh.truncate(keep)


def read_metrics(path: Path, offset: int) -> tuple[list[MetricRow], int, int]:
    """The complete lines of a metrics file from byte ``offset``: ``(rows, new offset, bad lines skipped)``.

    The new offset is just after the last newline read, so a line still being written is read next time. The
    common case is parsed in one ``json.loads`` of the whole chunk; a chunk with a damaged line falls back to
    line by line and skips what does not parse (counted)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return [], offset, 0
    end = chunk.rfind(b"\n") + 1
    if end == 0:
        return [], offset, 0
    body = chunk[:end]
    try:
        rows = [_row(r) for r in json.loads(b"[" + body[:-1].replace(b"\n", b",") + b"]")]
        return rows, offset + end, 0
    except (ValueError, TypeError):
        pass
    rows, bad = [], 0
    for line in body.splitlines():
        try:
            rows.append(_row(json.loads(line)))
        except (ValueError, TypeError):
            bad += 1
    return rows, offset + end, bad


def _row(item: Any) -> MetricRow:
    name, step, value, wall = item
    if not isinstance(name, str):
        raise TypeError(f"metric name {name!r}")
    return name, int(step), None if value is None else float(value), float(wall)
