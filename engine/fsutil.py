"""Atomic file writes: readers and crashed writers never leave a half-written file behind."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it onto ``path``, on error delete it.

    The temporary name keeps ``path``'s suffix so libraries that pick a format by extension
    (PIL, numpy, torch) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~current_umask())  # mkstemp makes 0600: results must stay readable by the team
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@functools.cache
def current_umask() -> int:
    """The process umask, read once. Linux reports it in /proc (thread-safe); elsewhere reading it means
    setting it for an instant, which is why the answer is cached."""
    with contextlib.suppress(OSError, StopIteration, ValueError), open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def replace_text(path: Path, text: str) -> None:
    """Write-then-rename without fsync or a random temp name, for files rewritten often whose loss in a power cut
    costs nothing (``run.json`` at every state change: the database is the truth; a worker's progress and
    heartbeat every few seconds): only atomicity matters, and readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# A temporary folder is named after its owner (host, pid, start time in 1/100 s), so the next process can tell a
# folder a killed writer left behind (its owner is gone: delete it) from one a live writer is still filling.
_OWNED = re.compile(r"-(?P<host>[A-Za-z0-9.]+)-(?P<pid>\d+)-(?P<start>\d+)-[^-]*$")


def owned_tempdir(parent: Path, prefix: str) -> Path:
    """``mkdtemp`` in ``parent`` with this process's identity in the name (see ``remove_stale_tempdirs``); its mode
    follows the umask (mkdtemp makes 0700)."""
    from engine import procs

    started = procs.started() or 0.0
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-{_host_slug()}-{os.getpid()}-{round(started * 100)}-",
                                 dir=parent))
    path.chmod(0o777 & ~current_umask())
    return path


def remove_stale_tempdirs(parent: Path, prefix: str) -> list[Path]:
    """Delete the ``owned_tempdir(parent, prefix)`` folders whose owner process is gone (killed mid-write);
    folders of live owners, of other hosts and of unknown shape are left alone. Returns what was removed."""
    from engine import procs

    removed = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(prefix + "-") and p.is_dir()]
    except OSError:
        return removed
    for path in candidates:
        m = _OWNED.search(path.name[len(prefix):])
        if m is None or m["host"] != _host_slug():
            continue
        if procs.alive(int(m["pid"]), int(m["start"]) / 100):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@contextmanager
def built_folder(out: Path, kinds: tuple[str, ...] = ("tmp",)) -> Iterator[Path]:
    """Yield an owned temporary sibling of ``out`` to fill; on success it replaces ``out`` (an empty folder, or a
    full one moved aside first and then deleted), on failure it is deleted, so ``out`` is never half-written.
    ``kinds`` names the sibling prefixes a killed writer may have left (``.NAME.KIND-...``): removed first.
    A folder that cannot be created is bad input (one line), not a traceback."""
    from engine.errors import InputError

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for kind in (*kinds, "old"):
            remove_stale_tempdirs(out.parent, f".{out.name}.{kind}")
        tmp = owned_tempdir(out.parent, f".{out.name}.{kinds[0]}")
    except OSError as exc:
        raise InputError(f"{out}: cannot write there ({exc.strerror})") from None
    try:
        yield tmp
        if out.exists() and any(out.iterdir()):
            trash = owned_tempdir(out.parent, f".{out.name}.old")
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            if out.exists():
                out.rmdir()
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _host_slug() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "", socket.gethostname())[:40] or "host"
