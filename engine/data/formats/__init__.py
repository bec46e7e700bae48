"""One adapter module per on-disk layout; ``load`` dispatches by format name without importing the others.

Each module exposes ``load(root: Path, fmt: str) -> Dataset``. Where is the derm7pt adapter? In
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


def load(fmt: str, root: Path) -> Dataset:
    if fmt not in _MODULE:
        raise InputError(f"unknown data-set format {fmt!r}; known: {', '.join(FORMATS)}")
    if not root.exists():
        raise InputError(f"{root}: no such file or directory")
    module = importlib.import_module(f"engine.data.formats.{_MODULE[fmt]}")
    return module.load(root, fmt)
