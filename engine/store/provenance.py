"""What a run records about where it ran: package versions, git commit, host (cheap, cached per process)."""

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


@functools.cache
def git_commit() -> str | None:
    """The project's checked-out commit, read from ``.git`` directly (no subprocess), or None."""
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        ref_file = git / ref
        if ref_file.is_file():
            return ref_file.read_text().strip() or None
        for line in (git / "packed-refs").read_text().splitlines():
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
