"""Demo-data generator throughput, measured side by side in one process.

- render: ``lesions.render`` alone per look (one core), images/s;
- generate: the whole ``generate_demo`` (render + JPEG/PNG + CSVs + derm7pt pHash guard) with 1 worker and
  with every core, images/s and wall seconds (target: default size in < ~60 s on 2 cores).

Run: ``.venv/bin/python bench/bench_demo.py [--n-train 1200] [--res 64]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.data.demo_data import DEMO_DEFAULTS, default_workers, generate_demo
from engine.data.lesions import LOOKS, render, sample_lesion, sample_view


def bench_render(res: int, n: int = 60) -> None:
    recipes = ["nevus", "clark_nevus", "melanoma", "seborrheic_keratosis", "melanoma_thick", "vascular"]
    for look in LOOKS:
        jobs = []
        for i in range(n):
            rng = np.random.default_rng([1, i])
            jobs.append((sample_lesion(recipes[i % len(recipes)], rng), sample_view(look, rng)))
        t = time.perf_counter()
        for spec, view in jobs:
            render(spec, view, res)
        dt = time.perf_counter() - t
        print(f"render {look:12s} res {res:4d}: {n / dt:7.1f} img/s ({1000 * dt / n:.1f} ms/img, 1 core)")


def bench_generate(res: int, n_train: int) -> None:
    for workers in sorted({1, default_workers()}):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            manifest = generate_demo(Path(tmp) / "demo", res=res, n_train=n_train, workers=workers)
            dt = time.perf_counter() - t
        # rendered photographs (the Task 2 images are copies of ISIC 2019 ones; derm7pt has two per case)
        images = sum(d["images"] for k, d in manifest["datasets"].items() if k != "isic2018-masks")
        print(
            f"generate_demo n_train {n_train} res {res} workers {workers}: {dt:6.1f} s, {images / dt:6.1f} img/s "
            f"({images} images)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=DEMO_DEFAULTS["n_train"])
    ap.add_argument("--res", type=int, default=DEMO_DEFAULTS["res"])
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; rendering the demo data is CPU work")
    args = ap.parse_args()
    bench_render(args.res)
    bench_generate(args.res, args.n_train)


if __name__ == "__main__":
    main()
