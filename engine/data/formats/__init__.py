"""One adapter module per on-disk layout; ``load`` dispatches by format name without importing the others.

Each module exposes ``load(root: Path, fmt: str) -> Dataset`` and ``layout(root: Path, fmt: str) -> Path``: the
file that lists the set's images, found without opening any image (the cheap check a run's config passes
before it is queued). Where is the derm7pt adapter? In
``engine/data/formats/derm7pt.py``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from engine.data.records import Dataset
from engine.errors import InputError

FORMATS = ("isic2019", "isic2020", "derm7pt-derm", "derm7pt-clinic", "dermofit", "isic2018-masks", "csv")

_MODULE = {
    "isic2019": "isic2019",
    "isic2020": "isic2020",
    "derm7pt-derm": "derm7pt",
    "derm7pt-clinic": "derm7pt",
    "dermofit": "dermofit",
    "isic2018-masks": "isic2018_masks",
    "csv": "generic_csv",
}


def _module(fmt: str, root: Path):  # noqa: ANN202 - the adapter module
    if fmt not in _MODULE:
        raise InputError(f"unknown data-set format {fmt!r}; known: {', '.join(FORMATS)}")
    if not root.exists():
        raise InputError(f"{root}: no such file or directory")
    return importlib.import_module(f"engine.data.formats.{_MODULE[fmt]}")


def load(fmt: str, root: Path) -> Dataset:
    return _module(fmt, root).load(root, fmt)


def layout(fmt: str, root: Path) -> Path:
    """The file listing the images of the ``fmt`` set at ``root``; InputError when the layout is wrong."""
    return _module(fmt, root).layout(root, fmt)
