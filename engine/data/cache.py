"""Decoded-image cache: every image is decoded and resized once per resolution, then served from memory maps.

Layout under ``root`` (e.g. ``<workspace>/cache/images``), one folder per resolution::

    res<R>/index.json          {"entries": {key: [shard, row]}, "files": {abs path: [size, mtime_ns, key]}}
    res<R>/shard-<uuid>.npy    uint8 (n, R, R, 3) RGB, immutable once renamed into place
    res<R>/sets/<digest>.npy   an ordered copy of the rows of one requested path list (see ``load``)
    res<R>/index.lock          flock'ed while the index is merged

``key`` is the BLAKE2b hash of the file's bytes, so copies of a data set share entries and a changed file
gets a new key (a miss). Hashing 20k JPEGs on every load would cost a full read of the data set, so the
hash is memoised per path with the file's size and mtime_ns: a changed file changes those and is re-hashed.

Two sources, one store: image files (``load``) and images given as pixels (``load_arrays``: a GAN pool's uint8
images at the GAN's resolution). An array image is keyed by the hash of its pixels and shape (``pixel_key``),
resized with the same filter as a file and served from the same shards, so a classifier reads real and
synthetic images through one loader and one augmentation path.

Concurrency: shards and set files are written under a temporary name and renamed; the index is re-read and
merged under an exclusive ``flock`` and replaced atomically, so concurrent processes never corrupt it and
readers never lock. Two processes that miss the same image at the same moment both decode it; the first
merge wins and the loser's entries are simply not indexed.

Resizing squashes the aspect ratio to R x R (the paper "resizes to 299x299") with PIL's bilinear filter,
which widens its support when downscaling (antialiased). JPEGs are first reduced by the decoder's DCT
scaling (``Image.draft``) to the smallest size still >= R, which decodes large photographs several times
faster; PNGs are decoded in full.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.errors import InputError
from engine.fsutil import atomic_path, atomic_write_json

T = TypeVar("T")
R = TypeVar("R")
_CHUNK = 256  # images decoded per batch of pool work: bounds memory held by finished-but-unwritten results


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _pool_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``map`` over a thread pool in order, a chunk at a time (PIL and hashlib release the GIL)."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), _CHUNK):
            yield from pool.map(fn, items[start : start + _CHUNK])


def _squash(image: Any, res: int) -> Any:
    """A PIL image squashed to ``res`` x ``res`` (the paper resizes to 299x299), bilinear with a widened
    support when downscaling (antialiased); the one resize every cached image goes through."""
    from PIL import Image

    return image if image.size == (res, res) else image.resize((res, res), Image.Resampling.BILINEAR)


def resize_pixels(image: np.ndarray, res: int) -> np.ndarray:
    """A uint8 (h, w, 3) image squashed to ``res`` x ``res`` exactly as a decoded file would be."""
    from PIL import Image

    return np.asarray(_squash(Image.fromarray(np.ascontiguousarray(image)), res), dtype=np.uint8)


def pixel_key(image: np.ndarray) -> str:
    """Content hash of an image given as pixels (BLAKE2b-128 of its shape and uint8 bytes, hex).

    Never equal to a ``file_key`` in practice (other bytes are hashed), so array and file entries share an index.
    """
    h = hashlib.blake2b(digest_size=16, person=b"ganaug-pixels")
    h.update(np.asarray(image.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(image, dtype=np.uint8).data)
    return h.hexdigest()


def pixel_keys(images: Any, workers: int | None = None) -> list[str]:
    """``pixel_key`` of every image of a uint8 (N, h, w, 3) array-like (a memory map, a pool's images),
    read a chunk at a time."""
    n = len(images)
    out: list[str] = []
    for start in range(0, n, _CHUNK):
        chunk = np.asarray(images[start:min(start + _CHUNK, n)])
        out += _pool_map(pixel_key, list(chunk), workers or _workers())
    return out


def decode_image(path: Path, res: int | None) -> np.ndarray:
    """RGB uint8 array of ``path``, squashed to ``res`` x ``res`` unless ``res`` is None.

    A missing, corrupt or truncated file raises InputError naming it (PIL's ``load`` detects truncation,
    unlike ``verify``).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            if res is not None and im.format == "JPEG":
                im.draft("RGB", (res, res))
            rgb = im.convert("RGB")
            return np.asarray(rgb if res is None else _squash(rgb, res), dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: corrupt or truncated image ({exc})") from None


def verify_files(paths: Sequence[Path], workers: int | None = None) -> None:
    """Fully decode every image once (threaded) and keep nothing: a corrupt file raises InputError."""
    for _ in _pool_map(lambda p: decode_image(p, None).shape, paths, workers or _workers()):
        pass


def file_key(path: Path) -> str:
    """Content hash of a file (BLAKE2b-128, hex)."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except FileNotFoundError:
        raise InputError(f"{path}: image file not found") from None
    return h.hexdigest()


@dataclass
class CacheStats:
    """Requested images served from the cache (hits) and images decoded (misses), since construction."""

    hits: int = 0
    misses: int = 0


class ImageCache:
    """Memory-mapped uint8 shards of resized images keyed by (file content hash, resolution)."""

    def __init__(self, root: Path, workers: int | None = None):
        self.root = Path(root)
        self.workers = workers or _workers()
        self.stats = CacheStats()
        self._maps: dict[Path, np.ndarray] = {}

    def load(self, paths: Sequence[Path], res: int) -> np.ndarray:
        """Images of ``paths`` as one read-only (N, res, res, 3) uint8 RGB array backed by a memory map.

        The result is a slice of a shard when the rows happen to be stored contiguously in that order (e.g.
        the first load of a list: its misses are written in request order), otherwise an ordered copy in
        ``sets/`` named by the hash of the key list, reused by every later load of the same list. Index it
        per batch (``arr[idx]`` copies just those rows); load a whole split once and index subsets of it
        rather than loading many different lists, each of which materialises its own set file.
        """
        d = self._dir(res)
        paths = [Path(p).absolute() for p in paths]
        index = _read_index(d)
        keys, memo = self._keys(paths, index["files"])
        path_of = dict(zip(keys, paths, strict=True))
        return self._serve(d, index, keys, lambda k: decode_image(path_of[k], res), res, memo)

    def load_arrays(self, images: Any, res: int) -> np.ndarray:
        """Images given as pixels, as one read-only (N, res, res, 3) uint8 array: the array source.

        ``images`` is a uint8 (N, h, w, 3) array-like that supports slices and integer indexing (a numpy array,
        a memory map, ``engine.synth.pool.Pool.images``). Each image is keyed by ``pixel_key`` (its pixels and
        shape: the same picture from two pools is one entry), squashed to ``res`` with the filter files get
        (``resize_pixels``) on a miss, and served exactly like ``load`` serves files.
        """
        shape = tuple(getattr(images, "shape", ()))
        if len(shape) != 4 or shape[3] != 3 or np.dtype(getattr(images, "dtype", None)) != np.uint8:
            raise ValueError(f"load_arrays needs uint8 (N, h, w, 3) images, got {getattr(images, 'dtype', None)} "
                             f"{shape}")
        d = self._dir(res)
        keys = pixel_keys(images, self.workers)
        row_of = {k: i for i, k in reversed(list(enumerate(keys)))}
        return self._serve(d, _read_index(d), keys, lambda k: resize_pixels(images[row_of[k]], res), res, {})

    def _dir(self, res: int) -> Path:
        if res < 1:
            raise ValueError(f"res must be positive, got {res}")
        return self.root / f"res{res}"

    def _serve(self, d: Path, index: dict[str, Any], keys: list[str], produce: Callable[[str], np.ndarray],
               res: int, memo: dict[str, list[Any]]) -> np.ndarray:
        """The rows of ``keys``: misses are made by ``produce(key)`` into a new shard, then all are assembled."""
        entries: dict[str, list[Any]] = index["entries"]
        shards = _shard_names(d)
        missing = list(dict.fromkeys(k for k in keys if entries.get(k, [None])[0] not in shards))
        miss_set = set(missing)
        self.stats.misses += len(missing)
        self.stats.hits += sum(k not in miss_set for k in keys)
        new: dict[str, list[Any]] = {}
        if missing:
            shard = self._write_shard(d, missing, produce, res)
            new = {k: [shard.name, i] for i, k in enumerate(missing)}
        if new or memo:
            entries = self._merge(d, new, memo)
        if new and all(entries[k][0] != shard.name for k in new):
            shard.unlink()  # another process indexed all of these first
        return self._assemble(d, [entries[k] for k in keys], keys, res)

    # -- keys ------------------------------------------------------------------------------------------
    def _keys(self, paths: list[Path], files: dict[str, list[Any]]) -> tuple[list[str], dict[str, list[Any]]]:
        """Content key per path, re-hashing only files whose (size, mtime_ns) changed; returns the new memos."""
        stats: dict[Path, list[int]] = {}
        for p in dict.fromkeys(paths):
            try:
                st = p.stat()
            except FileNotFoundError:
                raise InputError(f"{p}: image file not found") from None
            stats[p] = [st.st_size, st.st_mtime_ns]
        stale = [p for p, s in stats.items() if files.get(str(p), [None, None])[:2] != s]
        memo = {str(p): [*stats[p], k] for p, k in zip(stale, _pool_map(file_key, stale, self.workers), strict=True)}
        known = {**files, **memo}
        return [known[str(p)][2] for p in paths], memo

    # -- shards ----------------------------------------------------------------------------------------
    def _write_shard(self, d: Path, keys: list[str], produce: Callable[[str], np.ndarray], res: int) -> Path:
        shard = d / f"shard-{uuid.uuid4().hex}.npy"
        with atomic_path(shard) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(keys), res, res, 3))
            for i, img in enumerate(_pool_map(produce, keys, self.workers)):
                out[i] = img
            out.flush()
            del out
        return shard

    def _map(self, path: Path) -> np.ndarray:
        if path not in self._maps:
            self._maps[path] = np.load(path, mmap_mode="r")
        return self._maps[path]

    def _merge(self, d: Path, new: dict[str, list[Any]], memo: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Add our entries and hash memos to the on-disk index under the lock; returns the merged entries."""
        with _locked(d):
            index = _read_index(d)
            shards = _shard_names(d)
            for k, v in new.items():
                current = index["entries"].get(k)
                if current is None or current[0] not in shards:
                    index["entries"][k] = v
            index["files"].update(memo)
            atomic_write_json(d / "index.json", index)
        return index["entries"]

    def _assemble(self, d: Path, where: list[list[Any]], keys: list[str], res: int) -> np.ndarray:
        if not where:
            return np.zeros((0, res, res, 3), dtype=np.uint8)
        shards = {w[0] for w in where}
        rows = np.array([w[1] for w in where])
        if len(shards) == 1 and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            return self._map(d / where[0][0])[rows[0] : rows[0] + len(rows)]
        digest = hashlib.blake2b("\n".join(keys).encode(), digest_size=16).hexdigest()
        target = d / "sets" / f"{digest}.npy"
        if not target.is_file():
            with atomic_path(target) as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(where), res, res, 3))
                for name in sorted(shards):
                    sel = np.array([i for i, w in enumerate(where) if w[0] == name])
                    out[sel] = self._map(d / name)[rows[sel]]
                out.flush()
                del out
        return self._map(target)


def _shard_names(d: Path) -> set[str]:
    return {p.name for p in d.glob("shard-*.npy")}


def _read_index(d: Path) -> dict[str, Any]:
    try:
        index = json.loads((d / "index.json").read_text())
    except FileNotFoundError:
        return {"entries": {}, "files": {}}
    except (OSError, ValueError) as exc:
        raise InputError(f"{d / 'index.json'}: unreadable image-cache index ({exc}); delete the folder") from None
    return index


@contextmanager
def _locked(d: Path) -> Iterator[None]:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "index.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
