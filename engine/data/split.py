"""Deterministic train / val / test split in the paper's proportions, stratified by label, grouped by lesion.

The paper split the 20,599 non-carcinoma ISIC 2019 images into 14,805 / 1,931 / 3,863. ``split_dataset``
scales those proportions to any data-set size:

1. Records are grouped by lesion id (image id when unknown), so one lesion never straddles splits; a group
   counts as melanoma if any of its images is.
2. Within each class the groups are put in a seeded random order (the order of the input does not matter:
   groups are sorted by id first), melanoma groups first.
3. Walking that sequence, each group goes to the split whose count lags its target share of everything
   assigned so far the most (largest-deficit apportionment). Every prefix is then within one image of
   the proportions when groups are single images, so the split sizes are within 1 of the exact
   proportions and so is each split's melanoma count; with multi-image lesions the deviation is at most
   about one group.

The paper's own split was not stratified (train 14,805 with 3,121 melanomas, val 1,931 with 224, test 3,863
with 396). ``assigned_split`` rebuilds any such split from one id list per part (the authors' CSVs), so runs
can train and test on exactly the paper's images.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.data.records import LesionRecord, read_csv_rows, read_image_list, records_by_key
from engine.errors import InputError
from engine.fsutil import atomic_write_text

PAPER_SPLIT = (14805, 1931, 3863)
SPLIT_NAMES = ("train", "val", "test")
CSV_COLUMNS = ("image_id", "image", "label", "diagnosis", "lesion_id", "split")


@dataclass
class Split:
    """The three parts of a split, each in a deterministic order."""

    train: list[LesionRecord]
    val: list[LesionRecord]
    test: list[LesionRecord]

    def parts(self) -> dict[str, list[LesionRecord]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def sizes(self) -> tuple[int, int, int]:
        return (len(self.train), len(self.val), len(self.test))

    def write_csv(self, path: Path | str) -> None:
        """Write one row per record (atomically) so the split can be inspected, versioned and reused."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for name, records in self.parts().items():
            for r in records:
                w.writerow([r.image_id, str(r.image), r.label, r.diagnosis, r.lesion_id or "", name])
        atomic_write_text(path, buf.getvalue())

    @classmethod
    def read_csv(cls, path: Path | str, records: Sequence[LesionRecord]) -> Split:
        """Rebuild a split written by ``write_csv`` from the current records (matched by image id).

        The CSV fixes membership; the records supply paths, so a moved data set still loads. A split id
        that is not among ``records`` is an InputError (the split belongs to another data set or version).
        """
        path = Path(path)
        by_id = {r.image_id: r for r in records}
        parts: dict[str, list[LesionRecord]] = {name: [] for name in SPLIT_NAMES}
        seen: set[str] = set()
        for line, row in read_csv_rows(path, ("image_id", "split")):
            if row["split"] not in parts:
                raise InputError(f"{path}, line {line}: split {row['split']!r} is not one of {', '.join(SPLIT_NAMES)}")
            record = by_id.get(row["image_id"])
            if record is None:
                raise InputError(f"{path}, line {line}: image id {row['image_id']!r} is not in the data set")
            if row["image_id"] in seen:
                raise InputError(f"{path}, line {line}: image id {row['image_id']!r} listed twice")
            seen.add(row["image_id"])
            parts[row["split"]].append(record)
        return cls(**parts)

    @classmethod
    def from_csv(cls, path: Path | str) -> Split:
        """The split exactly as its CSV lists it, records built from its rows (``image``, ``label``, ...).

        For users of membership alone that have no data set to rebind it to: the translation GANs keep the
        masks of the training images of the ISIC 2019 split the user names by its file.
        """
        path = Path(path)
        parts: dict[str, list[LesionRecord]] = {name: [] for name in SPLIT_NAMES}
        seen: set[str] = set()
        for line, row in read_csv_rows(path, CSV_COLUMNS):
            if row["split"] not in parts:
                raise InputError(f"{path}, line {line}: split {row['split']!r} is not one of {', '.join(SPLIT_NAMES)}")
            if row["label"] not in ("0", "1"):
                raise InputError(f"{path}, line {line}: label {row['label']!r} is not 0 or 1")
            if row["image_id"] in seen:
                raise InputError(f"{path}, line {line}: image id {row['image_id']!r} listed twice")
            seen.add(row["image_id"])
            parts[row["split"]].append(LesionRecord(
                image=Path(row["image"]), label=int(row["label"]), diagnosis=row["diagnosis"], source=str(path),
                image_id=row["image_id"], lesion_id=row["lesion_id"] or None))
        return cls(**parts)


def split_dataset(
    records: Sequence[LesionRecord], seed: int = 0, sizes: Sequence[int] = PAPER_SPLIT
) -> Split:
    """Split ``records`` into train/val/test with the proportions of ``sizes`` (see the module doc)."""
    import numpy as np

    if len(sizes) != 3 or min(sizes) < 0 or sum(sizes) <= 0:
        raise ValueError(f"sizes must be three non-negative counts with a positive sum, got {tuple(sizes)}")
    if seed < 0:
        raise InputError(f"split --seed {seed}: must be >= 0")
    share = np.asarray(sizes, dtype=float) / float(sum(sizes))
    groups: dict[str, list[LesionRecord]] = defaultdict(list)
    for r in records:
        groups[r.group].append(r)
    order: list[str] = []
    for label in (1, 0):
        ids = sorted(g for g, rs in groups.items() if max(r.label for r in rs) == label)
        rng = np.random.default_rng([seed, label])
        order += [ids[i] for i in rng.permutation(len(ids))]
    counts = np.zeros(3)
    assigned: list[list[LesionRecord]] = [[], [], []]
    for g in order:
        members = sorted(groups[g], key=lambda r: r.image_id)
        total = counts.sum() + len(members)
        s = int(np.argmax(share * total - counts))
        counts[s] += len(members)
        assigned[s] += members
    return Split(*(sorted(part, key=lambda r: r.image_id) for part in assigned))


def assigned_split(records: Sequence[LesionRecord], files: dict[str, Path]) -> tuple[Split, int]:
    """The split given by one id list per part (``{"train": FILE, "val": FILE, "test": FILE}``); returns it and
    the number of data-set images that no list names (they take no part).

    Ids are matched by ``image_key`` (file stem, ``_downsampled`` ignored on both sides). An id that two lists
    name, or that the data set does not hold, is an InputError naming the file and line.
    """
    missing = [name for name in SPLIT_NAMES if name not in files]
    unknown = sorted(set(files) - set(SPLIT_NAMES))
    if unknown or missing:
        raise InputError(f"--assign: need exactly one file for each of {', '.join(SPLIT_NAMES)}"
                         + (f"; unknown part {unknown[0]!r}" if unknown else f"; missing {missing[0]}"))
    by_key = records_by_key(records, "data set")
    owner: dict[str, tuple[str, Path, int]] = {}
    parts: dict[str, list[LesionRecord]] = {name: [] for name in SPLIT_NAMES}
    for name in SPLIT_NAMES:
        path = Path(files[name])
        for line, key in read_image_list(path):
            if key in owner:
                other, other_path, other_line = owner[key]
                raise InputError(f"{path}, line {line}: image {key!r} is also in the {other} part "
                                 f"({other_path}, line {other_line})")
            record = by_key.get(key)
            if record is None:
                raise InputError(f"{path}, line {line}: image {key!r} is not in the data set (or was dropped by "
                                 f"its adapter, e.g. a carcinoma)")
            owner[key] = (name, path, line)
            parts[name].append(record)
    split = Split(**{name: sorted(rs, key=lambda r: r.image_id) for name, rs in parts.items()})
    return split, len(records) - len(owner)


def split_path(workspace: Path, fmt: str, records: Sequence[LesionRecord], seed: int) -> Path:
    """``<workspace>/splits/<format>-<content-hash>-seed<k>.csv``: content = ids, labels and groups."""
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.image_id):
        h.update(f"{r.image_id}\t{r.label}\t{r.group}\t{r.patient_id}\n".encode())
    return workspace / "splits" / f"{fmt}-{h.hexdigest()[:12]}-seed{seed}.csv"


def persisted_split(workspace: Path, fmt: str, records: Sequence[LesionRecord], seed: int,
                    log: logging.Logger | None = None, split_file: Path | str | None = None,
                    persist: bool = True) -> tuple[Split, Path]:
    """The split of this data set that every run of the workspace shares (classifier and GANs alike).

    With ``split_file`` (a CSV written by ``ganaug data split``, e.g. the paper's split from ``--assign``) that
    file fixes it. Otherwise the stratified split of ``seed``: computed once, written under
    ``<workspace>/splits/``, then reused. ``persist=False`` writes nothing (the check before a run is queued).
    """
    if split_file is not None:
        return Split.read_csv(split_file, records), Path(split_file)
    path = split_path(workspace, fmt, records, seed)
    if path.is_file():
        return Split.read_csv(path, records), path
    split = split_dataset(records, seed=seed)
    if not persist:
        return split, path
    split.write_csv(path)  # atomic: concurrent first runs write the same content, the last rename wins
    if log is not None:
        log.info("split written to %s", path)
    return split, path


def resolve_split(workspace: Path, fmt: str, records: Sequence[LesionRecord], *, split_seed: int = 0,
                  split_file: str | Path | None = None, where: str = "data.split_file",
                  log: logging.Logger | None = None) -> tuple[Split, Path]:
    """The one place a run's ``data`` keys become its split: ``split_file`` (a CSV as ``ganaug data split``
    writes it: ``image_id`` and ``split`` columns) when given, else the workspace's persisted split of
    ``split_seed``. Classifier and GANs resolve it here, so they train on the same images."""
    if split_file is None:
        return persisted_split(workspace, fmt, records, split_seed, log)
    path = Path(split_file).expanduser()
    if not path.is_file():
        raise InputError(f"{where}: split file {str(path)!r} not found")
    return Split.read_csv(path, records), path
