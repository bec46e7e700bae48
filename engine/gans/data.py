"""The GAN's training data: the training part of the classifier's split, decoded once at the GAN's resolution.

A GAN trains on exactly the images the classifier may train on (``data.split_seed`` or ``data.split_file``,
resolved by ``engine.data.split.resolve_split``); validation and test images never reach it, which
:func:`load_training_data` asserts before a pixel is read. Pixels come from the shared decoded-image cache
(``engine.data.cache.ImageCache``) and go to the device through the classifier's own batch path
(``host_batch`` + ``Augmenter.to_float``), so there is one copy of that code.

Translation families (pix2pixHD, SPADE) also need label maps: they fill ``GanData.maps`` (uint8 class-index
maps, one per image) and :meth:`GanData.batch` hands them over one-hot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.data.records import LesionRecord
from engine.gans._registry import GanBatch


@dataclass
class GanData:
    """Training images (uint8 (N, R, R, 3), memory-mapped), labels (1 = melanoma), the records they came from."""

    records: list[LesionRecord]
    images: np.ndarray
    labels: np.ndarray
    split_file: Path
    maps: np.ndarray | None = None  # translation families: uint8 (N, R, R) label maps
    n_map_classes: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def res(self) -> int:
        return int(self.images.shape[1])

    def batch(self, index: np.ndarray, device: torch.device) -> GanBatch:
        """Rows ``index`` as a GanBatch on ``device``: images float NCHW in [-1, 1]."""
        from engine.train.augment import Augmenter
        from engine.train.config import AugmentConfig
        from engine.train.pipeline import host_batch

        index = np.sort(np.asarray(index))  # sequential reads from the memory map
        pin = device.type == "cuda"
        x = Augmenter(AugmentConfig(preset="none"), device=device).to_float(host_batch(self.images, index, pin))
        labels = torch.as_tensor(self.labels[index], dtype=torch.long).to(device)
        maps = None
        if self.maps is not None:
            m = torch.from_numpy(np.ascontiguousarray(self.maps[index])).to(device).long()
            maps = torch.nn.functional.one_hot(m, self.n_map_classes).permute(0, 3, 1, 2).float()
        return GanBatch(x * 2 - 1, labels, maps)


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
