"""Memorization / privacy audit: does a GAN hand back (near-)copies of its training images?

The paper names "how much the GAN remembers each training image" as the open question of anonymization. For
every synthetic image (a whole pool, or only what a selection took) the audit finds its nearest real TRAINING
image twice: by pHash Hamming distance and by feature distance (Euclidean distance between L2-normalised
penultimate-layer features of an ancillary classifier, in [0, 2]). The yardstick is the same distances for the
VALIDATION images: real images of the same distribution that the GAN never saw (distance to closest record,
the test used for synthetic-data privacy; the authenticity idea of Alaa et al., ICML 2022: a synthetic image
closer to a training image than unseen real images are is a suspected copy).

Thresholds: the ``quantile`` (default 1 %) of the validation images' nearest-training distances, per
measure; a synthetic image is a suspected copy when either of its distances is below its threshold. A GAN
that copies nothing therefore flags about ``quantile`` of its images by chance (real unseen images would be
flagged as often); a fraction well above that, or any exact copy, is the finding.

Limits: both measures see images at the pool's resolution, so a copy that was shifted, flipped or recoloured
can escape pHash (features are more tolerant); a threshold drawn from unseen real images does not tell
"memorised" from "the data set holds near-duplicates across its own split" (both look like copies); and with
few validation images the 1 % quantile is noisy. A clean audit is evidence of no verbatim copying, not a
privacy guarantee.

Outputs, in ``<run folder>/audit/``: ``audit.json`` (``reference``, ``threshold {phash, feature}``,
``per_class {benign|melanoma: {n, suspected_copies, fraction}}``, ``closest [{pool_id, train_image,
phash_distance, feature_distance, png}]``), ``histograms.png`` (synthetic vs validation distances with the
thresholds) and ``closest/<rank>-<pool_id>.png`` (each synthetic image beside its nearest training image).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InputError
from engine.fsutil import atomic_path, atomic_write_json
from engine.synth.hamming import nearest
from engine.synth.phash import phash
from engine.synth.pool import CLASS_NAMES, Pool
from engine.train.config import DataConfig

if TYPE_CHECKING:
    from engine.data.records import LesionRecord

AUDIT_DIR = "audit"
MASKS_FORMAT = "isic2018-masks"  # a translation GAN's data: attribute masks, filtered by an ISIC 2019 split
DEFAULT_QUANTILE = 0.01
CLOSEST = 16
_PAIR_SIDE = 128  # px of each image in a side-by-side PNG


@dataclass
class Synthetic:
    """The images under audit: pool ids, labels and pixels (uint8 N x R x R x 3), in a fixed order."""

    ids: list[str]
    labels: np.ndarray
    images: Any  # array-like: an index array gathers rows


def synthetic_of(workspace: Path, run_id: str) -> tuple[Synthetic, dict[str, Any]]:
    """The images of a pool run (all) or of a select run (those it chose), and that run's run.json config."""
    from engine.synth.mix import TakeRows
    from engine.synth.select import load_selection

    run_dir = Path(workspace) / run_id
    meta = run_meta(run_dir)
    if meta.get("kind") == "select":
        selection = load_selection(workspace, run_id)
        ids, labels, parts = [], [], []
        for part in selection.parts:
            pool = Pool(Path(workspace) / part.pool_run)
            rows = pool.rows_of(part.ids, where=str(part.ids_file))
            parts.append(TakeRows(pool.images, rows))
            ids += part.ids
            labels.append(pool.labels[rows])
        if len({p.shape[1:] for p in parts}) > 1:
            raise InputError(f"run {run_id}: its pools differ in resolution; audit each pool run on its own")
        return Synthetic(ids, np.concatenate(labels), _Concat(parts)), meta
    pool = Pool(run_dir)
    return Synthetic(list(pool.ids), pool.labels, pool.images), meta


def run_meta(run_dir: Path) -> dict[str, Any]:
    """A run folder's ``run.json`` (kind, config); InputError when there is none."""
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        raise InputError(f"{run_dir}: no readable run.json; is it a run of this workspace?") from None


class _Concat:
    """Several array-likes of the same image shape as one (rows gathered part by part)."""

    def __init__(self, parts: list[Any]) -> None:
        self._parts = parts
        self._starts = np.cumsum([0, *(len(p) for p in parts)])
        self.shape = (int(self._starts[-1]), *(parts[0].shape[1:] if parts else (0, 0, 3)))
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        idx = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index, dtype=np.int64)
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        which = np.searchsorted(self._starts, idx, side="right") - 1
        for k in np.unique(which).tolist():
            sel = which == k
            out[sel] = self._parts[k][idx[sel] - self._starts[k]]
        return out


def data_of(workspace: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The data keys of the real data a run's GAN learnt from: its config's ``data``, else that of the gan run
    named in it or in its pool's rows (gan-pool -> gan-train)."""
    seen: set[str] = set()
    todo = [meta]
    while todo:
        m = todo.pop()
        config = m.get("config") or {}
        data = config.get("data")
        if isinstance(data, dict) and {"format", "root"} <= set(data):
            return dict(data)
        runs = [config.get(k) for k in ("gan_run", "gan", "run") if isinstance(config.get(k), str)]
        pool_csv = Path(workspace) / str(m.get("id", "")) / "pool" / "pool.csv"
        if pool_csv.is_file():
            with open(pool_csv) as fh:
                fh.readline()
                first = fh.readline().split(",")
            runs += first[3:4]
        for run in runs:
            if run and run not in seen and (Path(workspace) / run / "run.json").is_file():
                seen.add(run)
                todo.append(run_meta(Path(workspace) / run))
    return None


def classifier_data(data: dict[str, Any]) -> DataConfig | None:
    """The classify ``data`` whose replicate-0 ``1:0`` run is the default helper: the data itself, or for a
    translation GAN (masks) the ISIC 2019 data its masks were filtered by (None when only a split file names it:
    the data root is then unknown)."""
    if data["format"] == MASKS_FORMAT:
        if not data.get("split_data"):
            return None
        data = {"format": "isic2019", "root": data["split_data"], "split_seed": data.get("split_seed", 0)}
    return DataConfig.model_validate({k: data[k] for k in ("format", "root", "split_seed", "split_file")
                                      if data.get(k) is not None})


def reference_records(workspace: Path, data: dict[str, Any]) -> tuple[list[LesionRecord], list[LesionRecord]]:
    """(training, validation) records: the real images the GAN learnt from, and real images of the same split
    that it never saw. A translation GAN (``isic2018-masks`` data) learnt from the images of the training masks
    of its ISIC 2019 split; its yardstick is that split's validation part."""
    if data["format"] == MASKS_FORMAT:
        from engine.gans.data import masks_in_split, translation_split

        split, split_file = translation_split(workspace, data)
        train, _ = masks_in_split(data, split, split_file)
        return train, list(split.val)
    from engine.data import load_dataset
    from engine.data.split import resolve_split

    records = load_dataset(data["format"], data["root"]).records
    split, _ = resolve_split(workspace, data["format"], records, split_seed=data.get("split_seed", 0),
                             split_file=data.get("split_file"))
    return list(split.train), list(split.val)


def _feature_nn(query: np.ndarray, reference: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference row (Euclidean) of each query row, both L2-normalised; chunked on ``device``."""
    import torch

    ref = torch.nn.functional.normalize(torch.from_numpy(reference).float().to(device), dim=1)
    idx, dist = [], []
    for start in range(0, len(query), 4096):
        q = torch.nn.functional.normalize(torch.from_numpy(query[start:start + 4096]).float().to(device), dim=1)
        sim = q @ ref.T
        best, arg = sim.max(dim=1)
        idx.append(arg.cpu())
        dist.append(torch.sqrt(torch.clamp(2 - 2 * best, min=0)).cpu())
    if not idx:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return torch.cat(idx).numpy(), torch.cat(dist).double().numpy()


def _features(helper: Any, images: Any, batch: int = 1024) -> np.ndarray:
    parts = [helper.features(np.asarray(images[np.arange(s, min(s + batch, len(images)))]))
             for s in range(0, len(images), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


def _save_pair(path: Path, left: np.ndarray, right: np.ndarray) -> None:
    from PIL import Image

    pair = Image.new("RGB", (2 * _PAIR_SIDE + 4, _PAIR_SIDE), (255, 255, 255))
    for k, img in enumerate((left, right)):
        pair.paste(Image.fromarray(img).resize((_PAIR_SIDE, _PAIR_SIDE), Image.NEAREST), (k * (_PAIR_SIDE + 4), 0))
    with atomic_path(path) as tmp:
        pair.save(tmp, format="PNG")


def _histograms(path: Path, synth: dict[str, np.ndarray], val: dict[str, np.ndarray],
                threshold: dict[str, float | None]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in ("phash", "feature") if k in synth]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        s, v = synth[name], val[name]
        hi = max(float(s.max(initial=0)), float(v.max(initial=0)))
        bins = np.arange(0, hi + 2) - 0.5 if name == "phash" else np.linspace(0, hi or 1, 40)
        ax.hist(v, bins=bins, density=True, alpha=0.55, label=f"validation (n={len(v)})", color="tab:blue")
        ax.hist(s, bins=bins, density=True, alpha=0.55, label=f"synthetic (n={len(s)})", color="tab:orange")
        if threshold[name] is not None:
            ax.axvline(threshold[name], color="red", linestyle="--", label="threshold")
        ax.set_xlabel("pHash Hamming distance" if name == "phash" else "feature distance (normalised)")
        ax.set_title(f"nearest training image by {'pHash' if name == 'phash' else 'features'}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_audit(workspace: Path, run_id: str, *, helper: str | None, data: dict[str, Any] | None = None,
              quantile: float = DEFAULT_QUANTILE, device: str = "cpu",
              log: logging.Logger | None = None) -> dict[str, Any]:
    """Audit a pool or select run (see the module doc); writes ``<run>/audit/`` and returns ``audit.json``."""
    from engine.data.cache import ImageCache

    log = log or logging.getLogger(__name__)
    if not 0 < quantile < 1:
        raise InputError(f"--quantile: must be in (0, 1), got {quantile}")
    synthetic, meta = synthetic_of(workspace, run_id)
    if not len(synthetic.ids):
        raise InputError(f"run {run_id}: holds no synthetic images to audit")
    data = data or data_of(workspace, meta)
    if data is None:
        raise InputError(f"run {run_id}: cannot tell which real data its GAN learnt from; "
                         f"pass --data ROOT --format F")
    train, val = reference_records(workspace, data)
    res = synthetic.images.shape[1]
    cache = ImageCache(Path(workspace) / "cache" / "images")
    train_images = cache.load([r.image for r in train], res)  # as the GAN saw them: at its resolution
    val_images = cache.load([r.image for r in val], res)
    log.info("audit %s: %d synthetic vs %d training images (%d validation as reference), %d px",
             run_id, len(synthetic.ids), len(train_images), len(val_images), res)

    h_syn, h_train, h_val = phash(synthetic.images), phash(train_images), phash(val_images)
    near = {"phash": nearest(h_syn, h_train)}
    ref = {"phash": nearest(h_val, h_train)[1].astype(np.float64)}
    feats_train = feats_syn = None
    if helper is not None:
        from engine.train.trained import load_classifier

        model = load_classifier(workspace, helper, device)
        feats_train = _features(model, train_images)
        feats_syn = _features(model, synthetic.images)
        near["feature"] = _feature_nn(feats_syn, feats_train, device)
        ref["feature"] = _feature_nn(_features(model, val_images), feats_train, device)[1]
    else:
        log.warning("no helper classifier: the audit measures pHash distances only (pass --helper RUN)")
    threshold: dict[str, float | None] = {"phash": None, "feature": None}
    suspected = np.zeros(len(synthetic.ids), dtype=bool)
    for name, (_, dist) in near.items():
        threshold[name] = float(np.quantile(ref[name], quantile))
        suspected |= dist.astype(np.float64) < threshold[name]

    out = Path(workspace) / run_id / AUDIT_DIR
    (out / "closest").mkdir(parents=True, exist_ok=True)
    for old in (out / "closest").glob("*.png"):
        old.unlink()
    rank_by = "feature" if "feature" in near else "phash"
    order = np.lexsort((near["phash"][1], near[rank_by][1]))[:CLOSEST]
    closest = []
    for rank, i in enumerate(order.tolist(), start=1):
        j = int(near[rank_by][0][i])
        png = out / "closest" / f"{rank:02d}-{synthetic.ids[i]}.png"
        _save_pair(png, np.asarray(synthetic.images[np.array([i])])[0], np.asarray(train_images[j]))
        feature = None
        if feats_syn is not None and feats_train is not None:
            a = feats_syn[i] / max(np.linalg.norm(feats_syn[i]), 1e-12)
            b = feats_train[j] / max(np.linalg.norm(feats_train[j]), 1e-12)
            feature = float(np.linalg.norm(a - b))
        closest.append({"pool_id": synthetic.ids[i], "train_image": train[j].image_id,
                        "phash_distance": int(np.bitwise_count(h_syn[i] ^ h_train[j])),
                        "feature_distance": feature, "png": str(png.relative_to(out))})
    per_class = {}
    for label, name in enumerate(CLASS_NAMES):
        mine = synthetic.labels == label
        n = int(mine.sum())
        flagged = int(suspected[mine].sum())
        per_class[name] = {"n": n, "suspected_copies": flagged, "fraction": flagged / n if n else 0.0}
    _histograms(out / "histograms.png", {k: v[1].astype(np.float64) for k, v in near.items()}, ref, threshold)
    doc = {"reference": "val", "threshold": threshold, "per_class": per_class, "closest": closest}
    atomic_write_json(out / "audit.json", doc)
    return doc
