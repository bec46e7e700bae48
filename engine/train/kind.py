"""Run kind ``classify``: one fine-tune of the target classifier, scored on every configured test set.

Order of work (the test sets can influence nothing): read records and labels of everything; refuse any
test image that is also a training/validation image file (same path or same bytes); decode and cache
train/val images; fine-tune with model selection on validation only; then, and only then, decode the test
images, refuse a test set that shares pixels with a synthetic training image (pool images are no files, so
they are compared by the content hash of their cached pixels: this needs the test pixels, hence after
training, but before any score is computed or written), and score them with TTA.

Seeding: the split depends on ``data.split_seed``; the real subset only on (split, real_fraction,
replicate), so replicate k of every configuration trains on the same real images (paired comparisons);
training randomness (init, shuffle, augmentation, dropout) comes from (seed, replicate); TTA from
(seed, replicate, test-set name), so a test set's replicas are the same whatever other sets a run scores.
"""

from __future__ import annotations

import functools
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.executors import check_device
from engine.fsutil import atomic_write_json
from engine.runner.kinds import RunContext, register_kind
from engine.train.config import TEST_SET_NAMES, ClassifyConfig, TestSetConfig, parse_config

if TYPE_CHECKING:
    import numpy as np

    from engine.data import Dataset, LesionRecord

# An ISIC 2020 test set larger than this without a subset is almost surely all of ISIC 2020 (33,126 images),
# not the paper's 1,743-image subset: 19x the paper's TTA cost, and other numbers.
ISIC2020_SUBSET_HINT = 5000


def check_disjoint(train: dict[Path, str], tests: dict[str, list[LesionRecord]]) -> None:
    """InputError if a test image is also a training or validation image file (same file, or same bytes).

    ``train``: resolved path -> image id of every training/validation file. Only files whose sizes collide are
    hashed, so real data sets cost a stat per image, not a full read.
    """
    from engine.data.cache import file_key

    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in train:
        by_size[os.stat(path).st_size].append(path)
    digests: dict[Path, str] = {}

    def digest(p: Path) -> str:
        if p not in digests:
            digests[p] = file_key(p)
        return digests[p]

    for name, records in tests.items():
        for r in records:
            path = Path(r.image).resolve()
            if path in train:
                raise InputError(f"test set {name}: image {r.image_id} ({path}) is also a training/validation "
                                 f"image ({train[path]})")
            for other in by_size.get(os.stat(path).st_size, ()):
                if digest(other) == digest(path):
                    raise InputError(f"test set {name}: image {r.image_id} ({path}) has the same content as "
                                     f"training/validation image {train[other]} ({other})")


def check_pixels_disjoint(name: str, ids: Sequence[str], images: np.ndarray, synthetic: dict[str, str]) -> None:
    """InputError if a test image has exactly the pixels of a synthetic training image (both at the model's
    resolution, as cached). ``synthetic``: pixel key -> a description of the training image."""
    from engine.data.cache import pixel_keys

    for image_id, key in zip(ids, pixel_keys(images), strict=True):
        if key in synthetic:
            raise InputError(f"test set {name}: image {image_id} has the same pixels as synthetic training image "
                             f"{synthetic[key]}; nothing was scored")


def _class_counts(records: Sequence[LesionRecord]) -> tuple[int, int]:
    """(benign, melanoma) images."""
    n_mel = sum(r.label for r in records)
    return len(records) - n_mel, n_mel


def _check_parts(cfg: ClassifyConfig, train: tuple[int, int], val: tuple[int, int], split_file: Path | str) -> None:
    """The real training part has both classes at this fraction (per class ``round(f * n)``, as ``real_subset``
    draws it); validation has both classes. ``train``, ``val``: (benign, melanoma) counts of the split's parts."""
    for n_class, name in zip(train, ("benign", "melanoma"), strict=True):
        if n_class == 0:
            raise InputError(f"data: the training part of the split ({split_file}) has no {name} images")
        if round(Fraction(cfg.real_fraction) * n_class) == 0:
            raise InputError(f"real_fraction: {cfg.real_fraction} of the {n_class} {name} training images is 0 "
                             f"images; the real part needs both classes")
    if min(val) == 0:
        raise InputError(f"data: the validation part of the split ({split_file}) has one class; AUC needs both")


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _split_counts(fmt: str, root: str, listing: tuple[int, int], split_file: str | None,
                  split_stamp: tuple[int, int] | None, seed: int, workspace: Path) -> tuple[Any, ...]:
    """(train counts, val counts, split path) of a data set's split, from records only. Memoised on the stamps of
    the files that define it, so a grid of hundreds of runs on one data set reads it once per process."""
    from engine.data import load_dataset
    from engine.data.split import persisted_split

    data = load_dataset(fmt, root)
    split, path = persisted_split(workspace, fmt, data.records, seed, split_file=split_file, persist=False)
    return _class_counts(split.train), _class_counts(split.val), path


def _test_set(t: TestSetConfig, log: Any) -> Dataset:
    """An extra test set's records, restricted to its subset when it has one."""
    from engine.data import load_dataset
    from engine.data.subsets import listed_subset

    ds = load_dataset(t.format, t.root)
    if t.subset is not None:
        return listed_subset(ds, t.subset)
    if t.format == "isic2020" and ds.n > ISIC2020_SUBSET_HINT:
        log.warning("test set %s: all %d ISIC 2020 images, no subset; the paper scored a 1,743-image subset "
                    "(--test %s=ROOT@SUBSET.csv; see the README)", t.name, ds.n, t.name)
    return ds


def validate_classify(config: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """The gate before a classify run is queued, from records only (no image is decoded): a valid config, a
    model that can be built here, a visible GPU when cuda is asked for, a data root in its format's layout
    whose split leaves both classes in the real training part, test sets in their layouts with readable
    subset lists, and synthetic sources that exist."""
    from engine.data import check_layout
    from engine.data.records import read_image_list
    from engine.synth.mix import check_synthetic
    from engine.train.model import check_model

    cfg = parse_config(config)
    check_device(cfg.device)  # asks the executor the run goes to (engine.executors)
    check_model(cfg.model)
    listing = check_layout(cfg.data.format, cfg.data.root)
    split_file = Path(cfg.data.split_file).expanduser() if cfg.data.split_file else None
    if split_file is not None and not split_file.is_file():
        raise InputError(f"data.split_file: {split_file}: file not found")
    train, val, path = _split_counts(cfg.data.format, str(Path(cfg.data.root).expanduser()), _stamp(listing),
                                     None if split_file is None else str(split_file),
                                     None if split_file is None else _stamp(split_file), cfg.data.split_seed,
                                     Path(workspace))
    _check_parts(cfg, train, val, path)
    for t in cfg.tests:
        check_layout(t.format, t.root)
        if t.subset is not None:
            read_image_list(Path(t.subset))
    check_synthetic(workspace, cfg.synthetic, cfg.data.model_dump())
    return cfg.to_json()


@register_kind("classify", validate=validate_classify)
def run_classify(ctx: RunContext) -> None:
    """Fine-tune, select on validation, score every test set; writes predictions.csv and result.json."""
    t_start = time.perf_counter()
    cfg = parse_config(ctx.config)
    device = ctx.device if cfg.device == "auto" else cfg.device
    check_device(device)

    import numpy as np
    import torch

    from engine.data import load_dataset
    from engine.data.cache import ImageCache, pixel_keys
    from engine.data.split import persisted_split
    from engine.data.subsets import real_subset
    from engine.synth.mix import describe, resolve_synthetic
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
    split, split_file = persisted_split(ctx.workspace, cfg.data.format, data.records, cfg.data.split_seed, ctx.log,
                                        split_file=cfg.data.split_file)
    _check_parts(cfg, _class_counts(split.train), _class_counts(split.val), split_file)
    real = real_subset(split.train, cfg.real_fraction, cfg.replicate)
    synthetic = resolve_synthetic(ctx.workspace, cfg.synthetic)
    tests: dict[str, list[Any]] = {TEST_SET_NAMES[cfg.data.format]: list(split.test)}
    for t in cfg.tests:
        tests[t.name] = _test_set(t, ctx.log).records
    files = {Path(r.image).resolve(): r.image_id for r in [*real, *split.val]}
    for s in synthetic:
        if s.files:
            files.update({Path(s.images[i]).resolve(): s.ids[k] for k, i in enumerate(s.rows.tolist())})
    check_disjoint(files, tests)

    # 2. Train/val pixels from the shared decoded cache: the whole training split is loaded (one shared
    #    file for every fraction and replicate) and the real subset is a list of rows into it. Synthetic
    #    images (files or pool arrays) come through the same cache at the same resolution.
    res = cfg.model.res
    cache_res = round(cfg.augment.source_scale * res)  # > res: crops come from a larger copy
    cache = ImageCache(ctx.workspace / "cache" / "images")
    row_of = {r.image_id: i for i, r in enumerate(split.train)}
    parts = [(cache.load([r.image for r in split.train], cache_res), np.array([row_of[r.image_id] for r in real]))]
    synth_pixels = [s.pixels(cache, cache_res) for s in synthetic]
    parts += [(pixels, np.arange(len(pixels))) for pixels in synth_pixels]
    labels = np.concatenate([np.array([r.label for r in real], dtype=np.int64), *(s.labels for s in synthetic)])
    train = ArraySet(RowView(parts), labels)
    val = ArraySet(cache.load([r.image for r in split.val], cache_res), np.array([r.label for r in split.val]))
    n_real_mel = sum(r.label for r in real)
    n_synth_mel = sum(int(s.labels.sum()) for s in synthetic)
    n_synth = sum(len(s) for s in synthetic)
    counts = {"real": {"benign": len(real) - n_real_mel, "melanoma": n_real_mel},
              "synthetic": {"benign": n_synth - n_synth_mel, "melanoma": n_synth_mel}}
    ctx.log.info("train %d real + %d synthetic, val %d; device %s", len(real), n_synth, len(val), device)

    # 3. Fine-tune.
    augmenter = Augmenter(cfg.augment, mean, std, device, out_res=res)
    checkpoints = ctx.run_dir / "checkpoints"
    best_path = checkpoints / "best.pt"
    result = fit(ctx, model, train, val, cfg.optim, augmenter, train_seed, best_path, amp=cfg.amp,
                 compile_model=cfg.compile)
    if result.interrupted:
        return
    if not result.best_epoch:
        raise RuntimeError("no epoch finished; nothing to evaluate")
    model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True)["model"])

    # 4. Only now: test pixels, the pixel leak check against synthetic images, TTA, AUC.
    t_eval = time.perf_counter()
    synth_keys = {key: f"{s.ids[k]} of {s.provenance['pool_run'] or s.provenance.get('csv')}"
                  for s, pixels in zip(synthetic, synth_pixels, strict=True)
                  for k, key in enumerate(pixel_keys(pixels))}
    scored: list[TestScores] = []
    n_scored = 0
    for name, records in tests.items():
        if ctx.stop_requested():
            return  # the checkpoint says training is done: a resumed attempt goes straight to scoring
        images = cache.load([r.image for r in records], cache_res)
        check_pixels_disjoint(name, [r.image_id for r in records], images, synth_keys)
        gen = make_generator(device, derive_seed(cfg.seed, cfg.replicate, zlib.crc32(name.encode())))
        scores = tta_scores(model, images, augmenter, cfg.tta.replicas, cfg.tta.batch_size, gen, cfg.amp,
                            progress=lambda done, total, name=name: ctx.progress(done, total, f"TTA {name}"))
        n_scored += len(records) * cfg.tta.replicas
        scored.append(TestScores(name, [r.image_id for r in records], np.array([r.label for r in records]),
                                 scores))
        ctx.log.info("%s: AUC %.4f (%d images)", name, scored[-1].auc(), len(records))
    eval_s = time.perf_counter() - t_eval

    # Store metrics first (the results view reads AUCs from the store, not from 10,000 result.json files).
    ctx.metrics({**{f"auc/{s.name}": s.auc() for s in scored}, "auc/val": result.val_auc}, step=0)
    write_predictions(str(ctx.run_dir / "predictions.csv"), scored)
    provenance = describe(synthetic) if synthetic else {}
    atomic_write_json(ctx.run_dir / "result.json", {
        "label": ctx.label,
        "experiment": ctx.experiment,
        "auc": {s.name: s.auc() for s in scored},
        "val_auc": result.val_auc,
        "val_loss": result.val_loss,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "stopped_early": result.stopped_early,
        "monitor": cfg.optim.monitor,
        "counts": counts,
        **({"gan": provenance["gan"], "sampler": provenance["sampler"], "synthetic": provenance["sources"]}
           if synthetic else {}),
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
