"""The run store: one SQLite database in WAL mode (``<workspace>/ganaug.db``) plus one folder per run.

Why SQLite/WAL: many readers (CLI, TUI) and a few writers (engine, workers) on one machine, no server;
WAL lets readers never block the writer. Every write is a short ``BEGIN IMMEDIATE`` transaction; every
state change also rewrites the run's ``run.json`` atomically so a copied ``runs/`` folder is readable
without the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.store import ids
from engine.store.provenance import provenance
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

DB_NAME = "ganaug.db"
WORKSPACE_ENV = "GANAUG_WORKSPACE"

QUEUED, BLOCKED, RUNNING, PAUSED = "queued", "blocked", "running", "paused"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
INTERRUPTED, DEPENDENCY_FAILED = "interrupted", "dependency-failed"
STATES = (QUEUED, BLOCKED, RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED, DEPENDENCY_FAILED)
# A parent in one of these makes its waiting descendants dependency-failed.
BAD_ENDS = (FAILED, CANCELLED, DEPENDENCY_FAILED)
TERMINAL = (SUCCEEDED, *BAD_ENDS)
RETRYABLE = (FAILED, CANCELLED, INTERRUPTED, DEPENDENCY_FAILED)
ACTIVE = (RUNNING, PAUSED)

_COLUMNS = ("seq, id, kind, label, experiment, config, config_hash, seed, status, priority, slot, created, "
            "started, ended, pid, engine_pid, foreground_pid, host, heartbeat, attempt, exit_reason, progress, "
            "cancel_requested")


def resolve_workspace(workspace: Path | str | None = None) -> Path:
    """``--workspace`` > ``$GANAUG_WORKSPACE`` > ``./runs``."""
    if workspace is None or str(workspace) == "":
        workspace = os.environ.get(WORKSPACE_ENV) or "runs"
    return Path(workspace).expanduser().absolute()


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of a resolved config (canonical JSON), so identical configurations are recognisable."""
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Run:
    """One row of ``runs`` (plus its parents), as readers see it."""

    seq: int
    id: str
    kind: str
    label: str | None
    experiment: str | None
    config: dict[str, Any]
    config_hash: str
    seed: int
    status: str
    priority: int
    slot: str | None
    created: float
    started: float | None
    ended: float | None
    pid: int | None
    engine_pid: int | None
    foreground_pid: int | None
    host: str | None
    heartbeat: float | None
    attempt: int
    exit_reason: str | None
    progress: dict[str, Any] | None
    cancel_requested: bool
    parents: tuple[str, ...] = field(default=())

    @classmethod
    def from_row(cls, row: sqlite3.Row, parents: Sequence[str] = ()) -> Run:
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["progress"] = json.loads(d["progress"]) if d["progress"] else None
        d["cancel_requested"] = bool(d["cancel_requested"])
        return cls(**d, parents=tuple(parents))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (shallow: no deep copy, so 10,000 runs serialise fast)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["parents"] = list(self.parents)
        return d


@dataclass(frozen=True)
class NewRun:
    """What ``Store.create_runs`` needs for one run. A parent is a run id, or (for a DAG enqueued in one
    batch) the int index of an earlier NewRun of the same batch."""

    kind: str
    config: dict[str, Any]
    label: str | None = None
    experiment: str | None = None
    parents: Sequence[str | int] = ()
    priority: int = 0
    labels: Sequence[str] = ()  # more (experiment, label) pairs this run serves besides its first label


class Store:
    """Access to one workspace's runs, dependencies, metrics and events. One connection per instance:
    create one Store per thread/process (they are cheap)."""

    def __init__(self, workspace: Path, *, readonly: bool = False) -> None:
        self.workspace = workspace
        self.db_path = workspace / DB_NAME
        self.readonly = readonly
        self._conn = self._connect()

    # ---------------------------------------------------------------- connection and schema
    def _connect(self) -> sqlite3.Connection:
        ws = self.workspace
        if ws.exists() and not ws.is_dir():
            raise InputError(f"workspace {ws} is not a directory")
        writable = os.access(ws, os.W_OK) if ws.exists() else _creatable(ws)
        if not writable:
            if not self.readonly:
                raise InputError(f"workspace {ws} is read-only: cannot write the run store there "
                                 "(use --workspace with a writable folder)")
            if not self.db_path.is_file():
                raise InputError(f"workspace {ws} has no run store ({DB_NAME}) and is read-only")
            # Read-only media: no locking, no WAL index needed (nothing else can write there either).
            conn = sqlite3.connect(f"file:{self.db_path}?immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self._check_version(conn)
            return conn
        try:
            ws.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            self._check_version(conn)
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, no fsync per commit
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"run store {self.db_path}: {exc}") from None
        except OSError as exc:  # not writable, or a file where a folder of the path should be
            raise InputError(f"workspace {ws}: {exc.strerror}") from None
        return conn

    def _check_version(self, conn: sqlite3.Connection) -> None:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise InputError(f"run store {self.db_path}: {exc}") from None
        if version > SCHEMA_VERSION:
            raise InputError(f"run store {self.db_path} has schema version {version}, newer than this ganaug "
                             f"understands ({SCHEMA_VERSION}); upgrade ganaug")

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the write lock
            for n in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[n]:
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (taken up front, so two writers never deadlock on upgrade)."""
        if self.readonly and not os.access(self.workspace, os.W_OK):
            raise InputError(f"workspace {self.workspace} is read-only")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot (one short transaction; never blocks writers under WAL)."""
        self._conn.execute("BEGIN")
        try:
            yield self._conn
        finally:
            self._conn.execute("COMMIT")

    # ---------------------------------------------------------------- paths
    def run_dir(self, run_id: str) -> Path:
        return self.workspace / run_id

    # ---------------------------------------------------------------- creating runs
    def create_run(self, kind: str, config: dict[str, Any], *, label: str | None = None,
                   experiment: str | None = None, parents: Sequence[str] = (), priority: int = 0,
                   foreground_pid: int | None = None) -> str:
        """Enqueue one run; returns its id. ``foreground_pid`` reserves it for that process (the engine
        leaves it alone while that process lives)."""
        spec = NewRun(kind, config, label, experiment, tuple(parents), priority)
        return self.create_runs([spec], foreground_pid=foreground_pid)[0]

    def create_runs(self, specs: Iterable[NewRun], *, foreground_pid: int | None = None) -> list[str]:
        """Enqueue many runs in one transaction (a grid of thousands stays fast); returns their ids."""
        specs = list(specs)
        now = time.time()
        prov = provenance()
        created: list[tuple[str, NewRun, str]] = []
        with self._tx() as conn:
            next_suffix: dict[str, int] = {}
            taken_cache: dict[str, set[str]] = {}
            for index, spec in enumerate(specs):
                if not isinstance(spec.config, dict):
                    raise InputError(f"config of a {spec.kind!r} run must be a JSON object")
                seed = _seed(spec)
                parents = list(dict.fromkeys(self._batch_parent(conn, p, index, created) for p in spec.parents))
                base = ids.base_id(spec.kind, spec.label, now)
                if base not in taken_cache:
                    hi = base + "\uffff"
                    taken_cache[base] = {r[0] for r in conn.execute(
                        "SELECT id FROM runs WHERE id >= ? AND id < ?", (base, hi))}
                taken = taken_cache[base]
                run_id, next_suffix[base] = ids.unique_id(base, _TakenOrOnDisk(taken, self.workspace),
                                                          next_suffix.get(base, 2))
                taken.add(run_id)
                if spec.experiment is not None:
                    conn.execute("INSERT OR IGNORE INTO experiments(name, created) VALUES (?, ?)",
                                 (spec.experiment, now))
                status = self._status_from_parents(conn, parents)
                cfg = json.dumps(spec.config, sort_keys=True, default=str)
                conn.execute(
                    "INSERT INTO runs(id, kind, label, experiment, config, config_hash, seed, status, priority,"
                    " created, foreground_pid) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, spec.kind, spec.label, spec.experiment, cfg, config_hash(spec.config),
                     seed, status, int(spec.priority), now, foreground_pid))
                conn.executemany("INSERT INTO deps(child, parent) VALUES (?, ?)", [(run_id, p) for p in parents])
                if spec.experiment is not None:
                    conn.executemany("INSERT OR IGNORE INTO run_labels(experiment, label, run_id) VALUES (?,?,?)",
                                     [(spec.experiment, lab, run_id)
                                      for lab in dict.fromkeys((spec.label, *spec.labels)) if lab])
                conn.execute("INSERT INTO events(run_id, time, kind, message) VALUES (?,?,?,?)",
                             (run_id, now, "created", status))
                created.append((run_id, spec, status))
        for run_id, _spec, _status in created:
            (self.workspace / run_id).mkdir(exist_ok=True)  # the engine may have made it: rows commit first
        self._write_run_json([c[0] for c in created], prov)
        return [c[0] for c in created]

    def _batch_parent(self, conn: sqlite3.Connection, parent: str | int, index: int,
                      created: Sequence[tuple[str, NewRun, str]]) -> str:
        if isinstance(parent, int):
            if not 0 <= parent < index:
                raise InputError(f"run #{index} of the batch: parent index {parent} is not an earlier run")
            return created[parent][0]
        return self._resolve(conn, parent)

    @staticmethod
    def _status_from_parents(conn: sqlite3.Connection, parents: Sequence[str]) -> str:
        """queued when every parent succeeded, dependency-failed when one ended badly, else blocked."""
        if not parents:
            return QUEUED
        marks = ",".join("?" * len(parents))
        statuses = {r[0] for r in conn.execute(f"SELECT status FROM runs WHERE id IN ({marks})", parents)}
        if statuses & set(BAD_ENDS):
            return DEPENDENCY_FAILED
        return QUEUED if statuses == {SUCCEEDED} else BLOCKED

    # ---------------------------------------------------------------- reading
    def _resolve(self, conn: sqlite3.Connection, run_id: str) -> str:
        """An exact id, or an unambiguous part of one (ids start with a timestamp, so any part helps)."""
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return run_id
        hits = [r[0] for r in conn.execute("SELECT id FROM runs WHERE instr(id, ?) > 0 LIMIT 3",
                                           (run_id,))] if run_id else []
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise InputError(f"run id {run_id!r} is ambiguous in {self.workspace}: {', '.join(hits[:2])}, ...")
        raise InputError(f"unknown run id {run_id!r} in workspace {self.workspace}")

    def resolve(self, run_id: str) -> str:
        with self._read() as conn:
            return self._resolve(conn, run_id)

    def get_run(self, run_id: str) -> Run:
        """The run with this id (or unique id prefix); InputError if there is none."""
        with self._read() as conn:
            rid = self._resolve(conn, run_id)
            row = conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (rid,)).fetchone()
            parents = [r[0] for r in conn.execute("SELECT parent FROM deps WHERE child = ?", (rid,))]
        return Run.from_row(row, parents)

    def list_runs(self, status: str | Sequence[str] | None = None, kind: str | Sequence[str] | None = None,
                  experiment: str | None = None) -> list[Run]:
        """Runs in creation order, filtered; two queries whatever the number of runs."""
        where, args = [], []
        for col, val in (("status", status), ("kind", kind)):
            if val:
                vals = [val] if isinstance(val, str) else list(val)
                where.append(f"{col} IN ({','.join('?' * len(vals))})")
                args += vals
        if experiment is not None:
            where.append("experiment = ?")
            args.append(experiment)
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        dep_sql = "SELECT child, parent FROM deps" + (f" WHERE child IN (SELECT id FROM runs{cond})" if cond else "")
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM runs{cond} ORDER BY seq", args).fetchall()
            parents: dict[str, list[str]] = {}
            for child, parent in conn.execute(dep_sql, args):
                parents.setdefault(child, []).append(parent)
        return [Run.from_row(r, parents.get(r["id"], ())) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of runs per status."""
        with self._read() as conn:
            return {s: n for s, n in conn.execute("SELECT status, count(*) FROM runs GROUP BY status")}

    def children(self, run_id: str) -> list[str]:
        with self._read() as conn:
            return [r[0] for r in conn.execute("SELECT child FROM deps WHERE parent = ?", (run_id,))]

    def metrics(self, run_id: str, name: str | None = None) -> pd.DataFrame:
        """A run's metric series as a DataFrame with columns ``name, step, value, wall`` sorted by name, step."""
        import pandas as pd

        rid = self.resolve(run_id)
        sql = "SELECT name, step, value, wall FROM metrics WHERE run_id = ?"
        args: list[Any] = [rid]
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY name, step", args).fetchall()
        return pd.DataFrame([tuple(r) for r in rows], columns=["name", "step", "value", "wall"])

    def events(self, run_id: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        sql = "SELECT id, run_id, time, kind, message FROM events WHERE id > ?"
        args: list[Any] = [after]
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]

    # ---------------------------------------------------------------- experiments
    def set_experiment(self, name: str, spec: dict[str, Any]) -> None:
        """Create or update an experiment (a named grid) and the spec it was expanded from."""
        with self._tx() as conn:
            conn.execute("INSERT INTO experiments(name, created, spec) VALUES (?, ?, ?) ON CONFLICT(name)"
                         " DO UPDATE SET spec = excluded.spec", (name, time.time(), json.dumps(spec, default=str)))

    def experiment_spec(self, name: str) -> dict[str, Any] | None:
        """The stored spec of an experiment (``{}`` if it has none yet), or None when there is no such experiment."""
        with self._read() as conn:
            row = conn.execute("SELECT spec FROM experiments WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def link_runs(self, experiment: str, links: Iterable[tuple[str, str]]) -> None:
        """Record that runs serve ``(run_id, label)`` pairs of ``experiment`` (idempotent, one transaction).

        A run row keeps its first label and experiment; one that had none takes these."""
        links = list(links)
        for run_id, label in links:
            if not experiment or not label:
                raise InputError(f"run {run_id}: experiment and label must be non-empty to link a run")
        touched: list[str] = []
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO experiments(name, created) VALUES (?, ?)", (experiment, time.time()))
            for run_id, label in links:
                rid = self._resolve(conn, run_id)
                conn.execute("INSERT OR IGNORE INTO run_labels(experiment, label, run_id) VALUES (?,?,?)",
                             (experiment, label, rid))
                cur = conn.execute("UPDATE runs SET label = coalesce(label, ?), experiment = coalesce(experiment, ?)"
                                   " WHERE id = ? AND (label IS NULL OR experiment IS NULL)", (label, experiment, rid))
                if cur.rowcount:
                    touched.append(rid)
        self._write_run_json(touched)

    def run_labels(self, experiment: str | None = None, run_id: str | None = None) -> list[tuple[str, str, str]]:
        """``(experiment, label, run_id)`` links, filtered, in run creation order."""
        where, args = [], []
        if experiment is not None:
            where.append("l.experiment = ?")
            args.append(experiment)
        with self._read() as conn:
            if run_id is not None:
                where.append("l.run_id = ?")
                args.append(self._resolve(conn, run_id))
            if not self._has_links(conn):
                return []
            cond = f" WHERE {' AND '.join(where)}" if where else ""
            return [tuple(r) for r in conn.execute(  # type: ignore[misc]
                "SELECT l.experiment, l.label, l.run_id FROM run_labels l JOIN runs r ON r.id = l.run_id"
                f"{cond} ORDER BY l.experiment, r.seq, l.label", args)]

    def labelled_runs(self, experiment: str, kind: str = "classify") -> pd.DataFrame:
        """Every run of ``kind`` linked to ``experiment``, once per label it serves, in creation order.

        Columns ``label, run_id, seq, status, exit_reason, replicate`` (the run config's ``replicate``, 0 when
        absent)."""
        import pandas as pd

        columns = ["label", "run_id", "seq", "status", "exit_reason", "replicate"]
        with self._read() as conn:
            rows = conn.execute(
                "SELECT l.label, r.id, r.seq, r.status, r.exit_reason,"
                " coalesce(json_extract(r.config, '$.replicate'), 0)"
                " FROM run_labels l JOIN runs r ON r.id = l.run_id WHERE l.experiment = ? AND r.kind = ?"
                " ORDER BY r.seq", (experiment, kind)).fetchall() if self._has_links(conn) else []
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)

    def labelled_metrics(self, experiment: str, *, prefix: str = "auc/", step: int = 0) -> pd.DataFrame:
        """The metrics named ``prefix*`` at ``step`` of every run linked to ``experiment`` (each run once).

        Columns ``run_id, name, value``. With :meth:`labelled_runs`, two queries read a 10,000-run experiment's
        results in a fraction of a second, without opening a single ``result.json``."""
        import pandas as pd

        with self._read() as conn:
            rows = conn.execute(
                "SELECT run_id, name, value FROM metrics WHERE step = ? AND name >= ? AND name < ?"
                " AND run_id IN (SELECT run_id FROM run_labels WHERE experiment = ?)",
                (step, prefix, prefix + "\U0010ffff", experiment)).fetchall() if self._has_links(conn) else []
        return pd.DataFrame([tuple(r) for r in rows], columns=["run_id", "name", "value"])

    @staticmethod
    def _has_links(conn: sqlite3.Connection) -> bool:
        """False only for an older store opened immutable (read-only media): it cannot be migrated, has no links."""
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_labels'").fetchone() \
            is not None

    def experiments(self) -> list[dict[str, Any]]:
        """Experiments with their spec and run counts per status."""
        with self._read() as conn:
            exps = {r["name"]: {"name": r["name"], "created": r["created"], "spec": json.loads(r["spec"]),
                                "counts": {}} for r in conn.execute("SELECT * FROM experiments ORDER BY created")}
            for name, status, n in conn.execute(
                    "SELECT experiment, status, count(*) FROM runs WHERE experiment IS NOT NULL"
                    " GROUP BY experiment, status"):
                exps[name]["counts"][status] = n
        return list(exps.values())

    # ---------------------------------------------------------------- queue settings
    def setting(self, key: str, default: str | None = None) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))

    def queue_paused(self) -> bool:
        return self.setting("queue_paused", "0") == "1"

    def set_queue_paused(self, paused: bool) -> None:
        self.set_setting("queue_paused", "1" if paused else "0")

    # ---------------------------------------------------------------- scheduling (engine side)
    def runnable(self, limit: int) -> list[str]:
        """Queued runs the engine may start, highest priority first, then first come first served."""
        with self._read() as conn:
            return [r[0] for r in conn.execute(
                "SELECT id FROM runs WHERE status = ? AND foreground_pid IS NULL ORDER BY priority DESC, seq"
                " LIMIT ?", (QUEUED, limit))]

    def foreground_waiting(self) -> list[Run]:
        """Queued/blocked runs reserved by a foreground ``ganaug run`` that has not started them yet."""
        with self._read() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE status IN (?, ?) AND foreground_pid IS NOT"
                                              " NULL", (QUEUED, BLOCKED))]
        return [self.get_run(i) for i in ids]

    def claim(self, run_id: str, *, slot: str, engine_pid: int | None, pid: int | None = None,
              foreground_pid: int | None = None) -> bool:
        """queued -> running for this slot; False if someone else changed it first."""
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, slot = ?, engine_pid = ?, pid = ?, foreground_pid = ?, host = ?,"
                " started = ?, ended = NULL, heartbeat = ?, exit_reason = NULL, progress = NULL"
                " WHERE id = ? AND status = ?",
                (RUNNING, slot, engine_pid, pid, foreground_pid, provenance()["host"], now, now, run_id, QUEUED))
            if cur.rowcount != 1:
                return False
            self._event(conn, run_id, "started", f"slot {slot}")
        self._write_run_json([run_id])
        return True

    def set_pid(self, run_id: str, pid: int) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))

    def heartbeat(self, run_id: str) -> bool:
        """Record that the worker is alive; returns whether a cancel was requested."""
        with self._tx() as conn:
            conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time(), run_id))
            row = conn.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def set_progress(self, run_id: str, done: int, total: int, desc: str) -> None:
        prog = json.dumps({"done": done, "total": total, "desc": desc, "time": time.time()})
        with self._tx() as conn:
            conn.execute("UPDATE runs SET progress = ?, heartbeat = ? WHERE id = ?", (prog, time.time(), run_id))

    def write_metrics(self, run_id: str, rows: Sequence[tuple[str, int, float, float]]) -> None:
        """Insert ``(name, step, value, wall)`` rows in one transaction; an existing (name, step) is replaced
        (a resumed run rewrites the steps after its checkpoint: no gap, no duplicate)."""
        if not rows:
            return
        with self._tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO metrics(run_id, name, step, value, wall) VALUES (?,?,?,?,?)",
                             [(run_id, n, s, v, w) for n, s, v, w in rows])

    def finish(self, run_id: str, status: str, reason: str | None = None, *, only_from: Sequence[str] = ()) -> bool:
        """End a run in ``status`` and settle its descendants (unblock, or dependency-failed).

        With ``only_from`` nothing happens unless the run is still in one of those states (the engine passes
        ``ACTIVE`` after a worker exits, so an outcome the worker recorded itself wins)."""
        assert status in (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED, DEPENDENCY_FAILED), status
        touched: list[str] = []
        with self._tx() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or (only_from and row[0] not in only_from):
                return False
            conn.execute("UPDATE runs SET status = ?, ended = ?, exit_reason = ?, foreground_pid = NULL,"
                         " cancel_requested = 0 WHERE id = ?", (status, time.time(), reason, run_id))
            self._event(conn, run_id, status, reason or "")
            touched = [run_id, *self._settle_children(conn, run_id, status)]
        self._write_run_json(touched)
        return True

    def _settle_children(self, conn: sqlite3.Connection, run_id: str, status: str) -> list[str]:
        """Propagate a parent's end to its waiting descendants; returns the runs changed."""
        changed: list[str] = []
        frontier = [run_id]
        while frontier:
            parent = frontier.pop()
            for (child,) in conn.execute("SELECT child FROM deps WHERE parent = ?", (parent,)).fetchall():
                row = conn.execute("SELECT status FROM runs WHERE id = ?", (child,)).fetchone()
                if row is None or row[0] not in (BLOCKED, QUEUED):
                    continue
                parents = [r[0] for r in conn.execute("SELECT parent FROM deps WHERE child = ?", (child,))]
                new = self._status_from_parents(conn, parents)
                if new != row[0]:
                    reason = f"parent {parent} {status}" if new == DEPENDENCY_FAILED else None
                    conn.execute("UPDATE runs SET status = ?, exit_reason = ?, ended = ? WHERE id = ?",
                                 (new, reason, time.time() if new == DEPENDENCY_FAILED else None, child))
                    self._event(conn, child, new, reason or "")
                    changed.append(child)
                    if new == DEPENDENCY_FAILED:
                        frontier.append(child)
        return changed

    # ---------------------------------------------------------------- user commands
    def request_cancel(self, run_id: str) -> str:
        """Cancel: a waiting run ends now; a running one is flagged (its worker stops gracefully).
        Returns the run's status afterwards."""
        run = self.get_run(run_id)
        if run.status in (QUEUED, BLOCKED, INTERRUPTED) or (run.status == PAUSED and run.pid is None):
            self.finish(run.id, CANCELLED, "cancelled by user")
            return CANCELLED
        if run.status in ACTIVE:
            with self._tx() as conn:
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run.id,))
                self._event(conn, run.id, "cancel-requested", "")
            return run.status
        raise InputError(f"run {run.id} is {run.status}: nothing to cancel")

    def retry(self, run_id: str, *, restart: bool = False) -> str:
        """failed/cancelled/interrupted/dependency-failed -> queued (or blocked), attempt + 1; its
        dependency-failed descendants wait again. ``restart`` drops the checkpoints first."""
        run = self.get_run(run_id)
        if run.status not in RETRYABLE:
            raise InputError(f"run {run.id} is {run.status}; only {', '.join(RETRYABLE)} runs can be retried")
        if restart:
            shutil.rmtree(self.run_dir(run.id) / "checkpoints", ignore_errors=True)
            (self.run_dir(run.id) / "checkpoints").mkdir(parents=True, exist_ok=True)
        with self._tx() as conn:
            status = self._status_from_parents(conn, run.parents)
            if status == DEPENDENCY_FAILED:
                bad = [p for p in run.parents if conn.execute(
                    "SELECT status FROM runs WHERE id = ?", (p,)).fetchone()[0] in BAD_ENDS]
                raise InputError(f"run {run.id} depends on {', '.join(bad)} which ended badly; retry that first")
            self._requeue(conn, run.id, status)
            touched = [run.id, *self._reblock_descendants(conn, run.id)]
        self._write_run_json(touched)
        return status

    def _requeue(self, conn: sqlite3.Connection, run_id: str, status: str) -> None:
        conn.execute("UPDATE runs SET status = ?, attempt = attempt + 1, started = NULL, ended = NULL,"
                     " pid = NULL, engine_pid = NULL, foreground_pid = NULL, slot = NULL, exit_reason = NULL,"
                     " progress = NULL, cancel_requested = 0 WHERE id = ?", (status, run_id))
        self._event(conn, run_id, status, "retry")

    def _reblock_descendants(self, conn: sqlite3.Connection, run_id: str) -> list[str]:
        changed, frontier = [], [run_id]
        while frontier:
            parent = frontier.pop()
            for (child,) in conn.execute("SELECT child FROM deps WHERE parent = ?", (parent,)).fetchall():
                if conn.execute("SELECT status FROM runs WHERE id = ?", (child,)).fetchone()[0] == DEPENDENCY_FAILED:
                    conn.execute("UPDATE runs SET status = ?, ended = NULL, exit_reason = NULL WHERE id = ?",
                                 (BLOCKED, child))
                    self._event(conn, child, BLOCKED, f"parent {run_id} retried")
                    changed.append(child)
                    frontier.append(child)
        return changed

    def set_priority(self, run_id: str, priority: int) -> None:
        rid = self.resolve(run_id)
        with self._tx() as conn:
            conn.execute("UPDATE runs SET priority = ? WHERE id = ?", (int(priority), rid))
            self._event(conn, rid, "priority", str(priority))
        self._write_run_json([rid])

    def set_paused(self, run_id: str, paused: bool) -> str:
        """Hold a waiting run (paused) or let it go again; for running runs the caller stops the process."""
        run = self.get_run(run_id)
        with self._tx() as conn:
            if paused:
                if run.status not in (QUEUED, BLOCKED, RUNNING):
                    raise InputError(f"run {run.id} is {run.status}: cannot pause it")
                new = PAUSED
            else:
                if run.status != PAUSED:
                    raise InputError(f"run {run.id} is {run.status}, not paused")
                new = RUNNING if run.pid is not None and run.started is not None and run.ended is None else \
                    self._status_from_parents(conn, run.parents)
            conn.execute("UPDATE runs SET status = ? WHERE id = ?", (new, run.id))
            self._event(conn, run.id, new, "")
            touched = [run.id]
            if new == DEPENDENCY_FAILED:  # a parent ended badly while it was held: it ends, and so do its waiters
                conn.execute("UPDATE runs SET ended = ?, exit_reason = ? WHERE id = ?",
                             (time.time(), "a parent ended badly while it was paused", run.id))
                touched += self._settle_children(conn, run.id, new)
        self._write_run_json(touched)
        return new

    def remove(self, run_ids: Sequence[str]) -> list[str]:
        """Delete runs (rows, metrics, events, folder). Refuses active runs and runs whose dependents stay."""
        runs = [self.get_run(r) for r in run_ids]
        doomed = {r.id for r in runs}
        with self._tx() as conn:
            for run in runs:
                if run.status in ACTIVE:
                    raise InputError(f"run {run.id} is {run.status}; cancel it before removing it")
                kept = [c for (c,) in conn.execute("SELECT child FROM deps WHERE parent = ?", (run.id,))
                        if c not in doomed]
                if kept:
                    raise InputError(f"run {run.id} has dependent runs ({', '.join(kept[:3])}); remove them too")
            for rid in doomed:
                for sql in ("DELETE FROM metrics WHERE run_id = ?", "DELETE FROM events WHERE run_id = ?",
                            "DELETE FROM deps WHERE child = ?", "DELETE FROM run_labels WHERE run_id = ?",
                            "DELETE FROM runs WHERE id = ?"):
                    conn.execute(sql, (rid,))
        for rid in doomed:
            shutil.rmtree(self.run_dir(rid), ignore_errors=True)
        return [r.id for r in runs]

    @staticmethod
    def _event(conn: sqlite3.Connection, run_id: str | None, kind: str, message: str) -> None:
        conn.execute("INSERT INTO events(run_id, time, kind, message) VALUES (?,?,?,?)",
                     (run_id, time.time(), kind, message))

    # ---------------------------------------------------------------- run.json
    def _write_run_json(self, run_ids: Sequence[str], prov: dict[str, Any] | None = None) -> None:
        """Rewrite each run's ``run.json`` from its row (atomic rename; no fsync: the database is the truth)."""
        if not run_ids:
            return
        prov = prov or provenance()
        runs = {r.id: r for r in (self.list_runs() if len(run_ids) > 50 else [self.get_run(i) for i in run_ids])}
        for rid in run_ids:
            run = runs.get(rid)
            if run is None or not self.run_dir(rid).is_dir():
                continue
            doc = {
                "id": run.id, "kind": run.kind, "label": run.label, "experiment": run.experiment,
                "config": run.config, "config_hash": run.config_hash, "seed": run.seed, "status": run.status,
                "priority": run.priority, "attempt": run.attempt, "parents": list(run.parents),
                "slot": run.slot, "exit_reason": run.exit_reason,
                "created": _iso(run.created), "started": _iso(run.started), "ended": _iso(run.ended),
                "host": run.host or prov["host"], "git_commit": prov["git_commit"], "packages": prov["packages"],
                "schema_version": SCHEMA_VERSION,
            }
            _replace_text(self.run_dir(rid) / "run.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _seed(spec: NewRun) -> int:
    """The run's seed (config key ``seed``, default 0): an integer, else one InputError line."""
    try:
        return int(spec.config.get("seed", 0))
    except (TypeError, ValueError):
        raise InputError(f"config of a {spec.kind!r} run: key 'seed': expected an integer, "
                         f"got {spec.config['seed']!r}") from None


def _replace_text(path: Path, text: str) -> None:
    """Write-then-rename without fsync or a random temp name: run.json is rewritten at every state change
    of thousands of runs and the database stays the source of truth, so only atomicity matters here."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _TakenOrOnDisk:
    """Ids already used in the database or as a folder in the workspace (a leftover folder is never reused)."""

    def __init__(self, taken: set[str], workspace: Path) -> None:
        self.taken, self.workspace = taken, workspace

    def __contains__(self, run_id: object) -> bool:
        return run_id in self.taken or (self.workspace / str(run_id)).exists()


def _creatable(path: Path) -> bool:
    parent = path
    while not parent.exists():
        parent = parent.parent
    return os.access(parent, os.W_OK)


def open_store(workspace: Path | str | None = None, *, readonly: bool = False) -> Store:
    """Open (creating and migrating if needed) the store of ``workspace`` (see ``resolve_workspace``).

    ``readonly`` is for pure readers: on a read-only medium the store is then opened immutable."""
    return Store(resolve_workspace(workspace), readonly=readonly)
