"""Generic CSV ``image,label[,diagnosis]`` for any other data set.

``root`` is the CSV itself or a folder holding exactly one ``*.csv``. ``image`` is absolute or relative to
the CSV's folder; ``label`` is 0/1 or melanoma/benign (any case).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from engine.data.records import BENIGN, MELANOMA, Dataset, LesionRecord, finish_dataset, read_csv_rows, require_file
from engine.errors import InputError

LABELS = {"1": MELANOMA, "melanoma": MELANOMA, "0": BENIGN, "benign": BENIGN}


def _csv_file(root: Path) -> Path:
    if root.is_file():
        return root
    found = sorted(root.glob("*.csv"))
    if len(found) != 1:
        raise InputError(f"{root}: expected exactly one *.csv in the folder, found {len(found)}")
    return found[0]


def layout(root: Path, fmt: str = "csv") -> Path:
    """The CSV, with its ``image`` and ``label`` columns (no row is read)."""
    path = _csv_file(root)
    read_csv_rows(path, ("image", "label"), header_only=True)
    return path


def load(root: Path, fmt: str = "csv", both_classes: bool = True) -> Dataset:
    """The records; ``both_classes=False`` for a synthetic set, which may hold one class only."""
    path = _csv_file(root)
    records: list[LesionRecord] = []
    for line, row in read_csv_rows(path, ("image", "label")):
        label = LABELS.get(row["label"].lower())
        if label is None:
            raise InputError(f"{path}, line {line}: column label: {row['label']!r} is not 0/1/melanoma/benign")
        if not row["image"]:
            raise InputError(f"{path}, line {line}: empty image column")
        image = require_file(path.parent / row["image"], path, line)
        records.append(
            LesionRecord(
                image=image.resolve(),
                label=label,
                diagnosis=row.get("diagnosis") or ("melanoma" if label == MELANOMA else "benign"),
                source=fmt,
                image_id=row["image"],
            )
        )
    return finish_dataset(fmt, root, records, Counter(), path, both_classes=both_classes)
