"""The run store: one SQLite database in WAL mode (``<workspace>/ganaug.db``, or where ``workspace.toml`` puts it:
``engine.store.location``) plus one folder per run.

Why SQLite/WAL: many readers (CLI, TUI) and a few writers (the engine, a foreground ``ganaug run``) on one machine,
no server; WAL lets readers never block the writer. Workers never open it: they write their run folder
(``engine.store.runfolder``) and the head process ingests it (``engine.store.ingest``). Every write is a short
``BEGIN IMMEDIATE`` transaction; every state change also rewrites the run's ``run.json`` atomically so a copied
``runs/`` folder is readable without the database, and so a worker on any machine learns its run from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import procs
from engine.errors import DamagedStore, InputError
from engine.fsutil import replace_text
from engine.store import ids, owners
from engine.store.location import db_path
from engine.store.provenance import git_commit, provenance
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

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
            "cancel_requested, resumes, foreground_started, git_commit, executor, executor_opts, job_id")
# Small tables checked before a process first writes (``PRAGMA quick_check(table)``): a damaged store is refused
# before anything is written to it. ``metrics`` can hold millions of rows, so damage there shows when it is read.
_CHECKED_TABLES = ("runs", "deps", "events", "experiments", "settings")
# SQLite result codes (low byte of ``sqlite_errorcode``) that mean the file itself is damaged or no database.
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
# ... and those that mean the store cannot be used right now (busy, full disk, I/O, permissions): one line too.
_SQLITE_UNAVAILABLE = {3, 5, 6, 8, 10, 13, 14, 22}


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
    resumes: int = 0  # re-queued after its process died or was stopped without the user asking (not attempts)
    foreground_started: float | None = None  # start time of foreground_pid's process (pid reuse guard)
    git_commit: str | None = None  # the checkout that created / last started the run
    executor: str = "local"  # "local" (engine slots, foreground) or "slurm" (a cluster job: engine.executors)
    executor_opts: dict[str, Any] | None = None  # the executor's resolved options for this run (partition, time ...)
    job_id: str | None = None  # the cluster job running it now (its owner: judged by the job's state, not a pid)
    parents: tuple[str, ...] = field(default=())

    @classmethod
    def from_row(cls, row: sqlite3.Row, parents: Sequence[str] = ()) -> Run:
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["progress"] = json.loads(d["progress"]) if d["progress"] else None
        d["executor_opts"] = json.loads(d["executor_opts"]) if d["executor_opts"] else None
        d["cancel_requested"] = bool(d["cancel_requested"])
        return cls(**d, parents=tuple(parents))

    @property
    def launched(self) -> bool:
        """Whether a process or a cluster job was started for its current execution."""
        return self.pid is not None or self.job_id is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (shallow: no deep copy, so 10,000 runs serialise fast)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["parents"] = list(self.parents)
        return d


@dataclass
class FolderUpdate:
    """What the head read from one run folder since it last looked (``engine.store.ingest``)."""

    run_id: str
    start: int = 0  # the byte range of the run's metrics file the rows came from
    end: int = 0
    rows: Sequence[tuple[str, int, Any, float]] = ()
    progress: dict[str, Any] | None = None
    heartbeat: float | None = None
    host: str | None = None
    resumes: int | None = None  # the worker's count after a resume in place (a cluster job requeued)
    resume_reason: str | None = None
    rewound: bool = False  # the metrics file is shorter than the stored offset (replaced): read again from 0


def batch_ref(index: int) -> str:
    """A placeholder for the id of the ``index``-th NewRun of a ``create_runs`` batch, usable anywhere in a later
    run's config (a GAN's feature classifier, a pool's GAN run): ``create_runs`` puts the real id in its place
    before the config is hashed and stored, so a DAG whose configs name each other is created in one transaction."""
    return f"{_BATCH_REF}{index}"


_BATCH_REF = "@batch:"


def _substitute_refs(node: Any, ids: Sequence[str], index: int) -> Any:
    """``node`` with every batch reference replaced by the id of that earlier run of the batch."""
    if isinstance(node, dict):
        return {k: _substitute_refs(v, ids, index) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_refs(v, ids, index) for v in node]
    if isinstance(node, str) and node.startswith(_BATCH_REF):
        ref = node[len(_BATCH_REF):]
        if not ref.isdigit() or int(ref) >= index:
            raise InputError(f"run #{index} of the batch: {node!r} names no earlier run of the batch")
        return ids[int(ref)]
    return node


@dataclass(frozen=True)
class NewRun:
    """What ``Store.create_runs`` needs for one run. A parent is a run id, or (for a DAG enqueued in one
    batch) the int index of an earlier NewRun of the same batch; the config may name earlier runs of the batch
    with ``batch_ref(index)``."""

    kind: str
    config: dict[str, Any]
    label: str | None = None
    experiment: str | None = None
    parents: Sequence[str | int] = ()
    priority: int = 0
    labels: Sequence[str] = ()  # more (experiment, label) pairs this run serves besides its first label
    executor: str = "local"  # engine.executors: ExecutorSpec.fields(kind) gives these two
    executor_opts: dict[str, Any] | None = None


class Store:
    """Access to one workspace's runs, dependencies, metrics and events. One connection per instance:
    create one Store per thread/process (they are cheap).

    ``create=False`` opens only an existing store (read commands never create a workspace); ``readonly`` is for
    pure readers (on read-only media the store is read from an immutable view or a private copy).
    A damaged database raises ``DamagedStore`` (one line saying how to recover it) and is never written to."""

    def __init__(self, workspace: Path, *, readonly: bool = False, create: bool = True) -> None:
        self.workspace = workspace
        self.db_path = db_path(workspace)
        self.readonly = readonly
        self._private: Path | None = None  # a private copy of a read-only store with an unmerged WAL
        self._checked = False  # integrity of the small tables verified before this connection's first write
        self._damage: DamagedStore | None = None  # once seen, every later write is refused with it
        self._conn = self._connect(create)

    # ---------------------------------------------------------------- connection and schema
    def _connect(self, create: bool) -> sqlite3.Connection:
        ws = self.workspace
        if ws.exists() and not ws.is_dir():
            raise InputError(f"workspace {ws} is not a directory")
        if not create and not self.db_path.is_file():
            raise InputError(f"no workspace at {ws}: {self.db_path.name} does not exist "
                             f"{'there' if self.db_path.parent == ws else f'at {self.db_path}'} (check --workspace "
                             f"or ${WORKSPACE_ENV}; running something creates it)")
        writable = os.access(ws, os.W_OK) if ws.exists() else _creatable(ws)
        if not writable:
            if not self.readonly:
                raise InputError(f"workspace {ws} is read-only: cannot write the run store there "
                                 "(use --workspace with a writable folder)")
            if not self.db_path.is_file():
                raise InputError(f"workspace {ws} has no run store ({self.db_path}) and is read-only")
            return self._connect_read_only()
        try:
            ws.mkdir(parents=True, exist_ok=True)
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            # mode=rw never creates the file: a reader's race with a deleted store stays an error, not a new store
            uri = f"file:{self.db_path}" + ("" if create else "?mode=rw")
            conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            self._check_version(conn)
            if not self.readonly:
                self._check_integrity(conn)
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, no fsync per commit
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from None
        except OSError as exc:  # not writable, or a file where a folder of the path should be
            raise InputError(f"workspace {ws}: {exc.strerror}") from None
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """Read-only media: nothing else can write there, so no locks are needed. ``immutable=1`` would ignore
        an unmerged ``-wal`` (a store copied off a workstation mid-run) and miss its last writes: then the
        database and its WAL are copied to a private temporary folder and opened there, where SQLite replays it."""
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        try:
            if wal.is_file() and wal.stat().st_size > 0:
                self._private = Path(tempfile.mkdtemp(prefix="ganaug-ro-"))
                shutil.copyfile(self.db_path, self._private / self.db_path.name)
                shutil.copyfile(wal, self._private / wal.name)
                conn = sqlite3.connect(self._private / self.db_path.name, isolation_level=None,
                                       check_same_thread=False)
            else:
                conn = sqlite3.connect(f"file:{self.db_path}?immutable=1", uri=True, isolation_level=None,
                                       check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self._check_version(conn)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # replays the WAL copy now
        except sqlite3.DatabaseError as exc:
            self._drop_private()
            raise self._db_error(exc) from None
        except OSError as exc:
            self._drop_private()
            raise InputError(f"run store {self.db_path}: cannot read it ({exc.strerror})") from None
        return conn

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise InputError(f"run store {self.db_path} has schema version {version}, newer than this ganaug "
                             f"understands ({SCHEMA_VERSION}); upgrade ganaug")

    def _check_integrity(self, conn: sqlite3.Connection) -> None:
        """Refuse to write to a damaged store: ``quick_check`` of the small tables (milliseconds), once."""
        if self._checked:
            return
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in _CHECKED_TABLES:
            if table in present:
                problems = [r[0] for r in conn.execute(f"PRAGMA quick_check({table})").fetchall()]
                if problems != ["ok"]:
                    raise self._damaged(f"table {table}: {problems[0]}")
        self._checked = True

    def check_integrity(self) -> None:
        """DamagedStore now if the store's small tables are damaged: for readers that must fail before they
        show anything (the TUI before its first paint) rather than at the first damaged page they meet."""
        with self._read() as conn:
            self._check_integrity(conn)

    def _damaged(self, what: str) -> DamagedStore:
        db = self.db_path
        self._damage = DamagedStore(
            f"run store {db} is damaged ({what}); ganaug will not write to it. Stop the engine, then recover it: "
            f"sqlite3 {db} .recover | sqlite3 {db.with_name('recovered.db')} and put recovered.db in its place "
            f"(moving {db.name}, {db.name}-wal and {db.name}-shm aside)")
        return self._damage

    def _db_error(self, exc: sqlite3.DatabaseError) -> Exception:
        """A damaged file or an unusable store as one InputError line; anything else (a bug) as it is."""
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in str(exc):
            return self._damaged(str(exc))
        if code in _SQLITE_UNAVAILABLE:
            return InputError(f"run store {self.db_path}: {exc}")
        return exc

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
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _drop_private(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    def close(self) -> None:
        self._conn.close()
        self._drop_private()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writable(self) -> bool:
        """Whether this store can be written (false on read-only media and for a private read-only copy)."""
        return self._private is None and os.access(self.workspace, os.W_OK)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (taken up front, so two writers never deadlock on upgrade)."""
        if not self.writable:
            raise InputError(f"workspace {self.workspace} is read-only")
        if self._damage is not None:
            raise self._damage
        try:
            self._check_integrity(self._conn)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already (e.g. on a damaged page)
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot (one short transaction; never blocks writers under WAL)."""
        try:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from None

    # ---------------------------------------------------------------- paths
    def run_dir(self, run_id: str) -> Path:
        return self.workspace / run_id

    # ---------------------------------------------------------------- creating runs
    def create_run(self, kind: str, config: dict[str, Any], *, label: str | None = None,
                   experiment: str | None = None, parents: Sequence[str] = (), priority: int = 0,
                   foreground_pid: int | None = None, executor: str = "local",
                   executor_opts: dict[str, Any] | None = None) -> str:
        """Enqueue one run; returns its id. ``foreground_pid`` reserves it for that process (the engine
        leaves it alone while that process lives)."""
        spec = NewRun(kind, config, label, experiment, tuple(parents), priority, executor=executor,
                      executor_opts=executor_opts)
        return self.create_runs([spec], foreground_pid=foreground_pid)[0]

    def create_runs(self, specs: Iterable[NewRun], *, foreground_pid: int | None = None) -> list[str]:
        """Enqueue many runs in one transaction (a grid of thousands stays fast); returns their ids. Batch
        references in a config (``batch_ref``) become the ids of those runs before it is hashed and stored."""
        specs = list(specs)
        now = time.time()
        prov = provenance()
        commit = git_commit()
        fg_started = procs.started(foreground_pid) if foreground_pid is not None else None
        created: list[tuple[str, NewRun, str]] = []
        with self._tx() as conn:
            next_suffix: dict[str, int] = {}
            taken_cache: dict[str, set[str]] = {}
            for index, spec in enumerate(specs):
                if not isinstance(spec.config, dict):
                    raise InputError(f"config of a {spec.kind!r} run must be a JSON object")
                config = _substitute_refs(spec.config, [c[0] for c in created], index)
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
                cfg = json.dumps(config, sort_keys=True, default=str)
                opts = None if spec.executor_opts is None else json.dumps(spec.executor_opts, sort_keys=True)
                conn.execute(
                    "INSERT INTO runs(id, kind, label, experiment, config, config_hash, seed, status, priority,"
                    " created, foreground_pid, foreground_started, git_commit, executor, executor_opts)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, spec.kind, spec.label, spec.experiment, cfg, config_hash(config),
                     seed, status, int(spec.priority), now, foreground_pid, fg_started, commit, spec.executor, opts))
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

    def runs_referencing(self, path: Path) -> list[str]:
        """Ids of the runs whose config names ``path`` or something inside it (any string value of the config,
        at any depth): the runs that use, or may use again (a retry), the data there."""
        target = os.path.realpath(path)
        return [r.id for r in self.list_runs() if any(
            p == target or p.startswith(target + os.sep) for p in config_paths(r.config))]

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

    def unlink_runs(self, experiment: str, label: str | None = None, *, drop_experiment: bool = False) -> int:
        """Forget which runs serve ``experiment`` (only ``label`` when given; the runs themselves stay), and with
        ``drop_experiment`` the experiment and its spec too; the number of links removed."""
        with self._tx() as conn:
            if label is None:
                n = conn.execute("DELETE FROM run_labels WHERE experiment = ?", (experiment,)).rowcount
            else:
                n = conn.execute("DELETE FROM run_labels WHERE experiment = ? AND label = ?",
                                 (experiment, label)).rowcount
            if drop_experiment:
                conn.execute("UPDATE runs SET experiment = NULL WHERE experiment = ?", (experiment,))
                conn.execute("DELETE FROM experiments WHERE name = ?", (experiment,))
        return n

    def runs_with_hashes(self, hashes: Collection[str]) -> list[Run]:
        """The runs whose config hash is one of ``hashes`` (identical configurations), in creation order."""
        wanted = list(dict.fromkeys(hashes))
        ids: list[str] = []
        with self._read() as conn:
            for i in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                chunk = wanted[i:i + 500]
                ids += [r[0] for r in conn.execute(
                    f"SELECT id FROM runs WHERE config_hash IN ({','.join('?' * len(chunk))}) ORDER BY seq", chunk)]
        return sorted(self.get_runs(ids), key=lambda r: r.seq) if ids else []

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

    def run_configs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Config of each of ``run_ids`` in that order (exact ids; unknown ones are left out): a few queries for
        thousands of runs (what the results view's protocol check reads)."""
        out: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(run_ids))
        with self._read() as conn:
            for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                chunk = ids[start:start + 500]
                rows = conn.execute(f"SELECT id, config FROM runs WHERE id IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
                out.update((r[0], json.loads(r[1])) for r in rows)
        return {i: out[i] for i in ids if i in out}  # in the order asked

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

    def labelled_protocols(self, experiment: str, ignore: Collection[str], *, kind: str = "classify",
                           status: Sequence[str] = ()) -> list[tuple[str, str, str, int]]:
        """What the runs of ``kind`` linked to ``experiment`` share: their configs without the ``ignore`` keys
        (dotted: ``tta.batch_size``), distinct per label, as ``(label, config JSON, a run id, runs)``; only runs in
        ``status`` when given. SQLite drops the keys and groups, so a 10,000-run experiment returns a few rows."""
        paths = ", ".join("'$." + k.replace("'", "''") + "'" for k in ignore) or "'$.__none__'"
        cond, args = "", [experiment, kind]
        if status:
            cond = f" AND r.status IN ({','.join('?' * len(status))})"
            args += list(status)
        with self._read() as conn:
            if not self._has_links(conn):
                return []
            return [tuple(r) for r in conn.execute(  # type: ignore[misc]
                f"SELECT l.label, json_remove(r.config, {paths}) AS p, min(r.id), count(*) FROM run_labels l"
                f" JOIN runs r ON r.id = l.run_id WHERE l.experiment = ? AND r.kind = ?{cond}"
                " GROUP BY l.label, p ORDER BY l.label", args)]

    @staticmethod
    def _has_links(conn: sqlite3.Connection) -> bool:
        """False only for an older store opened immutable (read-only media): it cannot be migrated, has no links."""
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_labels'").fetchone() \
            is not None

    def copy_subset(self, dest: Path, run_ids: Collection[str], experiment: str) -> None:
        """Write a consistent copy of the store to ``dest`` (a new file) holding only these runs (their rows,
        dependencies, metrics, events and labels) and this experiment: a light store for another machine. The copy
        has no WAL, so it opens on read-only media as it is."""
        keep = set(run_ids)
        try:
            with self._read() as conn:
                out = sqlite3.connect(dest)
                try:
                    conn.backup(out)
                finally:
                    out.close()
            out = sqlite3.connect(dest, isolation_level=None)
            try:
                out.execute("PRAGMA journal_mode = DELETE")
                out.execute("BEGIN")
                out.execute("CREATE TEMP TABLE keep(id TEXT PRIMARY KEY)")
                out.executemany("INSERT INTO keep(id) VALUES (?)", [(r,) for r in keep])
                for sql in ("DELETE FROM metrics WHERE run_id NOT IN (SELECT id FROM keep)",
                            "DELETE FROM events WHERE run_id IS NULL OR run_id NOT IN (SELECT id FROM keep)",
                            "DELETE FROM deps WHERE child NOT IN (SELECT id FROM keep)"
                            " OR parent NOT IN (SELECT id FROM keep)",
                            "DELETE FROM run_labels WHERE run_id NOT IN (SELECT id FROM keep) OR experiment != ?",
                            "DELETE FROM runs WHERE id NOT IN (SELECT id FROM keep)",
                            "UPDATE runs SET experiment = NULL WHERE experiment IS NOT NULL AND experiment != ?",
                            "DELETE FROM experiments WHERE name != ?", "DELETE FROM settings"):
                    out.execute(sql, (experiment,) if "?" in sql else ())
                out.execute("COMMIT")
                out.execute("VACUUM")
            finally:
                out.close()
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from None

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
    def runnable(self, limit: int, executor: str = "local") -> list[str]:
        """Queued runs of ``executor`` the engine may start, highest priority first, then first come first served."""
        with self._read() as conn:
            return [r[0] for r in conn.execute(
                "SELECT id FROM runs WHERE status = ? AND foreground_pid IS NULL AND executor = ?"
                " ORDER BY priority DESC, seq LIMIT ?", (QUEUED, executor, limit))]

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
        fg_started = procs.started(foreground_pid) if foreground_pid is not None else None
        commit = git_commit()  # the checkout the run starts from, read now (the engine may be older)
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, slot = ?, engine_pid = ?, pid = ?, foreground_pid = ?,"
                " foreground_started = ?, host = ?, started = ?, ended = NULL, heartbeat = ?, exit_reason = NULL,"
                " progress = NULL, git_commit = ?, job_id = NULL WHERE id = ? AND status = ?",
                (RUNNING, slot, engine_pid, pid, foreground_pid, fg_started, provenance()["host"], now, now, commit,
                 run_id, QUEUED))
            if cur.rowcount != 1:
                return False
            self._event(conn, run_id, "started", f"slot {slot}")
        self.run_dir(run_id).mkdir(exist_ok=True)  # deleted by hand, or its creator died first: the worker needs it
        self._write_run_json([run_id])
        return True

    def set_pid(self, run_id: str, pid: int) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))

    def set_job(self, run_id: str, job_id: str) -> None:
        """Record the cluster job that now runs a claimed run (its owner from here on)."""
        with self._tx() as conn:
            conn.execute("UPDATE runs SET job_id = ? WHERE id = ?", (job_id, run_id))
            self._event(conn, run_id, "submitted", f"job {job_id}")
        self._write_run_json([run_id])

    # ---------------------------------------------------------------- ingestion (head side, engine.store.ingest)
    def ingest_offsets(self, run_ids: Collection[str]) -> dict[str, int]:
        """How far the metrics file of each run has been ingested (bytes; 0 when never)."""
        with self._read() as conn:
            rows = conn.execute("SELECT run_id, metrics_offset FROM ingest").fetchall() if len(run_ids) > 200 else [
                r for rid in run_ids for r in conn.execute(
                    "SELECT run_id, metrics_offset FROM ingest WHERE run_id = ?", (rid,))]
        found = dict(rows)
        return {rid: found.get(rid, 0) for rid in run_ids}

    def apply_updates(self, updates: Sequence[FolderUpdate]) -> list[str]:
        """Apply what the head read from run folders, all in one transaction. A metrics byte range is applied only
        when the stored offset is still where it starts, and the new offset commits with the rows: two heads (the
        engine and a foreground ``ganaug run``) reading one file never apply a range twice or out of order, and a
        head that crashes re-reads exactly what was not committed. Returns the runs whose range was stale (re-read
        from ``ingest_offsets``); updates of runs that no longer exist are dropped."""
        stale: list[str] = []
        bumped: list[str] = []
        with self._tx() as conn:
            for u in updates:
                row = conn.execute("SELECT status, resumes FROM runs WHERE id = ?", (u.run_id,)).fetchone()
                if row is None:
                    continue
                if u.end != u.start:
                    got = conn.execute("SELECT metrics_offset FROM ingest WHERE run_id = ?", (u.run_id,)).fetchone()
                    if (got[0] if got else 0) != u.start and not u.rewound:
                        stale.append(u.run_id)
                    else:
                        self._insert_metrics(conn, u.run_id, u.rows)
                        conn.execute("INSERT INTO ingest(run_id, metrics_offset) VALUES (?, ?) ON CONFLICT(run_id)"
                                     " DO UPDATE SET metrics_offset = excluded.metrics_offset", (u.run_id, u.end))
                if row[0] not in ACTIVE:
                    continue
                if u.resumes is not None and u.resumes > row[1]:
                    conn.execute("UPDATE runs SET resumes = ?, progress = NULL WHERE id = ?", (u.resumes, u.run_id))
                    self._event(conn, u.run_id, "resume", u.resume_reason or f"resumed in place ({u.resumes})")
                    bumped.append(u.run_id)
                if u.progress is not None:
                    conn.execute("UPDATE runs SET progress = ? WHERE id = ?", (json.dumps(u.progress), u.run_id))
                if u.heartbeat is not None:
                    conn.execute("UPDATE runs SET heartbeat = max(coalesce(heartbeat, 0), ?), host = coalesce(?, host)"
                                 " WHERE id = ?", (u.heartbeat, u.host, u.run_id))
        self._write_run_json(bumped)
        return stale

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
            self._insert_metrics(conn, run_id, rows)

    @staticmethod
    def _insert_metrics(conn: sqlite3.Connection, run_id: str, rows: Sequence[tuple[str, int, Any, float]]) -> None:
        conn.executemany("INSERT OR REPLACE INTO metrics(run_id, name, step, value, wall) VALUES (?,?,?,?,?)",
                         [(run_id, n, s, v, w) for n, s, v, w in rows])

    def finish(self, run_id: str, status: str, reason: str | None = None, *, only_from: Sequence[str] = ()) -> bool:
        """End a run in ``status`` and settle its descendants (unblock, or dependency-failed).

        With ``only_from`` nothing happens unless the run is still in one of those states (the engine passes
        ``ACTIVE`` after a worker exits, so an outcome the worker recorded itself wins)."""
        assert status in (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED, DEPENDENCY_FAILED), status
        touched: list[str] = []
        with self._tx() as conn:
            row = conn.execute("SELECT status, cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or (only_from and row[0] not in only_from):
                return False
            if status == INTERRUPTED and row[1]:  # a requested cancel always wins over a later resume
                status, reason = CANCELLED, f"cancelled by user ({reason})" if reason else "cancelled by user"
            conn.execute("UPDATE runs SET status = ?, ended = ?, exit_reason = ?, foreground_pid = NULL,"
                         " foreground_started = NULL, cancel_requested = 0 WHERE id = ?",
                         (status, time.time(), reason, run_id))
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

    # ---------------------------------------------------------------- dead owners
    def reap_dead_owners(self, *, engine_pid: int | None = None, mine: Collection[str] = ()) -> list[str]:
        """Settle the runs whose owner is gone (see ``engine.store.owners``); returns their ids.

        A running run ends interrupted (resumable), or cancelled when a cancel was requested; a run the user
        paused stays paused (held: resuming it queues it, and it resumes from its checkpoint); a run a dead
        foreground ``ganaug run`` reserved while it waited ends interrupted. A worker left by a dead engine is
        killed. Every store command calls this, so no run stays ``running`` for a dead owner without an engine.
        ``engine_pid``/``mine``: the calling engine and its live children's runs."""
        if not self.writable:
            return []
        live = owners.engine_info(self.workspace)
        found = []
        for run in [*self.list_runs(status=ACTIVE), *self.foreground_waiting()]:
            if run.id in mine or (reason := owners.owner_gone(run, live, engine_pid)) is None:
                continue
            if run.engine_pid is not None and run.pid is not None and owners.worker_alive(run):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(run.pid, signal.SIGKILL)
            if self._drained(run) and self._orphaned(run, reason):
                found.append(run.id)
        return found

    def _drained(self, run: Run) -> bool:
        """Ingest what an orphan's worker left in its folder (its last metrics, or the outcome it wrote just before
        its owner died); True when the run still needs settling."""
        from engine.store.ingest import Ingestor

        Ingestor(self).ingest([run])
        return self.get_run(run.id).status == run.status

    def _orphaned(self, run: Run, reason: str) -> bool:
        if run.status == PAUSED and not run.cancel_requested:
            with self._tx() as conn:
                cur = conn.execute(
                    "UPDATE runs SET pid = NULL, engine_pid = NULL, foreground_pid = NULL, foreground_started = NULL,"
                    " slot = NULL, progress = NULL, resumes = resumes + 1, exit_reason = ?"
                    " WHERE id = ? AND status = ? AND pid IS ?", (f"{reason} while paused", run.id, PAUSED, run.pid))
                if cur.rowcount != 1:
                    return False
                self._event(conn, run.id, PAUSED, f"{reason}; stays paused until resumed")
            self._write_run_json([run.id])
            return True
        was = ACTIVE if run.status in ACTIVE else (QUEUED, BLOCKED)
        return self.finish(run.id, INTERRUPTED, reason, only_from=was)

    # ---------------------------------------------------------------- user commands
    # Multi-id commands resolve every id and check every run before they change anything: one bad id, one line,
    # nothing done.
    def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        """The runs named (ids or unambiguous parts of ids), each once; one InputError naming every bad id."""
        resolved, errors = [], []
        with self._read() as conn:
            for rid in run_ids:
                try:
                    resolved.append(self._resolve(conn, rid))
                except InputError as exc:
                    errors.append(str(exc))
        if errors:
            raise InputError("; ".join(errors))
        return [self.get_run(r) for r in dict.fromkeys(resolved)]

    def request_cancel(self, run_id: str) -> str:
        """Cancel one run (see ``cancel_runs``); its status afterwards."""
        return self.cancel_runs([run_id])[0][1]

    def cancel_runs(self, run_ids: Sequence[str]) -> list[tuple[Run, str]]:
        """Cancel: a waiting run ends now; a running one is flagged (its worker stops gracefully).
        Returns each run as it was before, with its status afterwards."""
        runs = self.get_runs(run_ids)
        for run in runs:
            if run.status not in (QUEUED, BLOCKED, INTERRUPTED, *ACTIVE):
                raise InputError(f"run {run.id} is {run.status}: nothing to cancel")
        out = []
        for run in runs:
            if run.status in (QUEUED, BLOCKED, INTERRUPTED) or (run.status == PAUSED and not run.launched):
                self.finish(run.id, CANCELLED, "cancelled by user")
                out.append((run, CANCELLED))
                continue
            with self._tx() as conn:
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run.id,))
                self._event(conn, run.id, "cancel-requested", "")
            out.append((run, run.status))
        return out

    def retry(self, run_id: str, *, restart: bool = False, resume: bool = False) -> str:
        """Re-queue one run (see ``retry_runs``); its new status."""
        return self.retry_runs([run_id], restart=restart, resume=resume)[0][1]

    def retry_runs(self, run_ids: Sequence[str], *, restart: bool = False, resume: bool = False,
                   executor: Callable[[str], dict[str, Any]] | None = None) -> list[tuple[Run, str]]:
        """failed/cancelled/interrupted/dependency-failed -> queued (or blocked); their dependency-failed
        descendants wait again. A parent that ended badly must be retried first or in the same call (runs are
        re-queued parents first; a dependency-failed run that a retried parent already made wait stays waiting).
        ``restart`` drops the checkpoints first. A retry the user asks for is a new attempt (``attempt`` + 1);
        ``resume`` (the engine re-queueing what a crash or stop interrupted) counts in ``resumes`` instead.
        ``executor``: kind -> the ``NewRun`` executor fields the re-queued runs take (a resubmitted experiment goes
        where its submission says); default: each keeps its own."""
        runs = sorted(self.get_runs(run_ids), key=lambda r: r.seq)  # parents before children
        batch = {r.id for r in runs}
        with self._read() as conn:
            for run in runs:
                if run.status not in RETRYABLE:
                    raise InputError(f"run {run.id} is {run.status}; only {', '.join(RETRYABLE)} runs can be retried")
                bad = [p for p in run.parents if p not in batch and conn.execute(
                    "SELECT status FROM runs WHERE id = ?", (p,)).fetchone()[0] in BAD_ENDS]
                if bad:
                    raise InputError(f"run {run.id} depends on {', '.join(bad)} which ended badly; retry that first")
        out = []
        for run in runs:
            if self.get_run(run.id).status not in RETRYABLE:  # a parent of the batch retried it already: waiting
                out.append((run, self.get_run(run.id).status))
                continue
            if restart:
                shutil.rmtree(self.run_dir(run.id) / "checkpoints", ignore_errors=True)
                (self.run_dir(run.id) / "checkpoints").mkdir(parents=True, exist_ok=True)
            with self._tx() as conn:
                status = self._status_from_parents(conn, run.parents)
                self._requeue(conn, run.id, status, resume=resume)
                if executor is not None:
                    where = executor(run.kind)
                    opts = where.get("executor_opts")
                    conn.execute("UPDATE runs SET executor = ?, executor_opts = ? WHERE id = ?",
                                 (where["executor"], None if opts is None else json.dumps(opts, sort_keys=True),
                                  run.id))
                touched = [run.id, *self._reblock_descendants(conn, run.id)]
            self._write_run_json(touched)
            out.append((run, status))
        return out

    def _requeue(self, conn: sqlite3.Connection, run_id: str, status: str, *, resume: bool) -> None:
        counter = "resumes = resumes + 1" if resume else "attempt = attempt + 1"
        conn.execute(f"UPDATE runs SET status = ?, {counter}, started = NULL, ended = NULL, pid = NULL,"
                     " engine_pid = NULL, foreground_pid = NULL, foreground_started = NULL, slot = NULL, job_id = NULL,"
                     " exit_reason = NULL, progress = NULL, cancel_requested = 0 WHERE id = ?", (status, run_id))
        self._event(conn, run_id, status, "resume" if resume else "retry")

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
        self.set_priorities([run_id], priority)

    def set_priorities(self, run_ids: Sequence[str], priority: int) -> list[str]:
        """Give every named run this priority, in one transaction; their ids."""
        rids = [r.id for r in self.get_runs(run_ids)]
        with self._tx() as conn:
            for rid in rids:
                conn.execute("UPDATE runs SET priority = ? WHERE id = ?", (int(priority), rid))
                self._event(conn, rid, "priority", str(priority))
        self._write_run_json(rids)
        return rids

    def set_paused(self, run_id: str, paused: bool) -> str:
        """Pause or release one run (see ``pause_runs``); its new status."""
        return self.pause_runs([run_id], paused)[0][1]

    def pause_runs(self, run_ids: Sequence[str], paused: bool) -> list[tuple[Run, str]]:
        """Hold waiting runs (paused) or let them go again; for running runs the caller stops or continues the
        process. Returns each run as it was before, with its new status."""
        runs = self.get_runs(run_ids)
        for run in runs:
            if paused and run.status not in (QUEUED, BLOCKED, RUNNING):
                raise InputError(f"run {run.id} is {run.status}: cannot pause it")
            if not paused and run.status != PAUSED:
                raise InputError(f"run {run.id} is {run.status}, not paused")
        out = []
        for run in runs:
            with self._tx() as conn:
                if paused:
                    new = PAUSED
                else:
                    new = RUNNING if run.launched and run.started is not None and run.ended is None else \
                        self._status_from_parents(conn, run.parents)
                conn.execute("UPDATE runs SET status = ? WHERE id = ?", (new, run.id))
                self._event(conn, run.id, new, "")
                touched = [run.id]
                if new == DEPENDENCY_FAILED:  # a parent ended badly while it was held: it ends, so do its waiters
                    conn.execute("UPDATE runs SET ended = ?, exit_reason = ? WHERE id = ?",
                                 (time.time(), "a parent ended badly while it was paused", run.id))
                    touched += self._settle_children(conn, run.id, new)
            self._write_run_json(touched)
            out.append((run, new))
        return out

    def remove(self, run_ids: Sequence[str]) -> list[str]:
        """Delete runs (rows, metrics, events, folder). Refuses active runs and runs whose dependents stay."""
        runs = self.get_runs(run_ids)
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
                for sql in ("DELETE FROM metrics WHERE run_id = ?", "DELETE FROM ingest WHERE run_id = ?",
                            "DELETE FROM events WHERE run_id = ?",
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
                "priority": run.priority, "attempt": run.attempt, "resumes": run.resumes,
                "parents": list(run.parents), "executor": run.executor, "executor_opts": run.executor_opts,
                "job_id": run.job_id,
                "slot": run.slot, "exit_reason": run.exit_reason,
                "created": _iso(run.created), "started": _iso(run.started), "ended": _iso(run.ended),
                "host": run.host or prov["host"], "git_commit": run.git_commit, "packages": prov["packages"],
                "schema_version": SCHEMA_VERSION,
            }
            replace_text(self.run_dir(rid) / "run.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")


def config_paths(node: Any) -> Iterator[str]:
    """Every string of a run config that looks like a filesystem path (contains a separator), absolute with
    symbolic links resolved: what a run may read, whatever its kind."""
    if isinstance(node, dict):
        for value in node.values():
            yield from config_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from config_paths(value)
    elif isinstance(node, str) and os.sep in node:
        yield os.path.realpath(node)


def _seed(spec: NewRun) -> int:
    """The run's seed (config key ``seed``, default 0): an integer >= 0 (numpy seeds take no negative
    numbers), else one InputError line."""
    try:
        seed = int(spec.config.get("seed", 0))
    except (TypeError, ValueError):
        seed = -1
    if seed < 0:
        raise InputError(f"config of a {spec.kind!r} run: key 'seed': expected an integer >= 0, "
                         f"got {spec.config['seed']!r}")
    return seed


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


def open_store(workspace: Path | str | None = None, *, readonly: bool = False, create: bool = True) -> Store:
    """Open the store of ``workspace`` (see ``resolve_workspace``), creating and migrating it if needed.

    ``create=False`` (every command that only reads) opens an existing store only: a missing one is an
    InputError "no workspace at ...", and nothing is created. ``readonly`` is for pure readers: on read-only
    media the store is then read without locks (or from a private copy when it has an unmerged WAL)."""
    return Store(resolve_workspace(workspace), readonly=readonly, create=create)
