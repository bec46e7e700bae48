"""Decoded-image cache throughput, side by side in one process on the same files.

Compares, for N dermoscopy-sized JPEGs (default 1024x768) at the paper's 299 px and the demo's 64 px:
- baseline: the per-image path a paper-style Dataset does every epoch (PIL open, convert, resize);
- cache miss: first ``ImageCache.load`` (hash + threaded draft decode + resize + shard write);
- cache hit: a later ``load`` from a fresh ImageCache (stat + index + memmap), then reading every pixel
  (the first read after the miss may still fault pages in from disk).
Also times ``load_dataset`` on a 25,331-row ISIC 2019 ground truth (the real size) to show parsing cost.

Run: ``.venv/bin/python bench/bench_cache.py [--n 200] [--size 1024x768]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data import load_dataset
from engine.data.cache import ImageCache


def _images(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8))
        path = folder / f"ISIC_{i:07d}.jpg"
        coarse.resize(size, Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def _timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", default="1024x768")
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; decoding and caching are CPU work")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = _images(tmp / "src", args.n, size)
        print(f"{args.n} JPEGs of {size[0]}x{size[1]}")
        for res in (299, 64):
            base_s, _ = _timed(
                lambda res=res: [np.asarray(Image.open(p).convert("RGB").resize((res, res))) for p in paths]
            )
            miss_s, _ = _timed(lambda res=res: ImageCache(tmp / "cache").load(paths, res))
            hit_s, arr = _timed(lambda res=res: ImageCache(tmp / "cache").load(paths, res))
            read_s, _ = _timed(lambda arr=arr: np.array(arr))
            assert arr.shape == (args.n, res, res, 3)
            print(
                f"res {res:3d}: baseline per-image decode {args.n / base_s:6.0f} img/s | cache miss "
                f"{args.n / miss_s:6.0f} img/s ({base_s / miss_s:4.1f}x) | cache hit: load() {hit_s * 1e3:5.1f} ms, "
                f"reading every pixel {args.n / read_s:7.0f} img/s ({base_s / (hit_s + read_s):5.0f}x)"
            )
        root = tmp / "isic19"
        root.mkdir()
        classes = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
        lines = ["image," + ",".join(classes)]
        img_dir = root / "ISIC_2019_Training_Input"
        img_dir.mkdir()
        for i in range(25331):
            cls = classes[i % 7 if i % 11 else 0]
            lines.append(f"ISIC_{i:07d}," + ",".join("1.0" if c == cls else "0.0" for c in classes))
            (img_dir / f"ISIC_{i:07d}.jpg").touch()
        (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(lines) + "\n")
        s, ds = _timed(lambda: load_dataset("isic2019", root))
        print(f"load_dataset isic2019, 25,331 rows: {s:.2f} s ({ds.n} kept, dropped {ds.dropped})")


if __name__ == "__main__":
    main()
