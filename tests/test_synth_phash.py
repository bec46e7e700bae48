"""Batched pHash: bit for bit ``imagehash.phash`` on every kind of image the pools, the audit and users hand it."""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from engine.synth.phash import _horizontal_first, _luma_rgb, _Pass, hamming, phash
from engine.synth.pool import Pool, PoolRow, PoolWriter, pool_id


def _reference(images: list[Image.Image]) -> np.ndarray:
    return np.array([int(str(imagehash.phash(im)), 16) for im in images], dtype=np.uint64)


def _picture(rng: np.random.Generator, h: int, w: int, kind: int) -> np.ndarray:
    """Noise, skewed noise, flat, smooth waves, a flat rectangle on black, and streaky cumulative noise."""
    if kind == 0:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == 1:
        return (rng.random((h, w, 3)) ** 3 * 255).astype(np.uint8)
    if kind == 2:
        return np.full((h, w, 3), rng.integers(0, 256), np.uint8)
    if kind == 3:
        yy, xx = np.mgrid[:h, :w]
        return np.stack([(np.sin(xx / (3 + c) + yy / 11) * 120 + 128).astype(np.uint8) for c in range(3)], -1)
    if kind == 4:
        a = np.zeros((h, w, 3), np.uint8)
        a[h // 3:2 * h // 3 + 1, w // 4:w // 2 + 1] = rng.integers(0, 256, 3)
        return a
    return np.cumsum(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), axis=0).astype(np.uint8)


def test_pil_images_of_every_shape_and_mode_hash_as_imagehash() -> None:
    rng = np.random.default_rng(7)
    shapes = [(32, 32), (1, 1), (1, 300), (300, 1), (32, 77), (77, 32), (31, 33), (64, 64), (256, 256),
              (299, 299), (45, 20), (200, 60), (94, 49), (95, 49), (60, 200), (13, 400), (400, 13)]
    shapes += [tuple(int(v) for v in rng.integers(2, 330, 2)) for _ in range(100)]
    images = []
    for i, (h, w) in enumerate(shapes):
        a = _picture(rng, h, w, i % 6)
        mode = ("RGB", "RGBA", "L", "P", "LA", "I;16", "RGB")[i % 7]
        if mode == "RGBA":  # alpha is ignored by convert("L"), so it must be ignored here too
            images.append(Image.fromarray(np.dstack([a, rng.integers(0, 256, (h, w), dtype=np.uint8)]), "RGBA"))
        else:
            im = Image.fromarray(a)
            images.append(im if mode == "RGB" else im.convert(mode))
    # both pass orders of Pillow's resize and both single-axis cases occur among these shapes
    both = [(h, w) for h, w in shapes if h != 32 and w != 32]
    assert {_horizontal_first(h, w) for h, w in both} == {True, False}
    np.testing.assert_array_equal(phash(images), _reference(images))


def test_uint8_arrays_hash_as_imagehash_of_their_pil_images() -> None:
    rng = np.random.default_rng(3)
    for side in (32, 33, 64, 100, 256):
        a = np.stack([_picture(rng, side, side, k % 6) for k in range(24)])
        np.testing.assert_array_equal(phash(a), _reference([Image.fromarray(x) for x in a]))
        gray = np.ascontiguousarray(a[..., 1])
        np.testing.assert_array_equal(phash(gray), _reference([Image.fromarray(x) for x in gray]))
    tall = np.stack([_picture(rng, 120, 40, k % 6) for k in range(12)])  # vertical pass first
    np.testing.assert_array_equal(phash(tall, workers=1), _reference([Image.fromarray(x) for x in tall]))


def test_luma_is_pillows_convert_for_every_rgb_triple() -> None:
    g, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    for r in range(0, 256, 32):  # 32 red levels at a time: 2M triples
        rgb = np.stack(np.broadcast_arrays(np.arange(r, r + 32)[:, None, None], g[None], b[None]), -1)
        rgb = rgb.astype(np.uint8).reshape(32, 65536, 3)
        ref = np.asarray(Image.fromarray(rgb.reshape(32 * 256, 256, 3)).convert("L")).reshape(32, 65536)
        np.testing.assert_array_equal(_luma_rgb(rgb), ref)


def test_extreme_downscales_use_the_exact_dense_path() -> None:
    rng = np.random.default_rng(11)
    assert _Pass(12000).dense is not None and _Pass(4000).dense is None
    images = [Image.fromarray(_picture(rng, 24, 12000, 5)), Image.fromarray(_picture(rng, 12000, 20, 5)),
              Image.fromarray(_picture(rng, 30, 4000, 0))]
    np.testing.assert_array_equal(phash(images), _reference(images))


def test_pool_images_are_read_batch_by_batch_and_threads_change_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    images = np.stack([_picture(rng, 48, 48, k % 6) for k in range(300)])
    writer = PoolWriter(tmp_path, res=48, shard_size=128)
    rows = [PoolRow(pool_id(0, i), 0, "gan", "ckpt", seed=i) for i in range(300)]
    for k in range(3):
        writer.write_shard(k, images[k * 128:(k + 1) * 128], rows[k * 128:(k + 1) * 128])
    writer.finish(3)
    pool = Pool(tmp_path)
    one = phash(pool.images, workers=1)
    np.testing.assert_array_equal(one, phash(pool.images, workers=2))
    np.testing.assert_array_equal(one, _reference([Image.fromarray(x) for x in images]))


def test_hamming_and_bad_input() -> None:
    assert hamming(np.uint64(0b1011), np.uint64(0b0110)).item() == 3
    assert hamming(np.array([0, 2**64 - 1], dtype=np.uint64), 0).tolist() == [0, 64]
    assert phash(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0,)
    with pytest.raises(ValueError, match="uint8"):
        phash(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        phash(np.zeros((2, 8, 8, 5), np.uint8))
