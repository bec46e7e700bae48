"""Test helpers for the sampler, select and audit tests: store-registered pool runs and tiny real data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from helpers import cli as run_cli
from helpers import write_generic_csv


def blob(rng: np.random.Generator, res: int, label: int) -> np.ndarray:
    """A smooth lesion-like image: a dark (melanoma) or light (benign) ellipse on textured skin."""
    yy, xx = np.mgrid[:res, :res] / res
    cy, cx = rng.uniform(0.3, 0.7, 2)
    ry, rx = rng.uniform(0.12, 0.3, 2)
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    skin = np.array([200, 160, 140]) + rng.normal(0, 6, (res, res, 3))
    lesion = np.array([70, 40, 30] if label else [150, 100, 80]) + rng.normal(0, 6, (res, res, 3))
    wave = 12 * np.sin(xx * rng.uniform(4, 12) + yy * rng.uniform(4, 12))[..., None]
    return np.clip(np.where(inside[..., None], lesion + wave, skin), 0, 255).astype(np.uint8)


def csv_set(root: Path, n: int, res: int = 24, seed: int = 0) -> Path:
    """A generic-CSV real data set of ``n`` blob images, every third a melanoma."""
    rng = np.random.default_rng(seed)
    labels = [int(i % 3 == 0) for i in range(n)]
    return write_generic_csv(root, ((f"img{i:04d}.png", blob(rng, res, y), y) for i, y in enumerate(labels)))


def pool_run(ws: Path, images: np.ndarray, labels: list[int] | np.ndarray, family: str = "stylegan2",
             translation: bool = False, config: dict[str, Any] | None = None) -> str:
    """A finished gan-pool run registered in the store, its pool written with the pool format's writer."""
    from engine import store as st
    from engine.synth.pool import PoolRow, PoolWriter, pool_id

    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")  # benign first, as a pool stores them
    images, labels = images[order], labels[order]
    with st.open_store(ws) as store:
        run_id = store.create_run("gan-pool", {"family": family, **(config or {})})
        seen = [0, 0]
        rows = []
        for i, label in enumerate(labels.tolist()):
            rows.append(PoolRow(pool_id(label, seen[label]), label, "gan-run", "kimg-000010",
                                seed=None if translation else i, source_mask=f"ISIC_{i:07d}" if translation else None))
            seen[label] += 1
        writer = PoolWriter(ws / run_id, res=images.shape[1], shard_size=64)
        n_shards = -(-len(rows) // 64)
        for k in range(n_shards):
            writer.write_shard(k, images[k * 64:(k + 1) * 64], rows[k * 64:(k + 1) * 64])
        writer.finish(n_shards, {"family": family})
        store.finish(run_id, st.SUCCEEDED)
    return run_id


def cli(ws: Path, *args: str) -> tuple[int, str]:
    """``ganaug ARGS --workspace WS`` in-process (``helpers.cli``)."""
    return run_cli(*args, "--workspace", str(ws))


class ScriptedHelper:
    """Stands in for a trained classify run: error = mean brightness of the image (of the intended class),
    features = the image averaged down to 6 x 6 (so copies have equal features). Counts what it scored."""

    def __init__(self) -> None:
        self.scored = 0

    def cross_entropy(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        self.scored += len(images)
        return np.asarray(images, dtype=np.float64).mean(axis=(1, 2, 3)) / 255 + 0.0 * np.asarray(labels)

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        n, r = len(x), x.shape[1] - x.shape[1] % 6
        return x[:, :r, :r].reshape(n, 6, r // 6, 6, r // 6, 3).mean(axis=(2, 4)).reshape(n, -1)


def helper_run(ws: Path, monkeypatch: Any, helper: ScriptedHelper) -> str:
    """A finished classify run in the store whose best checkpoint ``load_classifier`` answers with ``helper``."""
    from engine import store as st
    from engine.train import trained

    with st.open_store(ws) as store:
        run_id = store.create_run("classify", {"replicate": 0})
        store.finish(run_id, st.SUCCEEDED)
    (ws / run_id / "checkpoints").mkdir(parents=True, exist_ok=True)
    (ws / run_id / trained.BEST).write_bytes(b"scripted helper weights")
    monkeypatch.setattr(trained, "load_classifier", lambda workspace, run, device="cpu": helper)
    return run_id
