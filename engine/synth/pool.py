"""A pool of synthetic images on disk: what ``gan-pool`` writes and samplers, the audit and the classifier read.

Layout under a pool run's folder (``<workspace>/<run-id>/pool/``)::

    shard-00000.npy    uint8 (n, R, R, 3) RGB, immutable once renamed into place (n = shard_size but the last)
    shard-00000.csv    that shard's rows of pool.csv, written just before the shard itself
    pool.csv           id,label,class,gan_run,checkpoint,seed,source_mask - one row per image, in storage order
    pool.json          {"res", "shard_size", "n", "per_class": {"benign", "melanoma"}, "complete": true, ...}

Row ``i`` of ``pool.csv`` is row ``i % shard_size`` of shard ``i // shard_size``. Ids are stable and never
reused: ``b000042`` is the 43rd benign image, ``m000007`` the 8th melanoma (``label`` 1 = melanoma, as
everywhere in ganaug). Noise GANs record the seed that made each image (``source_mask`` empty); translation
GANs the image id of the mask it was translated from (``seed`` empty).

Shards are written one at a time (temporary name, then rename), so a pool interrupted mid-way resumes from
its first missing shard and the result is the same pool; ``pool.csv`` and ``pool.json`` appear last, when
every shard is there (their presence means the pool is complete).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.fsutil import atomic_path, atomic_write_json, atomic_write_text

POOL_DIR = "pool"
COLUMNS = ("id", "label", "class", "gan_run", "checkpoint", "seed", "source_mask")
CLASS_NAMES = ("benign", "melanoma")  # index = label
SHARD_SIZE = 4096


def pool_id(label: int, index: int) -> str:
    """The stable id of the ``index``-th image of class ``label`` (``b000042``, ``m000007``)."""
    return f"{CLASS_NAMES[label][0]}{index:06d}"


@dataclass(frozen=True)
class PoolRow:
    """One image's metadata (``seed`` for noise GANs, ``source_mask`` for translation GANs)."""

    id: str
    label: int
    gan_run: str
    checkpoint: str
    seed: int | None = None
    source_mask: str | None = None

    def cells(self) -> list[str]:
        return [self.id, str(self.label), CLASS_NAMES[self.label], self.gan_run, self.checkpoint,
                "" if self.seed is None else str(self.seed), self.source_mask or ""]


def _csv_text(rows: Sequence[PoolRow], header: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(COLUMNS)
    w.writerows(r.cells() for r in rows)
    return buf.getvalue()


class PoolWriter:
    """Writes a pool shard by shard; ``next_shard`` tells a resumed run where to continue."""

    def __init__(self, run_dir: Path, res: int, shard_size: int = SHARD_SIZE) -> None:
        self.dir = Path(run_dir) / POOL_DIR
        self.res = res
        self.shard_size = shard_size
        self.dir.mkdir(parents=True, exist_ok=True)

    def shard_path(self, k: int) -> Path:
        return self.dir / f"shard-{k:05d}.npy"

    @property
    def next_shard(self) -> int:
        """Index of the first shard not yet on disk (shards are written in order)."""
        k = 0
        while self.shard_path(k).is_file() and self.shard_path(k).with_suffix(".csv").is_file():
            k += 1
        return k

    def write_shard(self, k: int, images: np.ndarray, rows: Sequence[PoolRow]) -> None:
        """Shard ``k``: uint8 (n, res, res, 3) images and their n rows (metadata first, then the pixels)."""
        if images.dtype != np.uint8 or images.shape[1:] != (self.res, self.res, 3) or len(images) != len(rows):
            raise ValueError(f"shard {k}: expected {len(rows)} uint8 images of {self.res}x{self.res}x3, "
                             f"got {images.dtype} {images.shape}")
        atomic_write_text(self.shard_path(k).with_suffix(".csv"), _csv_text(rows, header=False))
        with atomic_path(self.shard_path(k)) as tmp:
            np.save(tmp, np.ascontiguousarray(images))

    def finish(self, n_shards: int, info: dict[str, Any] | None = None) -> Path:
        """Concatenate the shard rows into ``pool.csv`` and write ``pool.json``; returns the pool folder."""
        parts = [self.shard_path(k).with_suffix(".csv").read_text() for k in range(n_shards)]
        text = ",".join(COLUMNS) + "\n" + "".join(parts)
        atomic_write_text(self.dir / "pool.csv", text)
        rows = [line.split(",") for line in "".join(parts).splitlines()]
        per_class = {name: sum(r[1] == str(i) for r in rows) for i, name in enumerate(CLASS_NAMES)}
        atomic_write_json(self.dir / "pool.json", {
            **(info or {}), "res": self.res, "shard_size": self.shard_size, "n": len(rows),
            "per_class": per_class, "shards": n_shards, "complete": True})
        return self.dir


class PoolImages:
    """Array-like view of every image of a pool: ``images[index]`` gathers rows from the shard memory maps."""

    def __init__(self, shards: list[np.ndarray], shard_size: int) -> None:
        self._shards = shards
        self._size = shard_size
        n = sum(len(s) for s in shards)
        self.shape = (n, *shards[0].shape[1:]) if shards else (0, 0, 0, 3)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        index = np.asarray(index, dtype=np.int64)
        if index.ndim == 0:
            return self[index[None]][0]
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"pool row out of range (pool has {len(self)} images)")
        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)
        shard, row = np.divmod(index, self._size)
        for k in np.unique(shard):
            sel = shard == k
            out[sel] = self._shards[k][row[sel]]
        return out


class Pool:
    """A complete pool, read-only: metadata in memory, pixels memory-mapped."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir) / POOL_DIR
        info_path = self.dir / "pool.json"
        if not info_path.is_file():
            raise InputError(f"{self.dir}: not a complete pool (no pool.json); is the gan-pool run finished?")
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        with open(self.dir / "pool.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        self.ids: list[str] = [r["id"] for r in rows]
        self.labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
        self.rows = rows
        self._row_of = {pid: i for i, pid in enumerate(self.ids)}
        shards = [np.load(self.dir / f"shard-{k:05d}.npy", mmap_mode="r") for k in range(self.info["shards"])]
        self.images = PoolImages(shards, self.info["shard_size"])
        if len(self.images) != len(self.ids):
            raise InputError(f"{self.dir}: pool.csv lists {len(self.ids)} images, the shards hold {len(self.images)}")

    @property
    def res(self) -> int:
        return int(self.info["res"])

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, ids: Sequence[str], where: str = "ids") -> np.ndarray:
        """Storage rows of ``ids``; an id the pool does not hold is an InputError naming ``where``."""
        try:
            return np.array([self._row_of[i] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise InputError(f"{where}: pool id {exc.args[0]!r} is not in the pool {self.dir}") from None
