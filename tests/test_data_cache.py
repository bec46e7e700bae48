"""Decoded-image cache: hits, misses, invalidation, equality with a direct PIL decode, concurrency, bad files."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.cache import ImageCache, decode_image, verify_files
from engine.errors import InputError


def _direct(path: Path, res: int) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((res, res), Image.Resampling.BILINEAR))


@pytest.fixture
def images(tmp_path, write_image) -> list[Path]:
    return [write_image(tmp_path / "src" / f"img{i}.png", seed=i, size=(40 + i, 30)) for i in range(6)]


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if ".tmp" in p.name]


def test_miss_then_hit_and_equal_to_direct_decode(tmp_path, images):
    cache = ImageCache(tmp_path / "cache")
    arr = cache.load(images, 16)
    assert (cache.stats.hits, cache.stats.misses) == (0, 6)
    assert arr.shape == (6, 16, 16, 3) and arr.dtype == np.uint8 and isinstance(arr, np.memmap)
    for row, path in zip(arr, images, strict=True):
        np.testing.assert_array_equal(row, _direct(path, 16))
    again = ImageCache(tmp_path / "cache")  # a new process sees the same on-disk cache
    np.testing.assert_array_equal(again.load(images, 16), arr)
    assert (again.stats.hits, again.stats.misses) == (6, 0)
    other_res = again.load(images[:2], 8)
    assert (again.stats.hits, again.stats.misses) == (6, 2)
    np.testing.assert_array_equal(other_res[1], _direct(images[1], 8))


def test_changed_file_is_a_miss_touched_or_copied_file_a_hit(tmp_path, images, write_image):
    cache = ImageCache(tmp_path / "cache")
    cache.load(images, 16)
    write_image(images[2], seed=99, size=(40, 30))  # new content at the same path
    os.utime(images[3])  # new mtime, same bytes: re-hashed, still the same entry
    copy = shutil.copy(images[4], tmp_path / "copy.png")
    cache.stats.hits = cache.stats.misses = 0
    arr = cache.load([*images, Path(copy)], 16)
    assert (cache.stats.hits, cache.stats.misses) == (6, 1)
    np.testing.assert_array_equal(arr[2], _direct(images[2], 16))
    np.testing.assert_array_equal(arr[6], arr[4])


def test_reordered_and_partial_requests(tmp_path, images):
    cache = ImageCache(tmp_path / "cache")
    full = np.array(cache.load(images, 12))
    order = [4, 0, 5, 0]
    picked = cache.load([images[i] for i in order], 12)
    np.testing.assert_array_equal(picked, full[order])
    np.testing.assert_array_equal(cache.load(images[1:4], 12), full[1:4])
    assert cache.load([], 12).shape == (0, 12, 12, 3)


def _load_in_child(args: tuple[str, list[str]]) -> int:
    root, paths = args
    return int(ImageCache(Path(root), workers=1).load([Path(p) for p in paths], 10).sum())


def test_concurrent_processes_share_one_consistent_index(tmp_path, images):
    root = tmp_path / "cache"
    jobs = [(str(root), [str(p) for p in images[:4]]), (str(root), [str(p) for p in images[2:]])] * 2
    with multiprocessing.get_context("fork").Pool(4) as pool:
        sums = pool.map(_load_in_child, jobs)
    cache = ImageCache(root)
    arr = cache.load(images, 10)
    assert cache.stats.misses == 0
    assert sums == [int(arr[:4].sum()), int(arr[2:].sum())] * 2
    assert _leftovers(root) == []


def test_corrupt_or_truncated_image_names_the_file_and_leaves_nothing(tmp_path, images):
    jpeg = tmp_path / "src" / "cut.jpg"
    Image.open(images[0]).convert("RGB").resize((64, 64)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    garbage = tmp_path / "src" / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for bad in (jpeg, garbage):
        cache = ImageCache(tmp_path / "cache")
        with pytest.raises(InputError, match=rf"^{bad}: corrupt or truncated image"):
            cache.load([images[1], bad], 16)
        with pytest.raises(InputError, match=str(bad)):
            verify_files([images[0], bad])
    assert not list((tmp_path / "cache").rglob("*.npy")) and _leftovers(tmp_path / "cache") == []


def test_missing_file(tmp_path, images):
    with pytest.raises(InputError, match="nope.png: image file not found"):
        ImageCache(tmp_path / "cache").load([images[0], tmp_path / "nope.png"], 8)


def test_jpeg_draft_decode_stays_close_to_a_full_decode(tmp_path, write_image):
    path = write_image(tmp_path / "big.jpg", seed=5, size=(400, 300))
    fast = decode_image(path, 32).astype(int)
    assert np.abs(fast - _direct(path, 32).astype(int)).mean() < 3


def test_array_source_is_served_like_files(tmp_path, images):
    """Pool images (pixels, at a GAN's resolution) and image files share one cache, one resize, one loader."""
    from engine.data.cache import pixel_key

    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((24, 24))) for p in images])
    files = []
    for i, px in enumerate(pixels):  # the same pictures as lossless files
        files.append(tmp_path / "png" / f"{i}.png")
        files[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(px).save(files[-1])
    cache = ImageCache(tmp_path / "cache")
    arr = cache.load_arrays(pixels, 16)
    assert arr.shape == (6, 16, 16, 3) and isinstance(arr, np.memmap) and not arr.flags.writeable
    assert (cache.stats.hits, cache.stats.misses) == (0, 6)
    np.testing.assert_array_equal(arr, cache.load(files, 16))  # a file and its pixels: the same cached image
    for row, px in zip(arr, pixels, strict=True):
        np.testing.assert_array_equal(row, np.asarray(Image.fromarray(px).resize((16, 16), Image.Resampling.BILINEAR)))
    # keyed by content: the same pixels in another array (another order, a repeat) are hits
    again = ImageCache(tmp_path / "cache")
    np.testing.assert_array_equal(again.load_arrays(pixels[[5, 0, 0]], 16), arr[[5, 0, 0]])
    assert (again.stats.hits, again.stats.misses) == (3, 0)
    changed = pixels[:2].copy()
    changed[1, 0, 0, 0] ^= 1  # one value of one pixel
    again.load_arrays(changed, 16)
    assert again.stats.misses == 1
    assert pixel_key(pixels[0]) != pixel_key(pixels[0].reshape(12, 48, 3))  # the shape is part of the key
    with pytest.raises(ValueError, match="uint8"):
        cache.load_arrays(pixels.astype(np.float32), 16)
    assert _leftovers(tmp_path / "cache") == []
