"""Store schema and its forward migrations (``PRAGMA user_version`` = number of migrations applied).

Each migration is a list of statements applied in one write transaction, so a store is never left
half-migrated. Append new migrations; never edit a shipped one.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 1: initial schema
    [
        """CREATE TABLE experiments (
            name TEXT PRIMARY KEY,
            created REAL NOT NULL,
            spec TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE runs (
            seq INTEGER PRIMARY KEY,            -- creation order: FIFO within a priority
            id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            label TEXT,
            experiment TEXT REFERENCES experiments(name),
            config TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            seed INTEGER NOT NULL,
            status TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            slot TEXT,
            created REAL NOT NULL,
            started REAL,
            ended REAL,
            pid INTEGER,
            engine_pid INTEGER,                 -- the engine that launched it (NULL: foreground / not started)
            foreground_pid INTEGER,             -- set while a `ganaug run` process owns it in the foreground
            host TEXT,
            heartbeat REAL,
            attempt INTEGER NOT NULL DEFAULT 1,
            exit_reason TEXT,
            progress TEXT,                      -- JSON {done, total, desc, time}
            cancel_requested INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX runs_status ON runs(status, priority DESC, seq)",
        "CREATE INDEX runs_kind ON runs(kind)",
        "CREATE INDEX runs_experiment ON runs(experiment)",
        """CREATE TABLE deps (
            child TEXT NOT NULL,
            parent TEXT NOT NULL,
            PRIMARY KEY (child, parent)
        ) WITHOUT ROWID""",
        "CREATE INDEX deps_parent ON deps(parent)",
        """CREATE TABLE metrics (
            run_id TEXT NOT NULL,
            name TEXT NOT NULL,
            step INTEGER NOT NULL,
            value REAL,
            wall REAL NOT NULL,
            PRIMARY KEY (run_id, name, step)
        ) WITHOUT ROWID""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            run_id TEXT,
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX events_run ON events(run_id, id)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    # 2: ownership that survives pid reuse, and attempts apart from crash-resumes
    [
        # Times the run was re-queued because its process died or was stopped without the user asking (engine
        # crash or stop, a dead foreground `ganaug run`); `attempt` counts only what the user or a failure caused.
        "ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0",
        # Start time of foreground_pid's process: with the pid it names the owner even after the pid is reused.
        "ALTER TABLE runs ADD COLUMN foreground_started REAL",
        # The checkout that created the run, then the one that last started it (read at that moment).
        "ALTER TABLE runs ADD COLUMN git_commit TEXT",
    ],
    # 3: the (experiment, label) pairs a run serves. One run may serve many: identical configurations are one run
    #    set wherever they appear (anonymization's 1:0 is augmentation's). runs.label keeps the first label.
    [
        """CREATE TABLE run_labels (
            experiment TEXT NOT NULL,
            label TEXT NOT NULL,
            run_id TEXT NOT NULL,
            PRIMARY KEY (experiment, label, run_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX run_labels_run ON run_labels(run_id)",
    ],
    # 4: executors (issue 13). Workers write only their run folder; the head ingests it.
    [
        # Which executor runs it ("local": the engine's slots or a foreground `ganaug run`; "slurm": a cluster job
        # through submitit), its resolved options (JSON: partition, time, GPUs ...) and the job that runs it now.
        "ALTER TABLE runs ADD COLUMN executor TEXT NOT NULL DEFAULT 'local'",
        "ALTER TABLE runs ADD COLUMN executor_opts TEXT",
        "ALTER TABLE runs ADD COLUMN job_id TEXT",
        # How far the head has read each run's append-only metrics file, committed with the rows it read: a head
        # that crashes re-reads from here, and (name, step) stays unique, so nothing is lost or duplicated.
        """CREATE TABLE ingest (
            run_id TEXT PRIMARY KEY,
            metrics_offset INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
