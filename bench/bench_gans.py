"""GAN figures: training speed per family and preset, pool speed, and what the demo preset learns.

(a) kimg/s of one training iteration (D + G update, lazy regularisers on schedule) per family at ``tiny`` and
    ``demo`` (and ``paper`` with ``--device cuda``; a paper step takes minutes on a CPU), on random batches
    (translation families: random label maps); PGAN is timed at its full resolution (its slowest phase).
(b) the demo run on the procedural demo data (``ganaug data demo``; pass ``--data`` to reuse one): a
    baseline classifier (test_resnet, 48 px, random init) for the domain features, then each family's
    ``demo`` preset at its default length as a real ``gan-train`` run: domain FID / precision / recall at the
    first and at the selected checkpoint, the training wall time, then a ``gan-pool`` (images/s) and the AUC
    the baseline classifier gives the pool's melanoma vs benign images (class conditioning works when this
    is clearly above 0.5). Translation families (pix2pixhd, spade) train on the demo's attribute masks of the
    training images of the classifier's split and pool one image per such mask, of its source's class.

    python bench/bench_gans.py                        # CPU: (a) then (b) with stylegan2
    python bench/bench_gans.py --families stylegan2 pgan --data /tmp/demo
    python bench/bench_gans.py --families pix2pixhd spade --skip-speed
    python bench/bench_gans.py --device cuda          # adds the paper preset to (a)
    python bench/bench_gans.py --skip-demo            # (a) only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.gans import GanBatch, create_gan, get_family, resolve_config  # noqa: E402
from engine.gans import families as registered_families  # noqa: E402

CLASSIFIER = {"model": {"name": "test_resnet", "pretrained": False, "res": 48}, "optim": {"max_epochs": 12,
              "lr": 1e-2}, "tta": {"replicas": 4}}


def step_speed(family: str, preset: str, device: str, steps: int) -> dict[str, float]:
    """kimg/s of ``train_step`` on a random batch (after warm-up steps that include a lazy R1 step)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_flush_denormal(True)
    trainer = create_gan(family, preset, dev, seed=0)
    cfg = resolve_config(family, preset)
    if family == "pgan":
        trainer.images_seen = cfg["kimg"] * 1000  # full resolution
    if getattr(trainer, "ada", None) is not None:
        trainer.ada.p = 0.3  # augmentation on, as after the first kimg on small data
    b, r = cfg["batch"], cfg["res"]
    gen = torch.Generator(device=dev).manual_seed(0)
    maps = None
    if get_family(family).conditioning == "translation":
        from engine.gans.translation import encode_maps

        maps = encode_maps(torch.randint(0, 8, (b, r, r), device=dev), cfg["boundary"])
    batch = GanBatch(torch.rand(b, 3, r, r, device=dev) * 2 - 1, torch.arange(b, device=dev) % 2, maps)
    for _ in range(2):
        trainer.train_step(batch, gen)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch, gen)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    n_g = sum(p.numel() for p in trainer.G.parameters())
    return {"ms_per_step": dt * 1000, "img_per_s": b / dt, "kimg_per_s": b / dt / 1000, "batch": b, "res": r,
            "G_params": n_g}


def speed_table(device: str, presets: list[str], steps: int) -> None:
    print(f"(a) training speed on {device} ({torch.get_num_threads()} threads)")
    print(f"  {'family':<10} {'preset':<6} {'res':>4} {'batch':>5} {'G params':>9} {'ms/step':>9} {'img/s':>8} "
          f"{'kimg/s':>7} {'min per 10 kimg':>16}")
    for family in registered_families():
        for preset in presets:
            s = step_speed(family, preset, device, steps if preset != "paper" else max(3, steps // 2))
            print(f"  {family:<10} {preset:<6} {s['res']:>4} {s['batch']:>5} {s['G_params'] / 1e6:>8.2f}M "
                  f"{s['ms_per_step']:>9.1f} {s['img_per_s']:>8.1f} {s['kimg_per_s']:>7.3f} "
                  f"{10 / s['kimg_per_s'] / 60:>16.1f}", flush=True)


def demo_run(data: Path, families: list[str], device: str, ws: Path, per_class: int, preset: str = "demo") -> None:
    from sklearn.metrics import roc_auc_score

    from engine.demo import classify_config
    from engine.runner.launch import run_here
    from engine.synth.pool import Pool
    from engine.train.trained import load_classifier

    manifest = json.loads((data / "demo.json").read_text())
    config = classify_config(data, manifest)
    config.update({**CLASSIFIER, "tests": [], "device": device})
    t0 = time.perf_counter()
    clf_run = run_here("classify", config, workspace=ws)
    clf_result = json.loads((Path(clf_run["run_dir"]) / "result.json").read_text())
    print(f"\n(b) demo data {data}: baseline classifier {clf_run['run_id']} ({clf_run['status']}, "
          f"{time.perf_counter() - t0:.0f} s): isic19 AUC {clf_result['auc']['isic19']:.3f}")
    clf = load_classifier(ws, clf_run["run_id"], device)
    root = str(data / manifest["datasets"]["isic2019"]["root"])
    masks = str(data / manifest["datasets"]["isic2018-masks"]["root"])
    for family in families:
        translation = get_family(family).conditioning == "translation"
        # Translation GANs: the demo's masks, filtered by the classifier's own split of the ISIC 2019 data.
        gan_data = {"format": "isic2018-masks", "root": masks, "split_data": root} if translation else \
            {"format": "isic2019", "root": root}
        t0 = time.perf_counter()
        run = run_here("gan-train", {"family": family, "preset": preset, "data": gan_data,
                                     "metrics": {"features": clf_run["run_id"]}, "device": device}, workspace=ws)
        wall = time.perf_counter() - t0
        result = json.loads((Path(run["run_dir"]) / "result.json").read_text())
        first, sel = result["checkpoints"][0], result["selected"]
        chosen = next(c for c in result["checkpoints"] if c["kimg"] == sel["kimg"])
        print(f"  {family} {preset} ({result['kimg']} kimg, {wall / 60:.1f} min wall, "
              f"{result['kimg_per_s']:.3f} kimg/s training, on {result['n_train']}): run {run['run_id']}")
        for name, c in (("first", first), ("selected", chosen)):
            print(f"    {name:<8} kimg {c['kimg']:>3}: fid_domain {c['fid_domain']:8.3f}  precision_domain "
                  f"{c['precision_domain']:.3f}  recall_domain {c['recall_domain']:.3f}")
        print(f"    rule: {sel['rule']}")
        print(f"    grids: {Path(run['run_dir']) / 'samples'}")
        pool_config = {"gan_run": run["run_id"], "device": device, **({} if translation else {"per_class": per_class})}
        pool_run = run_here("gan-pool", pool_config, workspace=ws)
        pool_result = json.loads((Path(pool_run["run_dir"]) / "result.json").read_text())
        pool = Pool(Path(pool_run["run_dir"]))
        prob = clf.melanoma_prob(pool.images[np.arange(len(pool))])
        auc = roc_auc_score(pool.labels, prob)
        print(f"    pool: {len(pool)} images at {pool_result['images_per_s']:.0f} images/s; baseline classifier's "
              f"melanoma-probability AUC, synthetic melanoma vs benign: {auc:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per family and preset")
    ap.add_argument("--families", nargs="+", default=["stylegan2"], help="families of the demo run (b)")
    ap.add_argument("--data", type=Path, help="demo data folder (default: generated into a temporary folder)")
    ap.add_argument("--per-class", type=int, default=500, help="pool size per class in (b) (noise families; a "
                    "translation family pools one image per training mask)")
    ap.add_argument("--skip-demo", action="store_true", help="only (a)")
    ap.add_argument("--skip-speed", action="store_true", help="only (b)")
    ap.add_argument("--preset", default="demo", help="preset of the demo run (b)")
    ap.add_argument("--keep", type=Path, help="workspace for (b) (default: a temporary folder, deleted)")
    args = ap.parse_args()
    presets = ["tiny", "demo"] + (["paper"] if args.device == "cuda" else [])
    print("note: timings depend on what else runs on this machine; compare only figures from one run")
    if not args.skip_speed:
        speed_table(args.device, presets, args.steps)
    if args.skip_demo:
        return
    with tempfile.TemporaryDirectory(prefix="bench-gans-") as tmp:
        data = args.data
        if data is None:
            from engine.data.demo_data import generate_demo

            data = Path(tmp) / "demo-data"
            generate_demo(data)
        demo_run(data.resolve(), args.families, args.device, (args.keep or Path(tmp) / "ws").resolve(),
                 args.per_class, args.preset)


if __name__ == "__main__":
    main()
