"""Human-readable, filesystem-safe run ids: ``<YYYYmmdd-HHMM>-<kind>-<label slug>``."""

from __future__ import annotations

import re
import time
from collections.abc import Container

_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")
MAX_SLUG = 80


def slugify(text: str) -> str:
    """``1:1/2 sgn r3`` -> ``1-1_2-sgn-r3``: ':' and spaces become '-', '/' becomes '_' (ratios stay readable)."""
    text = text.replace("/", "_")
    slug = _UNSAFE.sub("-", text).strip("-.")
    return slug[:MAX_SLUG].rstrip("-.")


def base_id(kind: str, label: str | None, when: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(time.time() if when is None else when))
    parts = [stamp, slugify(kind)]
    if label and slugify(label):
        parts.append(slugify(label))
    return "-".join(parts)


def unique_id(base: str, taken: Container[str], start: int = 2) -> tuple[str, int]:
    """``base``, else the first of ``base-<start>``, ``base-<start+1>``... not in ``taken``.

    Also returns the next suffix to try, so a batch of runs with the same base stays linear.
    """
    if base not in taken:
        return base, start
    n = start
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}", n + 1
