"""The GAN's training data: the training part of the classifier's split, decoded once at the GAN's resolution.

A GAN trains on exactly the images the classifier may train on (``data.split_seed`` or ``data.split_file``,
resolved by ``engine.data.split.resolve_split``); validation and test images never reach it, which
:func:`load_training_data` asserts before a pixel is read. Pixels come from the shared decoded-image cache
(``engine.data.cache.ImageCache``) and go to the device through the classifier's own batch path
(``host_batch`` + ``Augmenter.to_float``), so there is one copy of that code.

Translation families (pix2pixHD, SPADE) train on the ISIC 2018 attribute masks (``isic2018-masks``) of the
training images of the classifier's ISIC 2019 split (:func:`load_translation_data`): ``GanData.maps`` holds
their uint8 label maps (one per image, cached at the GAN's resolution) and :meth:`GanData.batch` hands them
over one-hot, plus the boundary channel where the family uses one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.data.records import LesionRecord
from engine.gans._registry import GanBatch

if TYPE_CHECKING:
    from engine.data.split import Split


@dataclass
class GanData:
    """Training images (uint8 (N, R, R, 3), memory-mapped), labels (1 = melanoma), the records they came from."""

    records: list[LesionRecord]
    images: np.ndarray
    labels: np.ndarray
    split_file: Path
    maps: np.ndarray | None = None  # translation families: uint8 (N, R, R) label maps
    boundary: bool = False  # translation families: add the boundary channel to the one-hot maps

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray, device: torch.device) -> GanBatch:
        """Rows ``index`` as a GanBatch on ``device``: images float NCHW in [-1, 1]."""
        from engine.train.augment import Augmenter
        from engine.train.config import AugmentConfig
        from engine.train.pipeline import host_batch

        index = np.sort(np.asarray(index))  # sequential reads from the memory map
        pin = device.type == "cuda"
        x = Augmenter(AugmentConfig(preset="none"), device=device).to_float(host_batch(self.images, index, pin))
        labels = torch.as_tensor(self.labels[index], dtype=torch.long).to(device)
        maps = None if self.maps is None else self.encoded_maps(index, device)
        return GanBatch(x * 2 - 1, labels, maps)

    def encoded_maps(self, index: np.ndarray, device: torch.device) -> torch.Tensor:
        """The label maps of rows ``index`` as a translation family's float input, on ``device``."""
        from engine.gans.translation import encode_maps

        assert self.maps is not None
        m = torch.from_numpy(np.ascontiguousarray(self.maps[np.asarray(index)])).to(device)
        return encode_maps(m, self.boundary)


def training_split(workspace: Path, data: dict[str, Any], log: logging.Logger | None = None
                   ) -> tuple[list[LesionRecord], Path]:
    """The training part of the run's split (``data`` = ``{"format", "root", "split_seed", "split_file"}``),
    after asserting that no validation or test image is in it."""
    from engine.data import load_dataset
    from engine.data.split import resolve_split

    records = load_dataset(data["format"], data["root"]).records
    split, split_file = resolve_split(workspace, data["format"], records, split_seed=data.get("split_seed", 0),
                                      split_file=data.get("split_file"), log=log)
    held_out = {r.image_id for r in (*split.val, *split.test)} | {Path(r.image).resolve() for r in
                                                                   (*split.val, *split.test)}
    leaked = [r.image_id for r in split.train if r.image_id in held_out or Path(r.image).resolve() in held_out]
    if leaked:  # cannot happen with a valid split; a GAN must never see such an image
        raise RuntimeError(f"{split_file}: training images {leaked[:3]} are also validation/test images")
    return list(split.train), split_file


def load_training_data(workspace: Path, data: dict[str, Any], res: int, log: logging.Logger | None = None) -> GanData:
    """Records, labels and decoded pixels (through the workspace's image cache) of the training split."""
    from engine.data.cache import ImageCache
    from engine.errors import InputError

    records, split_file = training_split(workspace, data, log)
    if not records:
        raise InputError(f"data: the training split of {data['root']} is empty")
    images = ImageCache(Path(workspace) / "cache" / "images").load([r.image for r in records], res)
    labels = np.array([r.label for r in records], dtype=np.int64)
    return GanData(records, images, labels, split_file)


def translation_split(workspace: Path, data: dict[str, Any], log: logging.Logger | None = None
                      ) -> tuple[Split, Path]:
    """The classifier's split of the ISIC 2019 training data, whose training images' masks a translation GAN
    uses: ``data.split_file`` (read from the CSV alone) or the workspace's persisted split of the ISIC 2019
    data at ``data.split_data`` with ``data.split_seed``: the very file a classify run of that data writes."""
    from engine.data import load_dataset
    from engine.data.split import Split, persisted_split
    from engine.errors import InputError

    if data.get("split_file"):
        path = Path(data["split_file"]).expanduser()
        if not path.is_file():
            raise InputError(f"data.split_file: split file {str(path)!r} not found")
        return Split.from_csv(path), path
    if not data.get("split_data"):
        raise InputError("data: a translation GAN's masks are filtered by the classifier's split of the ISIC 2019 "
                         "training data: give --split-data ISIC2019_ROOT [--split-seed K] or --split-file SPLIT.csv")
    records = load_dataset("isic2019", Path(data["split_data"])).records
    return persisted_split(workspace, "isic2019", records, data.get("split_seed", 0), log)


def translation_masks(workspace: Path, data: dict[str, Any], log: logging.Logger | None = None
                      ) -> tuple[list[LesionRecord], Path]:
    """The mask records (``data.format`` / ``data.root``) of the training images of the split
    (:func:`translation_split`), in id order; each record's label is its image's class (ISIC 2019 truth)."""
    return masks_in_split(data, *translation_split(workspace, data, log), log)


def masks_in_split(data: dict[str, Any], split: Split, split_file: Path, log: logging.Logger | None = None
                   ) -> tuple[list[LesionRecord], Path]:
    """:func:`translation_masks` for a split already at hand (the audit also needs its validation part)."""
    from engine.data import load_dataset
    from engine.data.masks import check_training_only, training_masks
    from engine.errors import InputError

    masks = load_dataset(data["format"], Path(data["root"])).records
    records, left_out = training_masks(masks, split, str(split_file))
    if not records:
        raise InputError(f"data: none of the {len(masks)} masks under {data['root']} belongs to a training image of "
                         f"the split {split_file} ({', '.join(f'{k}: {v}' for k, v in left_out.items())})")
    if log is not None:
        log.info("%d training masks of %d (left out: %s)", len(records), len(masks),
                 ", ".join(f"{v} {k}" for k, v in sorted(left_out.items())) or "none")
    check_training_only(records, split)  # the guard before any mask reaches a GAN
    return records, split_file


def load_translation_data(workspace: Path, data: dict[str, Any], res: int, boundary: bool,
                          log: logging.Logger | None = None) -> GanData:
    """The training masks (:func:`translation_masks`), their label maps and real images at ``res``."""
    from engine.data.cache import ImageCache
    from engine.data.masks import LabelMapCache

    records, split_file = translation_masks(workspace, data, log)
    cache = Path(workspace) / "cache"
    maps = LabelMapCache(cache / "labelmaps").load(records, res)
    images = ImageCache(cache / "images").load([r.image for r in records], res)
    labels = np.array([r.label for r in records], dtype=np.int64)
    return GanData(records, images, labels, split_file, maps=maps, boundary=boundary)
