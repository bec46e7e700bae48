"""derm7pt (Kawahara et al.): ``release_v0/meta/meta.csv`` + ``release_v0/images/``, two test sets.

``derm7pt-derm`` reads the ``derm`` (dermoscopic) column, ``derm7pt-clinic`` the ``clinic`` (clinical) one.
As in the paper only the ISIC 2018 Task 2 classes are kept (melanoma of every kind, seborrheic keratosis,
nevi) and near-duplicates are removed; the paper reports 872 and 839 images after this.

Near-duplicates: two images whose 64-bit ``imagehash.phash`` differ in at most ``NEAR_DUPLICATE_BITS``
bits. Cases are visited by ``case_num``; an image is dropped when it is a near-duplicate of an image
already kept (derm7pt reuses one clinical photograph for several lesions, so this mostly hits ``clinic``).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from engine.data.records import BENIGN, MELANOMA, Dataset, LesionRecord, finish_dataset, read_csv_rows
from engine.errors import InputError

NEAR_DUPLICATE_BITS = 4
COLUMN = {"derm7pt-derm": "derm", "derm7pt-clinic": "clinic"}
NEVI = {
    "blue nevus",
    "clark nevus",
    "combined nevus",
    "congenital nevus",
    "dermal nevus",
    "recurrent nevus",
    "reed or spitz nevus",
}
CARCINOMAS = {"basal cell carcinoma"}
OTHER_CLASSES = {"dermatofibroma", "lentigo", "melanosis", "miscellaneous", "vascular lesion"}


def label_of(diagnosis: str) -> int | str | None:
    """Label for a kept diagnosis, the drop reason for a known other one, None for an unknown one."""
    d = diagnosis.strip().lower()
    if d.startswith("melanoma"):
        return MELANOMA
    if d in NEVI or d == "seborrheic keratosis":
        return BENIGN
    if d in CARCINOMAS:
        return "carcinoma"
    if d in OTHER_CLASSES:
        return f"class not in ISIC 2018 Task 2: {d}"
    return None


def _release_dir(root: Path) -> Path:
    for cand in (root, root / "release_v0"):
        if (cand / "meta" / "meta.csv").is_file():
            return cand
    raise InputError(f"{root}: no meta/meta.csv or release_v0/meta/meta.csv (is this the derm7pt folder?)")


def _case_insensitive_index(images: Path) -> dict[str, Path]:
    """lower-cased path relative to ``images`` -> real path: meta.csv and the files disagree on case."""
    index: dict[str, Path] = {}
    for dirpath, _, files in os.walk(images):
        for f in files:
            p = Path(dirpath, f)
            index[p.relative_to(images).as_posix().lower()] = p
    return index


def phash_bits(paths: list[Path]) -> np.ndarray:
    """64-bit pHash of each image as uint64 (threads: PIL releases the GIL while decoding)."""
    import imagehash
    from PIL import Image

    def one(path: Path) -> int:
        try:
            with Image.open(path) as im:
                h = imagehash.phash(im)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise InputError(f"{path}: corrupt or truncated image ({exc})") from None
        return int(str(h), 16)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return np.array(list(pool.map(one, paths)), dtype=np.uint64)


def near_duplicates(hashes: np.ndarray, max_bits: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Boolean mask of entries within ``max_bits`` of an earlier *kept* entry (vectorised per entry)."""
    dup = np.zeros(len(hashes), dtype=bool)
    kept: list[int] = []
    for i, h in enumerate(hashes):
        if kept and int(np.bitwise_count(hashes[kept] ^ h).min()) <= max_bits:
            dup[i] = True
        else:
            kept.append(i)
    return dup


def layout(root: Path, fmt: str) -> Path:
    return _release_dir(root) / "meta" / "meta.csv"


def load(root: Path, fmt: str) -> Dataset:
    release = _release_dir(root)
    meta = release / "meta" / "meta.csv"
    images_dir = release / "images"
    column = COLUMN[fmt]
    index = _case_insensitive_index(images_dir)
    dropped: Counter[str] = Counter()
    rows: list[tuple[int, int, str, int, Path, str]] = []  # case_num, line, diagnosis, label, path, rel
    for line, row in read_csv_rows(meta, ("case_num", "diagnosis", column)):
        rule = label_of(row["diagnosis"])
        if rule is None:
            raise InputError(f"{meta}, line {line}: unknown diagnosis {row['diagnosis']!r}")
        if isinstance(rule, str):
            dropped[rule] += 1
            continue
        rel = row[column].replace("\\", "/").strip("/")
        if not rel:
            raise InputError(f"{meta}, line {line}: empty {column} column")
        path = index.get(rel.lower())
        if path is None:
            raise InputError(f"{meta}, line {line}: image file not found: {images_dir / rel} (any case)")
        try:
            case_num = int(row["case_num"])
        except ValueError:
            raise InputError(f"{meta}, line {line}: case_num {row['case_num']!r} is not an integer") from None
        rows.append((case_num, line, row["diagnosis"].strip(), rule, path, rel))
    rows.sort(key=lambda r: (r[0], r[1]))
    dup = near_duplicates(phash_bits([r[4] for r in rows])) if rows else np.zeros(0, dtype=bool)
    dropped["near-duplicate"] += int(dup.sum())
    records = [
        LesionRecord(
            image=path.resolve(),
            label=label,
            diagnosis=diagnosis,
            source=fmt,
            image_id=rel,
            lesion_id=f"case{case_num}",
        )
        for (case_num, _, diagnosis, label, path, rel), is_dup in zip(rows, dup, strict=True)
        if not is_dup
    ]
    return finish_dataset(fmt, root, records, dropped, meta)
