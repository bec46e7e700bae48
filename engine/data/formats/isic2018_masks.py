"""ISIC 2018 Task 2 attribute masks (+ Task 1 lesion segmentations) for the translation GANs.

The root is searched recursively (the official zips unpack into ``ISIC2018_Task2_Training_GroundTruth_v3/``
and ``ISIC2018_Task1_Training_GroundTruth/``). Every id with attribute masks becomes one record and must
have all five attributes and its segmentation. Its image ``<id>.jpg``/``.png`` is looked up under the root
too, preferring one beside the masks, then ``ISIC2018_Task1-2_Training_Input/``, then any other folder
(e.g. an ISIC 2019 layout beside the masks; ``<id>_downsampled`` counts as ``<id>``).

Label rule: Task 2 has no diagnoses, so labels come from an ``ISIC_2019_Training_GroundTruth.csv`` found
under the root (the ISIC 2019 training set contains the ISIC 2018 images). Ids absent from it are dropped
("no ISIC 2019 label"), carcinomas and UNK are dropped as in the ISIC 2019 adapter.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from pathlib import Path

from engine.data.formats import isic2019
from engine.data.records import Dataset, LesionRecord, finish_dataset
from engine.errors import InputError

ATTRIBUTES = ("pigment_network", "negative_network", "streaks", "milia_like_cyst", "globules")
MASKS = ("segmentation", *ATTRIBUTES)
INPUT_DIR = "ISIC2018_Task1-2_Training_Input"
_MASK = re.compile(r"^(ISIC_\d+)_(?:attribute_(" + "|".join(ATTRIBUTES) + r")|(segmentation))\.png$", re.I)
_IMAGE = re.compile(r"^(ISIC_\d+)(?:_downsampled)?\.(?:jpe?g|png)$", re.I)


def _scan(root: Path) -> tuple[dict[str, dict[str, Path]], dict[str, list[Path]], list[Path]]:
    """One walk: masks per id, candidate images per id, ISIC 2019 ground-truth files."""
    masks: dict[str, dict[str, Path]] = defaultdict(dict)
    images: dict[str, list[Path]] = defaultdict(list)
    truths: list[Path] = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if m := _MASK.match(f):
                masks[m.group(1).upper()][(m.group(2) or m.group(3)).lower()] = Path(dirpath, f)
            elif m := _IMAGE.match(f):
                images[m.group(1).upper()].append(Path(dirpath, f))
            elif f == isic2019.GROUND_TRUTH:
                truths.append(Path(dirpath, f))
    return masks, images, sorted(truths)


def _pick_image(candidates: list[Path], mask_dir: Path) -> Path:
    def rank(p: Path) -> tuple[int, str]:
        return (0 if p.parent == mask_dir else 1 if p.parent.name == INPUT_DIR else 2, str(p))

    return min(candidates, key=rank)


def layout(root: Path, fmt: str = "isic2018-masks") -> Path:
    """The masks are found by a recursive search, so the layout check is only that the root is a folder."""
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (isic2018-masks needs the folder holding the masks)")
    return root


def load(root: Path, fmt: str = "isic2018-masks") -> Dataset:
    layout(root, fmt)
    masks, images, truths = _scan(root)
    with_attributes = sorted(i for i, m in masks.items() if any(a in m for a in ATTRIBUTES))
    if not with_attributes:
        raise InputError(f"{root}: no ISIC 2018 Task 2 files ISIC_<id>_attribute_<name>.png found")
    if not truths:
        raise InputError(f"{root}: no {isic2019.GROUND_TRUTH} under the root; it supplies the labels")
    gt_path = truths[0]
    labels = {k.removesuffix("_downsampled"): v for k, v in isic2019.read_ground_truth(gt_path).items()}
    records: list[LesionRecord] = []
    dropped: Counter[str] = Counter()
    for image_id in with_attributes:
        have = masks[image_id]
        missing = [m for m in MASKS if m not in have]
        if missing:
            some = next(iter(have.values()))
            name = f"{image_id}_{'' if missing[0] == 'segmentation' else 'attribute_'}{missing[0]}.png"
            raise InputError(f"{some.parent}: {name} not found under {root} (masks of {image_id} incomplete)")
        if image_id not in labels:
            dropped["no ISIC 2019 label"] += 1
            continue
        rule = isic2019.RULES[labels[image_id][1]]
        if isinstance(rule, str):
            dropped[rule] += 1
            continue
        if image_id not in images:
            raise InputError(f"{have['segmentation']}: no image {image_id}.jpg or .png under {root}")
        image = _pick_image(images[image_id], have[ATTRIBUTES[0]].parent)
        records.append(
            LesionRecord(
                image=image.resolve(),
                label=rule,
                diagnosis=labels[image_id][1],
                source=fmt,
                image_id=image_id,
                masks={m: have[m].resolve() for m in MASKS},
            )
        )
    return finish_dataset(fmt, root, records, dropped, gt_path)
