"""The perceptual hash (pHash) of many images at once, bit for bit what ``imagehash.phash`` returns.

``imagehash.phash(img)`` (hash_size 8, highfreq_factor 4) is ``img.convert("L").resize((32, 32), LANCZOS)``,
then ``scipy.fftpack.dct`` along both axes, the top-left 8x8 coefficients compared (``>``) with their median,
the 64 bits read row by row. ~85 % of its time is Pillow's resize, one image at a time. Here the same steps
run on batches of same-size images:

- ``convert("L")`` from RGB is Pillow's fixed-point ITU-R 601-2 luma, ``(19595 R + 38470 G + 7471 B + 0x8000)
  >> 16``. Every partial sum is an integer below 2**24, so one float32 product per pixel is exact. Other modes
  (RGBA, P, LA, I;16, ...) go through Pillow's own ``convert("L")``.
- Pillow's resize of an 8-bit image is separable: per axis, Lanczos-3 weights with the support stretched by the
  downscale factor, normalised, rounded to 22-bit fixed point; each output is ``clip8((2**21 + sum) >> 22)``,
  rounded to uint8 between the passes. Pillow runs the horizontal pass first unless the vertical one shrinks
  much more (``H - 32 > 2 (W - 32)`` with H > 32; found by probing Pillow 13 on every shape up to 420 px). Here
  a pass is a few banded float32 matrix products per batch whose every product and partial sum is an integer
  below 2**24 (see ``_Pass``), so the result is exact whatever order BLAS adds them in.
- The DCT and the median are the very ``scipy.fftpack.dct`` / ``numpy.median`` calls imagehash makes, on a
  batch axis (a flat image's coefficients are rounding noise, so only the same code gives the same bits).

Batches run on threads (numpy, BLAS and pocketfft release the GIL), BLAS pinned to one thread each.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

HASH_SIZE = 8
SIDE = HASH_SIZE * 4  # imagehash's img_size = hash_size * highfreq_factor
BITS = HASH_SIZE * HASH_SIZE
_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit images
_ROUND = float(1 << (_PRECISION_BITS - 1))
_UNSCALE = 1.0 / (1 << _PRECISION_BITS)
_LANCZOS_SUPPORT = 3.0
_LUMA = np.array([19595.0, 38470.0, 7471.0], dtype=np.float32) / 65536  # ITU-R 601-2, Pillow's fixed point
_CHUNK_BYTES = 3 << 20  # float32 luma per batch of same-size images (a few MB: stays in cache)


def _lanczos(x: float) -> float:
    """Pillow's ``lanczos_filter``: sinc(x) * sinc(x / 3) on [-3, 3), evaluated with libm's sin as Pillow does."""
    def sinc(v: float) -> float:
        if v == 0.0:
            return 1.0
        v = v * math.pi
        return math.sin(v) / v

    return sinc(x) * sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


@lru_cache(maxsize=1024)
def resample_matrix(in_size: int, out_size: int = SIDE) -> np.ndarray:
    """(out_size, in_size) float64 matrix of Pillow's fixed-point Lanczos weights (``precompute_coeffs`` then
    ``normalize_coeffs_8bpc``), same operations in the same order so every weight is the same integer."""
    in0, in1 = 0.0, float(np.float32(in_size))  # the box is float in Pillow
    scale = filterscale = (in1 - in0) / out_size
    filterscale = max(filterscale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    ss = 1.0 / filterscale
    one = float(1 << _PRECISION_BITS)
    out = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = in0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = 0.0
        for w in weights:
            total += w
        for x, w in enumerate(weights):
            if total != 0.0:
                w /= total
            out[xx, xmin + x] = int(-0.5 + w * one) if w < 0 else int(0.5 + w * one)
    out.flags.writeable = False
    return out


def _horizontal_first(height: int, width: int) -> bool:
    """Pillow's pass order when both axes change (observed on Pillow 13, see the module doc)."""
    return not (height > SIDE and height - SIDE > 2 * (width - SIDE))


def _fixed_point(acc: np.ndarray) -> np.ndarray:
    """``clip8((2**21 + acc) >> 22)`` on exact float64 sums, in place."""
    acc += _ROUND
    acc *= _UNSCALE
    np.floor(acc, out=acc)
    return np.clip(acc, 0.0, 255.0, out=acc)


class _Pass:
    """One axis of the resize (``in_size`` -> 32) as exact float32 matrix products.

    float32 holds integers exactly only below 2**24, and a weight times a pixel reaches ~2**30, so each weight
    is split as ``high * 2**s + low``; with ``s`` chosen so that ``255 * sum|low|`` and ``255 * sum|high|``
    (plus the rounding terms of ``apply``) stay below 2**24 for every output, every product, partial sum and
    rounding step is an exact integer. The weights are banded (an output reads ~6x the scale factor inputs),
    so outputs go in groups of ``_GROUP`` that each multiply only the input span they read: ~2.5x fewer
    operations than one dense product at 256 -> 32. Where no ``s`` qualifies (downscales beyond ~10,000 px),
    one dense float64 product (exact below 2**53).
    """

    def __init__(self, in_size: int) -> None:
        weights = resample_matrix(in_size)
        used = np.flatnonzero(weights.any(axis=0))
        self.lo, self.hi = int(used[0]), int(used[-1]) + 1  # the inputs Pillow reads at all
        self.shift = self._split_shift(weights)
        self.dense = np.ascontiguousarray(weights.T) if self.shift is None else None
        self.groups: list[tuple[int, int, int, int, np.ndarray]] = []
        if self.shift is None:
            return
        for o0 in range(0, SIDE, _GROUP):
            rows = weights[o0:o0 + _GROUP]
            cols = np.flatnonzero(rows.any(axis=0))
            lo, hi = int(cols[0]), int(cols[-1]) + 1
            high, low = self._halves(rows[:, lo:hi], self.shift)
            self.groups.append((lo, hi, o0, o0 + len(rows),
                                np.ascontiguousarray(np.concatenate([high, low]).T, dtype=np.float32)))

    @staticmethod
    def _halves(weights: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
        step = float(1 << shift)
        high = np.round(weights / step)
        return high, weights - high * step

    @classmethod
    def _split_shift(cls, weights: np.ndarray) -> int | None:
        """The ``s`` whose halves keep every intermediate of ``apply`` an integer below 2**24 (None: none)."""
        limit = float(1 << 24)
        best: tuple[float, int] | None = None
        for shift in range(1, _PRECISION_BITS + 1):
            high, low = cls._halves(weights, shift)
            low_sum = 255 * np.abs(low).sum(axis=1).max() + _ROUND  # |low sum + 2**21|
            total = 255 * np.abs(high).sum(axis=1).max() + low_sum / (1 << shift)
            bound = max(low_sum, total)
            if bound < limit and (best is None or bound < best[0]):
                best = (bound, shift)
        return None if best is None else best[1]

    def apply(self, x: np.ndarray, start: int = 0) -> np.ndarray:
        """(m, k) float32 pixel values holding inputs ``start .. start + k`` -> (m, 32) float32, rounded as
        Pillow rounds (``start`` > 0 when the other pass already dropped inputs this one never reads)."""
        if self.dense is not None:
            return _fixed_point(x.astype(np.float64) @ self.dense[start:start + x.shape[1]]).astype(np.float32)
        high = np.empty((len(x), SIDE), dtype=np.float32)
        low = np.empty_like(high)
        for lo, hi, o0, o1, w in self.groups:
            r = x[:, lo - start:hi - start] @ w
            high[:, o0:o1] = r[:, :o1 - o0]
            low[:, o0:o1] = r[:, o1 - o0:]
        # floor((high * 2**s + low + 2**21) / 2**22) = floor((high + floor((low + 2**21) / 2**s)) / 2**(22 - s)):
        # every intermediate is an integer below 2**24 (or a power-of-two scaling of one), so float32 is exact.
        low += _ROUND
        low *= 1.0 / (1 << self.shift)  # type: ignore[operator]
        np.floor(low, out=low)
        high += low
        high *= 1.0 / (1 << (_PRECISION_BITS - self.shift))  # type: ignore[operator]
        np.floor(high, out=high)
        return np.clip(high, 0.0, 255.0, out=high)


_GROUP = 8


@lru_cache(maxsize=1024)
def _plan(in_size: int) -> _Pass:
    return _Pass(in_size)


def _transposed(x: np.ndarray) -> np.ndarray:
    """(n, a, b) -> contiguous (n * b, a): the other axis becomes the rows of one product."""
    n, a, b = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(n * b, a)


def _resize(luma: np.ndarray) -> np.ndarray:
    """(n, H, W) float32 luma (integers) -> (n, 32, 32) uint8, exactly Pillow's LANCZOS resize."""
    n, height, width = luma.shape
    hp = _plan(width) if width != SIDE else None
    vp = _plan(height) if height != SIDE else None
    if vp is None or (hp is not None and _horizontal_first(height, width)):
        x = luma if vp is None else luma[:, vp.lo:vp.hi]  # rows the vertical pass never reads are skipped
        rows = x.shape[1]
        if hp is not None:
            x = hp.apply(np.ascontiguousarray(x).reshape(n * rows, width)).reshape(n, rows, SIDE)
        if vp is not None:
            x = vp.apply(_transposed(x), vp.lo).reshape(n, SIDE, SIDE).transpose(0, 2, 1)
    else:
        x = luma if hp is None else luma[:, :, hp.lo:hp.hi]
        cols = x.shape[2]
        x = vp.apply(_transposed(x)).reshape(n, cols, SIDE)  # (n, cols, 32 rows)
        x = x.transpose(0, 2, 1) if hp is None else hp.apply(_transposed(x), hp.lo).reshape(n, SIDE, SIDE)
    return x.astype(np.uint8)


def _luma_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 (n, H, W, 3) -> float32 (n, H, W): Pillow's ``convert("L")``, exact (see the module doc).

    ``(Y + 0x8000) >> 16`` is computed as ``floor(Y / 65536 + 0.5)`` with the weights pre-scaled by 2**-16:
    scaling by a power of two keeps every product and sum exact, and saves a pass over the pixels."""
    y = rgb.reshape(-1, 3).astype(np.float32) @ _LUMA
    y += 0.5
    return np.floor(y, out=y).reshape(rgb.shape[:-1])


def hash_32(small: np.ndarray) -> np.ndarray:
    """uint8 (n, 32, 32) resized luma -> uint64 (n,) hashes: imagehash's DCT, median and bit order."""
    import scipy.fftpack

    n = len(small)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE].reshape(n, BITS)
    bits = low > np.median(low, axis=1)[:, None]
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64).ravel()


def _hash_batch(batch: np.ndarray) -> np.ndarray:
    """One batch of same-size uint8 images, (n, H, W, 3) RGB or (n, H, W) luma."""
    luma = _luma_rgb(batch) if batch.ndim == 4 else batch.astype(np.float32)
    small = _resize(luma) if luma.shape[1:] != (SIDE, SIDE) else luma.astype(np.uint8)
    return hash_32(small)


def _as_luma_or_rgb(im: Image.Image) -> np.ndarray:
    """A PIL image as the array ``_hash_batch`` takes: RGB pixels, or Pillow's own ``convert("L")``."""
    if im.mode == "RGB":
        return np.asarray(im)
    return np.asarray(im if im.mode == "L" else im.convert("L"))


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _run(batches: Sequence[Any], fn: Any, workers: int) -> list[np.ndarray]:
    """``fn`` over batches on ``workers`` threads, BLAS pinned to one thread per caller."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        if workers <= 1 or len(batches) <= 1:
            return [fn(b) for b in batches]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, batches))


def phash(images: Any, workers: int | None = None) -> np.ndarray:
    """64-bit pHash of each image as uint64, equal to ``int(str(imagehash.phash(img)), 16)``.

    ``images``: a uint8 array (or array-like with ``shape`` and slicing, such as ``Pool.images``) of shape
    (N, H, W, 3) RGB or (N, H, W) grayscale, read batch by batch; or a sequence of PIL images of any sizes and
    modes (grouped by size). ``workers``: threads (default: every core this process may use).
    """
    workers = workers or default_workers()
    shape = getattr(images, "shape", None)
    if shape is not None:
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 3) or np.dtype(images.dtype) != np.uint8:
            raise ValueError(f"phash: expected uint8 (N, H, W, 3) or (N, H, W), got {images.dtype} {tuple(shape)}")
        n = shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.uint64)
        step = max(1, _CHUNK_BYTES // (4 * shape[1] * shape[2]))
        spans = [(s, min(s + step, n)) for s in range(0, n, step)]
        return np.concatenate(_run(spans, lambda sp: _hash_batch(np.asarray(images[sp[0]:sp[1]])), workers))
    arrays = [_as_luma_or_rgb(im) for im in images]
    out = np.zeros(len(arrays), dtype=np.uint64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape, []).append(i)
    jobs = []
    for shape_key, idx in groups.items():
        step = max(1, _CHUNK_BYTES // (4 * shape_key[0] * shape_key[1]))
        jobs += [idx[s:s + step] for s in range(0, len(idx), step)]
    results = _run(jobs, lambda idx: _hash_batch(np.stack([arrays[i] for i in idx])), workers)
    for idx, hashes in zip(jobs, results, strict=True):
        out[idx] = hashes
    return out


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between uint64 hashes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))
