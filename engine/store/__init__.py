"""The run store: SQLite (WAL) at ``<workspace>/ganaug.db`` (or where ``workspace.toml`` says: ``location``) plus
one folder per run with its ``run.json``.

Readers (CLI, TUI) and the head process (engine, foreground ``ganaug run``) each open their own ``Store``; see
``core`` for the API. Workers never open it: ``runfolder`` is what they write, ``ingest`` how the head reads it.
"""

from engine.store.core import (
    ACTIVE,
    BAD_ENDS,
    BLOCKED,
    CANCELLED,
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
    FolderUpdate,
    NewRun,
    Run,
    Store,
    batch_ref,
    config_hash,
    config_paths,
    open_store,
    resolve_workspace,
)
from engine.store.location import DB_NAME, db_path

__all__ = ["ACTIVE", "BAD_ENDS", "BLOCKED", "CANCELLED", "DB_NAME", "DEPENDENCY_FAILED", "FAILED", "INTERRUPTED",
           "PAUSED", "QUEUED", "RETRYABLE", "RUNNING", "STATES", "SUCCEEDED", "TERMINAL", "WORKSPACE_ENV",
           "FolderUpdate", "NewRun", "Run", "Store", "batch_ref", "config_hash", "config_paths", "db_path",
           "open_store", "resolve_workspace"]
