"""ISIC 2018 Task 1 + Task 2 masks assembled into one label map per image, the input of pix2pixHD / SPADE.

Labels: 0 pad, 1 skin, 2 lesion, 3 pigment network, 4 negative network, 5 streaks, 6 milia-like cyst,
7 globules. Masks are painted in that order, so where attributes overlap the later (higher) label wins:
the small focal structures (milia-like cysts, globules) sit on top of the network patterns that surround
them and would otherwise vanish from the map.

Pad is the part of the frame with no skin in it: the black dermoscope vignette / letterbox around many
ISIC images. It is found on the image: pixels outside the lesion whose brightest channel is at most
``PAD_LEVEL`` and that are connected to the image border. Everything else outside the lesion is skin.

The GANs see label maps at their own resolution: ``LabelMapCache`` resizes each map with NEAREST (labels are
categories, never interpolated) and keeps it on disk, because decoding one means reading the full-size image
and six masks. ``training_masks`` keeps only the masks of images in the training part of the classifier's
split: a validation or test image's mask never reaches a GAN.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.data.formats.isic2018_masks import ATTRIBUTES
from engine.data.records import LesionRecord
from engine.errors import InputError
from engine.fsutil import atomic_path

if TYPE_CHECKING:
    from engine.data.split import Split

PAD, SKIN, LESION = 0, 1, 2
ATTRIBUTE_LABELS = {name: 3 + i for i, name in enumerate(ATTRIBUTES)}  # pigment_network 3 ... globules 7
LABEL_NAMES = ("pad", "skin", "lesion", *ATTRIBUTES)
PAD_LEVEL = 10
# Colours of the labels in sample grids: pad black, skin tan, lesion brown, then one distinct colour per attribute.
PALETTE = np.array([(0, 0, 0), (222, 190, 160), (128, 78, 48), (230, 25, 75), (60, 180, 75), (255, 225, 25),
                    (0, 130, 200), (145, 30, 180)], dtype=np.uint8)


def _binary(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            m = np.asarray(im.convert("L")) > 127
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or truncated mask ({exc})") from None
    if shape is not None and m.shape != shape:
        raise InputError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, the segmentation is {shape[1]}x{shape[0]}")
    return m


def _pad(record: LesionRecord, lesion: np.ndarray) -> np.ndarray:
    """Near-black pixels outside the lesion connected to the border (image resized to the masks if needed)."""
    from PIL import Image
    from scipy import ndimage

    from engine.data.cache import decode_image

    rgb = decode_image(record.image, None)
    if rgb.shape[:2] != lesion.shape:
        rgb = np.asarray(Image.fromarray(rgb).resize(lesion.shape[::-1], Image.Resampling.BILINEAR))
    dark = (rgb.max(axis=2) <= PAD_LEVEL) & ~lesion
    components, _ = ndimage.label(dark)
    border = np.unique(np.concatenate([components[0], components[-1], components[:, 0], components[:, -1]]))
    return np.isin(components, border[border > 0])


def label_map(record: LesionRecord) -> np.ndarray:
    """(H, W) uint8 label map of a record of the ``isic2018-masks`` format (see the module doc)."""
    missing = [m for m in ("segmentation", *ATTRIBUTES) if m not in record.masks]
    if missing:
        raise InputError(f"{record.image}: record {record.image_id} has no {', '.join(missing)} mask")
    lesion = _binary(record.masks["segmentation"], None)
    out = np.full(lesion.shape, SKIN, dtype=np.uint8)
    out[_pad(record, lesion)] = PAD
    out[lesion] = LESION
    for name in ATTRIBUTES:
        out[_binary(record.masks[name], lesion.shape)] = ATTRIBUTE_LABELS[name]
    return out


def colour(labels: np.ndarray) -> np.ndarray:
    """(..., H, W) label maps as (..., H, W, 3) uint8 RGB in ``PALETTE``'s colours."""
    return PALETTE[np.asarray(labels)]


def resized_label_map(record: LesionRecord, res: int) -> np.ndarray:
    """``label_map`` squashed to ``res`` x ``res`` like the image cache squashes images, but NEAREST."""
    from PIL import Image

    return np.asarray(Image.fromarray(label_map(record)).resize((res, res), Image.Resampling.NEAREST))


def _bare_id(image_id: str) -> str:
    return image_id.removesuffix("_downsampled")  # ISIC 2019 renamed some ISIC 2018 images <id>_downsampled


def training_masks(records: Sequence[LesionRecord], split: Split, where: str) -> tuple[list[LesionRecord],
                                                                                         dict[str, int]]:
    """The mask records whose image is in the training part of ``split`` (the classifier's split of the
    ISIC 2019 data), and how many others were left out, by reason.

    Ids match with ISIC 2019's ``_downsampled`` suffix ignored. A training image whose label in the split
    differs from the mask record's is an InputError naming ``where`` (the split file or data root): the two
    come from different versions of the ground truth. Masks of validation or test images, and of images the
    split does not know, are left out.
    """
    part_of = {_bare_id(r.image_id): (name, r.label) for name, part in split.parts().items() for r in part}
    kept: list[LesionRecord] = []
    left_out: Counter[str] = Counter()
    for r in records:
        part, label = part_of.get(_bare_id(r.image_id), ("not in the split", None))
        if part != "train":
            left_out[f"image in {part}" if part in ("val", "test") else part] += 1
            continue
        if label != r.label:
            raise InputError(f"{where}: image {r.image_id} has label {label} in the split but {r.label} in the "
                             f"masks' ground truth (different versions of the ISIC 2019 labels?)")
        kept.append(r)
    check_training_only(kept, split)
    return kept, dict(left_out)


def check_training_only(records: Sequence[LesionRecord], split: Split) -> None:
    """Guard before any mask reaches a GAN: every record's image is a training image of ``split``."""
    train = {_bare_id(r.image_id) for r in split.train}
    held_out = {_bare_id(r.image_id) for r in (*split.val, *split.test)}
    leaked = [r.image_id for r in records if _bare_id(r.image_id) in held_out or _bare_id(r.image_id) not in train]
    if leaked:
        raise AssertionError(f"masks of images outside the training split reached a GAN: {', '.join(leaked[:5])}")


class LabelMapCache:
    """Label maps at R x R as uint8 ``.npy`` files, one per record: ``<root>/res<R>/<key>.npy``.

    ``key`` hashes the path, size and mtime_ns of the record's image and its six masks (the image cache's
    change test: a replaced or edited file is a miss). Files are written under a temporary name and renamed,
    so concurrent runs that miss the same map both compute it and one rename wins; readers never lock.
    """

    def __init__(self, root: Path, workers: int | None = None) -> None:
        from engine.data.cache import _workers

        self.root = Path(root)
        self.workers = workers or _workers()
        self.misses = 0

    def key(self, record: LesionRecord) -> str:
        h = hashlib.blake2b(digest_size=16)
        for path in (record.image, *(record.masks[m] for m in sorted(record.masks))):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise InputError(f"{path}: file of mask record {record.image_id} not found") from None
            h.update(f"{Path(path).absolute()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def load(self, records: Sequence[LesionRecord], res: int) -> np.ndarray:
        """(N, res, res) uint8 label maps of ``records``, in order (decoded only where not cached)."""
        from engine.data.cache import _pool_map

        d = self.root / f"res{res}"
        paths = [d / f"{self.key(r)}.npy" for r in records]
        missing = [(r, p) for r, p in zip(records, paths, strict=True) if not p.is_file()]
        self.misses += len(missing)
        if missing:
            d.mkdir(parents=True, exist_ok=True)

            def make(item: tuple[LesionRecord, Path]) -> None:
                with atomic_path(item[1]) as tmp:
                    np.save(tmp, resized_label_map(item[0], res))

            for _ in _pool_map(make, missing, self.workers):
                pass
        out = np.empty((len(records), res, res), dtype=np.uint8)
        for i, p in enumerate(paths):
            out[i] = np.load(p)
        return out
