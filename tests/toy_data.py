"""Writing small data sets in ganaug's generic CSV layout (``labels.csv``: ``image,label`` beside the PNGs)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image


def write_generic_csv(root: Path, items: Iterable[tuple[str, np.ndarray, int]]) -> Path:
    """``items`` = (file name, uint8 HxWx3 image, label) -> ``root`` with the PNGs and ``labels.csv``."""
    root.mkdir(parents=True)
    rows = []
    for name, image, label in items:
        Image.fromarray(image).save(root / name)
        rows.append((name, label))
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label"])
        w.writerows(rows)
    return root
