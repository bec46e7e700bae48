"""What a run records about where it ran: package versions and host (cached per process), git commit (read each
time: the checkout can change under a long-lived engine)."""

from __future__ import annotations

import functools
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("ganaug", "torch", "torchvision", "timm", "kornia", "numpy", "pandas", "scikit-learn",
             "scipy", "pillow", "imagehash", "pydantic")


@functools.cache
def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run's results depend on (from metadata; nothing imported)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    """The project's checked-out commit now, read from ``.git`` directly (no subprocess), or None.

    Not cached: a long-lived engine must record the checkout each run starts from, not the one it started with.
    A ``.git`` file (a worktree) points to its own git dir; refs then live in the shared ``commondir``."""
    root = Path(__file__).resolve().parents[2]
    git = root / ".git"
    try:
        if git.is_file():
            pointer = git.read_text().strip()
            if not pointer.startswith("gitdir: "):
                return None
            git = (root / pointer[len("gitdir: "):]).resolve()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip() or None
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


@functools.cache
def host() -> str:
    return socket.gethostname()


def provenance() -> dict[str, Any]:
    return {"host": host(), "git_commit": git_commit(), "packages": package_versions(),
            "python_executable": sys.executable}
