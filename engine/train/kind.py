"""Run kind ``classify``: one fine-tune of the target classifier, scored on every configured test set.

Order of work (the test sets can influence nothing): read records and labels of everything; refuse any
test image that is also a training/validation image; decode and cache train/val images; fine-tune with
model selection on validation only; then, and only then, decode the test images and score them with TTA.

Seeding: the split depends on ``data.split_seed``; the real subset only on (split, real_fraction,
replicate), so replicate k of every configuration trains on the same real images (paired comparisons);
training randomness (init, shuffle, augmentation, dropout) comes from (seed, replicate); TTA from
(seed, replicate, test-set name), so a test set's replicas are the same whatever other sets a run scores.
"""

from __future__ import annotations

import os
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.fsutil import atomic_write_json
from engine.runner.kinds import RunContext, register_kind
from engine.train.config import TEST_SET_NAMES, ClassifyConfig, parse_config


def check_disjoint(train: list[Any], tests: dict[str, list[Any]]) -> None:
    """InputError if a test image is also a training or validation image (same file, or same bytes).

    Only files whose sizes collide are hashed, so real data sets cost a stat per image, not a full read.
    """
    from engine.data.cache import file_key

    seen = {Path(r.image).resolve(): r for r in train}
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in seen:
        by_size[os.stat(path).st_size].append(path)
    digests: dict[Path, str] = {}

    def digest(p: Path) -> str:
        if p not in digests:
            digests[p] = file_key(p)
        return digests[p]

    for name, records in tests.items():
        for r in records:
            path = Path(r.image).resolve()
            if path in seen:
                raise InputError(f"test set {name}: image {r.image_id} ({path}) is also a training/validation "
                                 f"image ({seen[path].image_id})")
            for other in by_size.get(os.stat(path).st_size, ()):
                if digest(other) == digest(path):
                    raise InputError(f"test set {name}: image {r.image_id} ({path}) has the same content as "
                                     f"training/validation image {seen[other].image_id} ({other})")


def _resolve_device(cfg: ClassifyConfig, ctx: RunContext) -> str:
    import torch

    device = ctx.device if cfg.device == "auto" else cfg.device
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda requested but no CUDA GPU is visible (use --device cpu)")
    return device


def validate_classify(config: dict[str, Any]) -> dict[str, Any]:
    """The gate before a classify run is queued: a valid config and a model that can be built here."""
    from engine.train.model import check_model

    cfg = parse_config(config)
    check_model(cfg.model)
    return cfg.to_json()


@register_kind("classify", validate=validate_classify)
def run_classify(ctx: RunContext) -> None:
    """Fine-tune, select on validation, score every test set; writes predictions.csv and result.json."""
    t_start = time.perf_counter()
    cfg = parse_config(ctx.config)
    device = _resolve_device(cfg, ctx)

    import numpy as np
    import torch

    from engine.data import load_dataset
    from engine.data.cache import ImageCache
    from engine.data.split import persisted_split
    from engine.data.subsets import real_subset
    from engine.train.augment import Augmenter, make_generator
    from engine.train.classifier import ArraySet, RowView, derive_seed, fit
    from engine.train.evaluate import TestScores, tta_scores, write_predictions
    from engine.train.model import create_model, norm_stats

    # 0. The model first: a missing weights file fails before any image is decoded.
    train_seed = derive_seed(cfg.seed, cfg.replicate)
    torch.manual_seed(train_seed)  # the new head's init
    model = create_model(cfg.model)
    mean, std = norm_stats(cfg.model, model)

    # 1. Records and labels only (no test pixels are read before training ends).
    data = load_dataset(cfg.data.format, cfg.data.root)
    split, split_file = persisted_split(ctx.workspace, cfg.data.format, data.records, cfg.data.split_seed, ctx.log)
    real = real_subset(split.train, cfg.real_fraction, cfg.replicate)
    synthetic = load_dataset("csv", cfg.synthetic).records if cfg.synthetic else []
    tests: dict[str, list[Any]] = {TEST_SET_NAMES[cfg.data.format]: list(split.test)}
    for t in cfg.tests:
        tests[t.name] = load_dataset(t.format, t.root).records
    check_disjoint([*real, *synthetic, *split.val], tests)
    if len({r.label for r in split.val}) < 2:
        raise InputError(f"data: the validation split of {cfg.data.root} has one class; AUC needs both")

    # 2. Train/val pixels from the shared decoded cache: the whole training split is loaded (one shared
    #    file for every fraction and replicate) and the real subset is a list of rows into it.
    res = cfg.model.res
    cache = ImageCache(ctx.workspace / "cache" / "images")
    row_of = {r.image_id: i for i, r in enumerate(split.train)}
    parts = [(cache.load([r.image for r in split.train], res), np.array([row_of[r.image_id] for r in real]))]
    if synthetic:
        parts.append((cache.load([r.image for r in synthetic], res), np.arange(len(synthetic))))
    train = ArraySet(RowView(parts), np.array([r.label for r in [*real, *synthetic]], dtype=np.int64))
    val = ArraySet(cache.load([r.image for r in split.val], res), np.array([r.label for r in split.val]))
    ctx.log.info("train %d real + %d synthetic, val %d; device %s", len(real), len(synthetic), len(val), device)

    # 3. Fine-tune.
    augmenter = Augmenter(cfg.augment, mean, std, device)
    checkpoints = ctx.run_dir / "checkpoints"
    best_path = checkpoints / "best.pt"
    result = fit(ctx, model, train, val, cfg.optim, augmenter, train_seed, best_path, amp=cfg.amp,
                 compile_model=cfg.compile)
    if result.interrupted:
        return
    if not result.best_epoch:
        raise RuntimeError("no epoch finished; nothing to evaluate")
    model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True)["model"])

    # 4. Only now: test pixels, TTA, AUC.
    t_eval = time.perf_counter()
    scored: list[TestScores] = []
    n_scored = 0
    for name, records in tests.items():
        if ctx.stop_requested():
            return  # the checkpoint says training is done: a resumed attempt goes straight to scoring
        images = cache.load([r.image for r in records], res)
        gen = make_generator(device, derive_seed(cfg.seed, cfg.replicate, zlib.crc32(name.encode())))
        scores = tta_scores(model, images, augmenter, cfg.tta.replicas, cfg.tta.batch_size, gen, cfg.amp,
                            progress=lambda done, total, name=name: ctx.progress(done, total, f"TTA {name}"))
        n_scored += len(records) * cfg.tta.replicas
        scored.append(TestScores(name, [r.image_id for r in records], np.array([r.label for r in records]),
                                 scores))
        ctx.log.info("%s: AUC %.4f (%d images)", name, scored[-1].auc(), len(records))
    eval_s = time.perf_counter() - t_eval

    write_predictions(str(ctx.run_dir / "predictions.csv"), scored)
    atomic_write_json(ctx.run_dir / "result.json", {
        "auc": {s.name: s.auc() for s in scored},
        "val_auc": result.val_auc,
        "val_loss": result.val_loss,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "stopped_early": result.stopped_early,
        "monitor": cfg.optim.monitor,
        "n_train": {"real": len(real), "synthetic": len(synthetic)},
        "n_val": len(val),
        "n_test": {name: len(records) for name, records in tests.items()},
        "split": str(split_file),
        "seed": cfg.seed,
        "replicate": cfg.replicate,
        "device": device,
        "model": {"name": cfg.model.name, "pretrained": cfg.model.pretrained, "weights": cfg.model.weights,
                  "res": res, "norm": cfg.model.norm},
        "timings": {"train_s": result.train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t_start},
        "images_per_s": {"train": result.images_per_s, "tta": n_scored / eval_s if eval_s else 0.0},
        "history": result.history,
        "config": cfg.to_json(),
    })
