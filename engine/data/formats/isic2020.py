"""ISIC 2020 training set: ``train.csv`` or ``ISIC_2020_Training_GroundTruth[_v2].csv``; label = ``target``.

Images are ``<image_name>.jpg`` in ``train/``, ``ISIC_2020_Training_JPEG/`` or ``ISIC_2020_Training_JPEG/train/``
(the Kaggle and the ISIC archive downloads differ); the first folder that exists wins.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from engine.data.records import Dataset, LesionRecord, finish_dataset, optional, read_csv_rows, require_file
from engine.errors import InputError

GROUND_TRUTHS = ("train.csv", "ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")
IMAGE_DIRS = ("train", "ISIC_2020_Training_JPEG/train", "ISIC_2020_Training_JPEG")


def _locate(root: Path) -> tuple[Path, Path]:
    """(ground-truth CSV, image folder)."""
    gt_path = next((root / n for n in GROUND_TRUTHS if (root / n).is_file()), None)
    if gt_path is None:
        raise InputError(f"{root}: none of {', '.join(GROUND_TRUTHS)} found (is this the ISIC 2020 folder?)")
    image_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise InputError(f"{root}: no image folder (looked for {', '.join(IMAGE_DIRS)})")
    return gt_path, image_dir


def layout(root: Path, fmt: str = "isic2020") -> Path:
    return _locate(root)[0]


def load(root: Path, fmt: str = "isic2020") -> Dataset:
    gt_path, image_dir = _locate(root)
    records: list[LesionRecord] = []
    for line, row in read_csv_rows(gt_path, ("image_name", "patient_id", "diagnosis", "target")):
        if row["target"] not in {"0", "1"}:
            raise InputError(f"{gt_path}, line {line}: column target: {row['target']!r} is not 0 or 1")
        image = require_file(image_dir / f"{row['image_name']}.jpg", gt_path, line)
        records.append(
            LesionRecord(
                image=image.resolve(),
                label=int(row["target"]),
                diagnosis=row["diagnosis"] or "unknown",
                source=fmt,
                image_id=row["image_name"],
                lesion_id=optional(row.get("lesion_id")),
                patient_id=optional(row["patient_id"]),
            )
        )
    return finish_dataset(fmt, root, records, Counter(), gt_path)
