"""Lesion records, the data-set container every adapter returns, and the input checks adapters share.

Adapters turn an official on-disk layout into ``LesionRecord``s plus a count of what was dropped and why,
so a user can see at a glance that e.g. 4,522 carcinomas were removed rather than silently lost.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

MELANOMA = 1
BENIGN = 0


@dataclass(frozen=True)
class LesionRecord:
    """One image of one lesion with its binary label (1 melanoma, 0 benign)."""

    image: Path
    label: int
    diagnosis: str
    source: str
    image_id: str
    lesion_id: str | None = None
    patient_id: str | None = None
    masks: Mapping[str, Path] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """The unit that must never straddle splits: the lesion when known, else the image."""
        return self.lesion_id or self.image_id


@dataclass
class Dataset:
    """What an adapter found under ``root``: kept records and ``dropped`` (reason -> count)."""

    format: str
    root: Path
    records: list[LesionRecord]
    dropped: dict[str, int]

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def n_melanoma(self) -> int:
        return sum(r.label == MELANOMA for r in self.records)

    @property
    def n_benign(self) -> int:
        return self.n - self.n_melanoma

    def diagnoses(self) -> dict[str, int]:
        """Kept images per original diagnosis string, most frequent first."""
        return dict(Counter(r.diagnosis for r in self.records).most_common())

    def to_frame(self) -> pd.DataFrame:
        """One row per record (paths as strings, masks as one column per mask name)."""
        import pandas as pd

        rows = []
        for r in self.records:
            row: dict[str, Any] = {
                "image_id": r.image_id,
                "image": str(r.image),
                "label": r.label,
                "diagnosis": r.diagnosis,
                "source": r.source,
                "lesion_id": r.lesion_id,
                "patient_id": r.patient_id,
            }
            row.update({f"mask_{k}": str(v) for k, v in r.masks.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """The ``ganaug data check --json`` document."""
        return {
            "format": self.format,
            "root": str(self.root),
            "n": self.n,
            "melanoma": self.n_melanoma,
            "benign": self.n_benign,
            "dropped": dict(sorted(self.dropped.items())),
            "diagnoses": self.diagnoses(),
            "with_lesion_id": sum(r.lesion_id is not None for r in self.records),
            "with_masks": sum(bool(r.masks) for r in self.records),
        }


def finish_dataset(
    format: str, root: Path, records: list[LesionRecord], dropped: Counter[str] | dict[str, int], source: Path,
    both_classes: bool = True,
) -> Dataset:
    """Build the Dataset, refusing sets a melanoma-vs-benign AUC cannot be computed on.

    ``source`` is the file that listed the records: the error names it so the user knows what to fix.
    ``both_classes=False`` accepts a one-class set (a synthetic set may add melanomas only, as ``(1:0:1)``).
    """
    labels = {r.label for r in records}
    if not records:
        raise InputError(f"{source}: no usable images (dropped: {dict(dropped) or 'none'})")
    if both_classes and len(labels) < 2:
        only = "melanoma" if MELANOMA in labels else "benign"
        raise InputError(f"{source}: only one class ({only}, {len(records)} images); need melanoma and benign")
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.image_id in seen:
            first = seen[r.image_id] + 1
            raise InputError(f"{source}: image id {r.image_id!r} listed twice (records {first} and {i + 1})")
        seen[r.image_id] = i
    return Dataset(format=format, root=root, records=records, dropped={k: v for k, v in dropped.items() if v})


def read_csv_rows(path: Path, required: Iterable[str], header_only: bool = False) -> list[tuple[int, dict[str, str]]]:
    """Rows of a header CSV as (line number, row); one-line InputError on a missing column or ragged row.

    Line numbers are 1-based file lines (the header is line 1) so messages match what an editor shows.
    ``header_only``: check the header and return no rows (a cheap layout check).
    """
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty CSV (no header)")
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise InputError(f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(header)})")
            if header_only:
                return []
            rows = []
            for values in reader:
                line = reader.line_num
                if not values or all(not v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise InputError(f"{path}, line {line}: {len(values)} fields, header has {len(header)}")
                rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=True)}))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text CSV ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None
    return rows


def parse_float(path: Path, line: int, column: str, value: str) -> float:
    """A finite float cell, or an InputError naming file, line and column."""
    try:
        x = float(value)
    except ValueError:
        raise InputError(f"{path}, line {line}: column {column}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{path}, line {line}: column {column}: {value!r} is not a finite number")
    return x


def require_file(path: Path, listed_in: Path, line: int | None = None) -> Path:
    """``path`` if it is a file, else an InputError naming the missing file and where it was listed."""
    if not path.is_file():
        where = f"{listed_in}, line {line}" if line is not None else str(listed_in)
        raise InputError(f"{where}: image file not found: {path}")
    return path


def optional(value: str | None) -> str | None:
    """Empty CSV cells (and pandas-style 'nan') mean 'unknown'."""
    if value is None:
        return None
    value = value.strip()
    return value if value and value.lower() not in {"nan", "na", "none", "null"} else None


# Columns that name an image in the id lists of other tools (the authors' split CSVs use ``image``).
ID_COLUMNS = ("image", "image_id", "image_name")
_SUFFIX = "_downsampled"  # ISIC 2019 marks its re-sized copies so; the same image either way
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def image_key(text: str) -> str:
    """The name an image is matched by across tools: the file stem, with a ``_downsampled`` suffix ignored.

    ``ISIC_2019_Training_Input/ISIC_0000000``, ``ISIC_0000000.jpg`` and ``ISIC_0000000_downsampled`` all give
    ``ISIC_0000000``.
    """
    name = text.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if dot and "." + ext.lower() in _IMAGE_EXTENSIONS:
        name = stem
    return name.removesuffix(_SUFFIX)


def read_image_list(path: Path) -> list[tuple[int, str]]:
    """(line, image key) of each row of an id list: a CSV with an ``image``, ``image_id`` or ``image_name`` column.

    An image listed twice is an InputError naming both lines.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = [h.strip() for h in next(csv.reader(fh), [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    column = next((c for c in ID_COLUMNS if c in header), None)
    if column is None:
        raise InputError(f"{path}: no image column (expected one of {', '.join(ID_COLUMNS)}; header: "
                         f"{','.join(header)})")
    rows = read_csv_rows(path, (column,))
    out: list[tuple[int, str]] = []
    first: dict[str, int] = {}
    for line, row in rows:
        if not row[column]:
            raise InputError(f"{path}, line {line}: empty {column} column")
        key = image_key(row[column])
        if key in first:
            raise InputError(f"{path}, line {line}: image {key!r} listed twice (first on line {first[key]})")
        first[key] = line
        out.append((line, key))
    return out


def records_by_key(records: Iterable[LesionRecord], where: str) -> dict[str, LesionRecord]:
    """``image_key`` -> record; two records with one key (``a.jpg`` beside ``a_downsampled.jpg``) are an
    InputError, since a list could not say which one it means."""
    out: dict[str, LesionRecord] = {}
    for r in records:
        key = image_key(r.image_id)
        if key in out:
            raise InputError(f"{where}: images {out[key].image_id!r} and {r.image_id!r} both match the name {key!r}")
        out[key] = r
    return out
