"""Where a workspace keeps its database and the engine's lock: beside the run folders by default, elsewhere when the
workspace says so.

On a cluster the run folders live on the shared file system (every job writes its own), but SQLite's WAL needs
every process that opens the database on one host: ``<workspace>/workspace.toml`` then names a file on the head
node's local disk::

    db_path = "/var/tmp/ganaug/paper.db"    # absolute, or relative to the workspace

The engine's ``engine.lock`` / ``engine.pid`` follow the database (``<db>.engine.lock``): the lock guards the
database, and a lock on a network file system is not to be trusted. ``$GANAUG_DB`` overrides both (to open a
read-only snapshot of the database on another machine, with the run folders of the shared workspace).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from engine.errors import InputError

DB_NAME = "ganaug.db"
SETTINGS_FILE = "workspace.toml"
DB_ENV = "GANAUG_DB"
_KEYS = ("db_path",)


def db_path(workspace: Path) -> Path:
    """The workspace's database file (see the module doc); InputError for a bad ``workspace.toml``."""
    override = os.environ.get(DB_ENV)
    if override:
        return Path(override).expanduser().absolute()
    default = workspace / DB_NAME
    settings = workspace / SETTINGS_FILE
    try:
        text = settings.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{settings}: cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{settings}: not valid TOML: {exc}") from None
    for key in doc:
        if key not in _KEYS:
            raise InputError(f"{settings}: {key}: unknown key (known: {', '.join(_KEYS)})")
    value = doc.get("db_path")
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{settings}: db_path: must be a path string, got {value!r}")
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else workspace / path).absolute()
    if path != default and default.exists():
        raise InputError(f"{settings}: db_path is {path}, but the workspace also has {default}; move that database "
                         f"to {path} (with its -wal file, engine stopped) or remove the setting")
    return path


def engine_file(workspace: Path, name: str) -> Path:
    """``engine.lock`` / ``engine.pid`` of the engine serving the workspace's database."""
    db = db_path(workspace)
    return workspace / name if db == workspace / DB_NAME else db.with_name(f"{db.name}.{name}")
