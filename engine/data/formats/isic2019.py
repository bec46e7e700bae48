"""ISIC 2019 training set: ``ISIC_2019_Training_GroundTruth.csv`` (float one-hot) + ``ISIC_2019_Training_Input/``.

MEL is melanoma; NV, BKL, AK, DF and VASC are benign; BCC and SCC are carcinomas, which the paper removes
from training and testing; UNK ("none of the others") has no usable diagnosis and is dropped on its own.
The optional ``ISIC_2019_Training_Metadata.csv`` supplies ``lesion_id`` so splits can group by lesion.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from engine.data.records import (
    BENIGN,
    MELANOMA,
    Dataset,
    LesionRecord,
    finish_dataset,
    optional,
    parse_float,
    read_csv_rows,
    require_file,
)
from engine.errors import InputError

GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
IMAGES = "ISIC_2019_Training_Input"
CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
# class -> label, or a drop reason (str)
RULES: dict[str, int | str] = {
    "MEL": MELANOMA,
    "NV": BENIGN,
    "BKL": BENIGN,
    "AK": BENIGN,
    "DF": BENIGN,
    "VASC": BENIGN,
    "BCC": "carcinoma",
    "SCC": "carcinoma",
    "UNK": "unknown class (UNK)",
}


def read_ground_truth(path: Path) -> dict[str, tuple[int, str]]:
    """image id -> (line, class) from the one-hot CSV; exactly one class must be 1 per row."""
    out: dict[str, tuple[int, str]] = {}
    for line, row in read_csv_rows(path, ("image", *CLASSES)):
        hot = [c for c in CLASSES if parse_float(path, line, c, row[c]) >= 0.5]
        if len(hot) != 1:
            raise InputError(f"{path}, line {line}: image {row['image']}: expected exactly one class set, got {hot}")
        image_id = row["image"]
        if not image_id:
            raise InputError(f"{path}, line {line}: empty image id")
        if image_id in out:
            raise InputError(f"{path}, line {line}: image {image_id} listed twice (first on line {out[image_id][0]})")
        out[image_id] = (line, hot[0])
    return out


def _lesion_ids(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {
        row["image"]: lid
        for _, row in read_csv_rows(path, ("image", "lesion_id"))
        if (lid := optional(row["lesion_id"])) is not None
    }


def layout(root: Path, fmt: str = "isic2019") -> Path:
    gt_path = root / GROUND_TRUTH
    if not gt_path.is_file():
        raise InputError(f"{root}: no {GROUND_TRUTH} (is this the folder of the ISIC 2019 training set?)")
    return gt_path


def load(root: Path, fmt: str = "isic2019") -> Dataset:
    gt_path = layout(root, fmt)
    lesions = _lesion_ids(root / METADATA)
    records: list[LesionRecord] = []
    dropped: Counter[str] = Counter()
    for image_id, (line, cls) in read_ground_truth(gt_path).items():
        rule = RULES[cls]
        if isinstance(rule, str):
            dropped[rule] += 1
            continue
        image = require_file(root / IMAGES / f"{image_id}.jpg", gt_path, line)
        records.append(
            LesionRecord(
                image=image.resolve(),
                label=rule,
                diagnosis=cls,
                source=fmt,
                image_id=image_id,
                lesion_id=lesions.get(image_id),
            )
        )
    return finish_dataset(fmt, root, records, dropped, gt_path)
