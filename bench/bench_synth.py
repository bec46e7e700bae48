"""Synthetic-image tooling throughput: batched pHash, diverse selection at pool scale, helper scoring.

(a) pHash, side by side in one process on the same images: ``imagehash.phash`` one PIL image at a time vs
    ``engine.synth.phash.phash`` on the batch (both cores), at 64 px and at 256 px (the paper's pool
    resolution), checking the hashes are bit-identical; then a whole pool of ``--pool`` images at 256 px
    streamed in chunks (only the hashing is timed; chunks are made from the base images in between).
(b) diverse selection (greedy exclusion, default threshold) over 10k / 50k / ``--pool`` hashes, with its
    growth exponent, against a blocked all-pairs XOR/popcount search for the same pairs (10k, 50k; and the
    full pool with ``--brute-full``), checking both keep the same images.
(c) best/worst pool scoring: images/s of a helper classifier's per-image cross-entropy on pool images
    (random init: throughput only): ``test_resnet`` at 48 px on a CPU, Inception-v4 at 299 px (bf16) on CUDA.

Images: procedural demo lesions (``engine.data.lesions``) at 64 px, turned into many distinct pool images by
flips, rotations, shifts and gain (similar lesions, as a GAN pool holds: their pHashes cluster, the hard case
for an index); the 256 px images are those upscaled by pixel repetition (pHash's cost does not depend on content).

Run: ``.venv/bin/python bench/bench_synth.py [--device cpu|cuda] [--pool 200000] [--workers N] [--brute-full]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from engine.synth.hamming import greedy, radius_pairs
from engine.synth.phash import default_workers, phash
from engine.synth.samplers.diverse import DEFAULT_THRESHOLD


def base_lesions(n: int, res: int = 64) -> np.ndarray:
    from engine.data import lesions

    rng = np.random.default_rng(0)
    recipes = ["nevus", "clark_nevus", "melanoma", "seborrheic_keratosis", "dermal_nevus", "melanoma_in_situ"]
    return np.stack([lesions.render(lesions.sample_lesion(recipes[i % len(recipes)], rng),
                                    lesions.sample_view("dermoscopic", rng), res).image for i in range(n)])


def variants(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pool-like images: a base lesion under one of 8 flips/rotations, a shift and a gain."""
    src = base[rng.integers(0, len(base), n)]
    out = np.empty_like(src)
    kind = rng.integers(0, 8, n)
    group = rng.integers(0, 16, n)
    shifts = rng.integers(-src.shape[1] // 10, src.shape[1] // 10 + 1, (16, 2))
    for k in range(8):
        for g in range(16):
            sel = np.flatnonzero((kind == k) & (group == g))
            if not len(sel):
                continue
            x = np.rot90(src[sel], k % 4, axes=(1, 2))
            x = x[:, :, ::-1] if k >= 4 else x
            out[sel] = np.roll(x, tuple(shifts[g]), axis=(1, 2))
    gain = rng.uniform(0.85, 1.15, (n, 1, 1, 1)).astype(np.float32)
    return np.clip(out * gain, 0, 255).astype(np.uint8)


def upscale(images: np.ndarray, res: int) -> np.ndarray:
    """Pixel repetition (pHash's cost does not depend on content; this keeps making 200,000 images cheap)."""
    k = res // images.shape[1]
    return np.repeat(np.repeat(images, k, axis=1), k, axis=2)


def bench_phash(base: np.ndarray, pool: int, workers: int) -> None:
    import imagehash

    rng = np.random.default_rng(1)
    print(f"(a) pHash: imagehash.phash per image vs batched phash ({workers} threads)")
    for res, n in ((64, 2000), (256, 500)):
        imgs = variants(base, n, rng)
        imgs = imgs if res == 64 else upscale(imgs, res)
        pil = [Image.fromarray(x) for x in imgs]
        t, c = time.perf_counter(), time.process_time()
        ref = np.array([int(str(imagehash.phash(im)), 16) for im in pil], dtype=np.uint64)
        t_ref, c_ref = time.perf_counter() - t, time.process_time() - c
        phash(imgs[:64], workers=workers)
        t, c = time.perf_counter(), time.process_time()
        ours = phash(imgs, workers=workers)
        t_ours, c_ours = time.perf_counter() - t, time.process_time() - c
        assert np.array_equal(ours, ref), "hashes differ from imagehash"
        print(f"    {res:3d} px, {n} images: imagehash {t_ref / n * 1e3:.3f} ms/image ({n / t_ref:,.0f}/s), "
              f"batched {t_ours / n * 1e3:.3f} ms/image ({n / t_ours:,.0f}/s): {t_ref / t_ours:.1f}x, bit-identical; "
              f"CPU time per image {c_ref / n * 1e3:.3f} vs {c_ours / n * 1e3:.3f} ms")
    chunk = 4096
    small = variants(base, chunk, rng)
    hashed = cpu = 0.0
    for start in range(0, pool, chunk):
        k = min(chunk, pool - start)
        imgs = upscale(np.roll(small[:k], start // chunk, axis=2), 256)
        t, c = time.perf_counter(), time.process_time()
        phash(imgs, workers=workers)
        hashed += time.perf_counter() - t
        cpu += time.process_time() - c
    print(f"    a {pool:,}-image pool at 256 px: {hashed:.1f} s hashing ({pool / hashed:,.0f} images/s; "
          f"target < 30 s for 200,000 on 2 cores); {cpu:.1f} CPU-s, i.e. {cpu / workers:.1f} s on {workers} idle "
          f"cores")


def brute_pairs(h: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blocked all-pairs XOR/popcount: the baseline the multi-index search replaces."""
    out_i, out_j, out_d = [], [], []
    for s in range(0, len(h), 1024):
        d = np.bitwise_count(h[s:s + 1024, None] ^ h[None, s:])
        i, j = np.nonzero(d <= radius)
        keep = j > i
        out_i.append(s + i[keep])
        out_j.append(s + j[keep])
        out_d.append(d[i[keep], j[keep]])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def bench_diverse(base: np.ndarray, pool: int, workers: int, brute_full: bool) -> None:
    rng = np.random.default_rng(2)
    t = time.perf_counter()
    hashes = np.concatenate([phash(variants(base, min(8192, pool - s), rng), workers=workers)
                             for s in range(0, pool, 8192)])
    made = time.perf_counter() - t
    print(f"(b) diverse selection, threshold {DEFAULT_THRESHOLD} bits ({pool:,} pool hashes made at 64 px in "
          f"{made:.1f} s incl. images; {len(np.unique(hashes)):,} distinct)")
    sizes = [n for n in (10_000, 50_000, pool) if n <= pool]
    times = []
    for n in sorted(set(sizes)):
        h = hashes[:n]
        t = time.perf_counter()
        ex = greedy(h, np.random.default_rng(0).permutation(n), DEFAULT_THRESHOLD)
        times.append((n, time.perf_counter() - t))
        line = f"    {n:>7,} hashes: {times[-1][1]:6.2f} s, kept {len(ex.kept):,}, excluded {len(ex.excluded):,}"
        if n <= 50_000 or brute_full:
            uniq = np.unique(h)
            t = time.perf_counter()
            bi, bj, _ = brute_pairs(uniq, DEFAULT_THRESHOLD)
            t_brute = time.perf_counter() - t
            mi, mj, _ = radius_pairs(uniq, DEFAULT_THRESHOLD)
            assert set(zip(bi.tolist(), bj.tolist(), strict=True)) == set(zip(mi.tolist(), mj.tolist(), strict=True))
            line += f"; all-pairs XOR/popcount pair search {t_brute:6.2f} s (same {len(bi):,} pairs)"
        print(line)
    for (n0, t0), (n1, t1) in zip(times, times[1:], strict=False):
        print(f"    growth {n0:,} -> {n1:,}: time x{t1 / t0:.1f} for size x{n1 / n0:.0f} "
              f"(exponent {np.log(t1 / t0) / np.log(n1 / n0):.2f}; all-pairs is 2)")


def bench_scoring(device: str, n: int) -> None:
    import torch

    from engine.train.config import parse_config
    from engine.train.model import create_model, norm_stats
    from engine.train.trained import TrainedClassifier

    name, res = ("inception_v4", 299) if device == "cuda" else ("test_resnet", 48)
    cfg = parse_config({"data": {"format": "csv", "root": "/nonexistent"},
                        "model": {"name": name, "res": res, "pretrained": False}})
    model = create_model(cfg.model).to(device).eval()
    mean, std = norm_stats(cfg.model, model)
    dev = torch.device(device)
    helper = TrainedClassifier("bench", cfg, model, torch.tensor(mean, device=dev).view(1, 3, 1, 1),
                               torch.tensor(std, device=dev).view(1, 3, 1, 1), dev)
    images = np.random.default_rng(3).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
    labels = np.arange(n) % 2
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    with ctx:
        helper.cross_entropy(images[:256], labels[:256])
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        helper.cross_entropy(images, labels)
        if device == "cuda":
            torch.cuda.synchronize()
    dt = time.perf_counter() - t
    print(f"(c) best/worst pool scoring on {device}: {name} at {res} px from 256 px pool images: "
          f"{n / dt:,.0f} images/s ({200_000 / (n / dt):.0f} s for a 200,000-image pool)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--pool", type=int, default=200_000, help="pool size for (a) and (b)")
    ap.add_argument("--workers", type=int, default=default_workers(), help="pHash threads")
    ap.add_argument("--brute-full", action="store_true", help="also run the all-pairs search on the whole pool")
    ap.add_argument("--score-images", type=int, default=4096)
    args = ap.parse_args()
    t = time.perf_counter()
    base = base_lesions(400)
    print(f"{len(base)} base demo lesions rendered at 64 px in {time.perf_counter() - t:.1f} s")
    bench_phash(base, args.pool, args.workers)
    bench_diverse(base, args.pool, args.workers, args.brute_full)
    bench_scoring(args.device, args.score_images)


if __name__ == "__main__":
    main()
