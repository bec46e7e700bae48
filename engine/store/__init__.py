"""The run store: SQLite (WAL) at ``<workspace>/ganaug.db`` plus one folder per run with its ``run.json``.

Readers (CLI, TUI) and writers (engine, workers) each open their own ``Store``; see ``core`` for the API.
"""

from engine.store.core import (
    ACTIVE,
    BAD_ENDS,
    BLOCKED,
    CANCELLED,
    DB_NAME,
    DEPENDENCY_FAILED,
    FAILED,
    INTERRUPTED,
    PAUSED,
    QUEUED,
    RETRYABLE,
    RUNNING,
    STATES,
    SUCCEEDED,
    TERMINAL,
    WORKSPACE_ENV,
    NewRun,
    Run,
    Store,
    batch_ref,
    config_hash,
    config_paths,
    open_store,
    resolve_workspace,
)

__all__ = ["ACTIVE", "BAD_ENDS", "BLOCKED", "CANCELLED", "DB_NAME", "DEPENDENCY_FAILED", "FAILED", "INTERRUPTED",
           "PAUSED", "QUEUED", "RETRYABLE", "RUNNING", "STATES", "SUCCEEDED", "TERMINAL", "WORKSPACE_ENV",
           "NewRun", "Run", "Store", "batch_ref", "config_hash", "config_paths", "open_store", "resolve_workspace"]
