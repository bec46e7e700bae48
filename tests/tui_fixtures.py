"""A deterministic workspace for the TUI's tests and snapshots: fixed times, ids, metrics, logs, images.

Every run is made through the store's own API (create, claim, metrics, progress, finish) with the store's
clock pinned, so ids and times are the same on every machine; the artefacts (log, result.json, sample grids,
a pool) are written in the formats their kinds write.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from engine import store as st
from engine.store import core
from engine.synth.pool import PoolRow, PoolWriter
from ganaug_tui.app import GanaugApp

T0 = 1795000000.0  # 2026-11-18 11:06:40 UTC: every time in the fixture is T0 + something
NOW = T0 + 3600.0  # what the app's clock says in the tests


class _Clock:
    """Stands in for the ``time`` module inside ``engine.store.core`` while the fixture is made."""

    def __init__(self) -> None:
        self.now = T0

    def time(self) -> float:
        return self.now


def _image(seed: int, res: int, melanoma: bool) -> np.ndarray:
    """A smooth blob on skin tone: darker and more irregular for melanoma (so classes differ at a glance)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res] / res - 0.5
    angle = np.arctan2(yy, xx)
    wobble = 1 + (0.35 if melanoma else 0.08) * np.sin(angle * rng.integers(3, 7) + rng.uniform(0, 6))
    lesion = np.hypot(xx, yy) < 0.3 * wobble
    img = np.empty((res, res, 3), dtype=np.float64)
    img[...] = (222, 180, 160)
    tone = np.array((70, 40, 35) if melanoma else (150, 100, 70)) + rng.integers(-15, 15, 3)
    img[lesion] = tone
    return img.clip(0, 255).astype(np.uint8)


def _grid(seed: int, res: int = 32, per_row: int = 4) -> Image.Image:
    """A sample grid as gan-train writes it: one row per class (benign, melanoma)."""
    rows = [np.concatenate([_image(seed * 100 + label * 10 + i, res, bool(label)) for i in range(per_row)], axis=1)
            for label in (0, 1)]
    return Image.fromarray(np.concatenate(rows, axis=0))


def make_workspace(ws: Path) -> dict[str, str]:
    """Fill ``ws`` with runs of every interesting state; returns the run ids by role."""
    clock = _Clock()
    saved = core.time
    core.time = clock  # type: ignore[assignment]
    try:
        return _fill(ws, clock)
    finally:
        core.time = saved


def _fill(ws: Path, clock: _Clock) -> dict[str, str]:
    store = st.open_store(ws)
    ids: dict[str, str] = {}
    base = {"data": {"format": "isic2019", "root": str(ws / "no-data")}, "model": {"name": "test_resnet"}}

    # A finished fine-tune with its curves, log and test AUCs.
    done = ids["done"] = store.create_run("classify", {**base, "replicate": 0, "real_fraction": "1"},
                                          label="1:0", experiment="augmentation")
    store.claim(done, slot="cpu0", engine_pid=None)
    rows = []
    for epoch in range(6):
        rows += [("train_loss", epoch, 0.7 * math.exp(-epoch / 3), 0.0), ("val_loss", epoch, 0.6 - 0.04 * epoch, 0.0),
                 ("val_auc", epoch, 0.6 + 0.05 * epoch, 0.0), ("lr", epoch, 1e-2 if epoch < 4 else 1e-3, 0.0),
                 ("images_per_s", epoch, 1150.0 + 10 * epoch, 0.0)]
    store.write_metrics(done, rows)
    log = [f"2026-11-18 08:{30 + e:02d}:00 INFO epoch {e + 1}/6 train_loss {0.7 * math.exp(-e / 3):.4f} "
           f"val_loss {0.6 - 0.04 * e:.4f} val_auc {0.6 + 0.05 * e:.4f} lr 0.01 images/s 1150" for e in range(6)]
    auc = {"isic19": 0.8312, "isic20": 0.7420, "derm7pt-derm": 0.6981, "derm7pt-clinic": 0.6205, "dermofit": 0.7777}
    log += ["2026-11-18 08:37:00 INFO test AUC " + " ".join(f"{k} {v:.4f}" for k, v in auc.items()),
            "2026-11-18 08:37:01 INFO run succeeded"]
    (ws / done / "log.txt").write_text("\n".join(log) + "\n")
    (ws / done / "result.json").write_text(json.dumps({"auc": auc, "val_auc": 0.85, "best_epoch": 6, "epochs": 6,
                                                        "stopped_early": False, "replicate": 0}))
    clock.now += 400
    store.finish(done, st.SUCCEEDED)

    # A fine-tune in the middle of epoch 4.
    clock.now = T0 + 1000
    live = ids["running"] = store.create_run("classify", {**base, "replicate": 1, "real_fraction": "1"},
                                             label="1:0", experiment="augmentation")
    store.claim(live, slot="cpu1", engine_pid=None)
    store.write_metrics(live, [(n, e, v + 0.01 * e, 0.0) for e in range(3)
                               for n, v in (("train_loss", 0.6), ("val_loss", 0.5), ("val_auc", 0.7))])
    (ws / live / "log.txt").write_text("".join(f"2026-11-18 08:{45 + e}:00 INFO epoch {e + 1}/20 done\n"
                                               for e in range(3)))
    clock.now = T0 + 1600
    store.set_progress(live, 12, 40, "epoch 4")

    # A GAN training run with its sample grids and checkpoint metrics, and the pool it made.
    clock.now = T0 + 1700
    gan = ids["gan"] = store.create_run("gan-train", {**base, "family": "stylegan2", "preset": "tiny"},
                                        label="sgn tiny", experiment="augmentation")
    store.claim(gan, slot="cpu2", engine_pid=None)
    store.write_metrics(gan, [(n, step * 256, v, 0.0) for step in range(40)
                              for n, v in (("loss_g", 2.0 - step / 40), ("loss_d", 0.5 + step / 100),
                                           ("aug_p", step / 200))]
                        + [("fid_domain", kimg, 80.0 / (1 + kimg), 0.0) for kimg in (0, 4, 8)])
    (ws / gan / "samples").mkdir()
    for kimg in (0, 4, 8):
        _grid(kimg).save(ws / gan / "samples" / f"kimg-{kimg:06d}.png")
    (ws / gan / "log.txt").write_text("2026-11-18 08:55:00 INFO kimg 8: fid_domain 8.889\n")
    clock.now = T0 + 2000
    store.set_progress(gan, 8, 16, "kimg")

    clock.now = T0 + 2100
    pool = ids["pool"] = store.create_run("gan-pool", {"per_class": 8}, label="sgn pool", experiment="augmentation",
                                          parents=[done])
    store.claim(pool, slot="cpu3", engine_pid=None)
    writer = PoolWriter(ws / pool, res=32, shard_size=16)
    rows_meta = [PoolRow(f"{'bm'[label]}{i:06d}", label, gan, "kimg-000008", seed=label * 100 + i)
                 for label in (0, 1) for i in range(8)]
    writer.write_shard(0, np.stack([_image(r.seed or 0, 32, bool(r.label)) for r in rows_meta]), rows_meta)
    writer.finish(1)
    clock.now = T0 + 2200
    store.finish(pool, st.SUCCEEDED)

    # Waiting, failed and blocked runs.
    clock.now = T0 + 2300
    ids["queued"] = store.create_run("classify", {**base, "replicate": 0, "real_fraction": "1/2"}, label="1/2:0",
                                     experiment="anonymization")
    failed = ids["failed"] = store.create_run("fail", {"steps": 1}, label="broken")
    store.claim(failed, slot="cpu0", engine_pid=None)
    clock.now = T0 + 2330
    store.finish(failed, st.FAILED, "RuntimeError: the data root vanished")
    ids["blocked"] = store.create_run("classify", {**base, "replicate": 2}, label="1:1/2", parents=[ids["running"]],
                                      experiment="augmentation")
    store.close()
    return ids


# ------------------------------------------------------------------------------------------ results
RESULTS_TOML = """[data.train]
format = "isic2019"
root = "/d/train"
[data.tests.isic20]
format = "isic2020"
root = "/d/isic20"
[data.tests.dermofit]
format = "dermofit"
root = "/d/dermofit"
[gans.sgn]
family = "stylegan2"
[[experiment]]
name = "paper-mini"
baseline = "1:0"
replicates = 6
[experiment.groups]
augmentation = ["1:0", "1:1/2", "1:1 bst"]
anonymization = ["1/2:0", "1/2:1/2 div"]
[[experiment]]
name = "mismatch"
baseline = "1:0"
replicates = 2
[experiment.groups]
g = ["1:0", "1:1/2"]
"""
# Per label: the AUC offset from the baseline's replicate k (so the paired statistics have something to find).
RESULTS_EFFECT = {"1:0": 0.0, "1:1/2": 0.012, "1:1 bst": -0.002, "1/2:0": -0.03, "1/2:1/2 div": -0.05}
RESULTS_FAILED = ("1:1 bst", 5)  # one replicate failed: its pair is dropped and listed as missing


def add_results_experiments(ws: Path) -> None:
    """Two submitted experiments of classify runs with ``auc/<test set>`` metrics, as the grid and the classify
    kind record them: ``paper-mini`` (2 groups, 5 labels x 6 replicates, 2 test sets, one failed replicate) and
    ``mismatch`` (one replicate trained under another seed: the analysis refuses to compare it)."""
    from engine.config import parse_experiments

    clock = _Clock()
    clock.now = T0 + 2400
    saved = core.time
    core.time = clock  # type: ignore[assignment]
    rng = np.random.default_rng(7)
    base_auc = {ts: 0.80 + 0.02 * rng.standard_normal(6) for ts in ("isic19", "isic20", "dermofit")}
    config = {"data": {"format": "isic2019", "root": "/d/train"}, "model": {"name": "test_resnet"}}
    try:
        with st.open_store(ws) as store:
            for exp in parse_experiments(RESULTS_TOML, Path("experiments.toml")):
                store.set_experiment(exp.name, exp.to_spec())
                keys = [(label, k) for label in exp.labels for k in range(exp.replicates)]
                ids = store.create_runs([st.NewRun("classify", {**config, "replicate": k, "seed": 7 if (
                    exp.name == "mismatch" and (label, k) == ("1:1/2", 1)) else 0}, label=label, experiment=exp.name)
                    for label, k in keys])
                for (label, k), run_id in zip(keys, ids, strict=True):
                    clock.now += 10
                    store.claim(run_id, slot="cpu0", engine_pid=None)
                    if exp.name == "paper-mini" and (label, k) == RESULTS_FAILED:
                        store.finish(run_id, st.FAILED, "RuntimeError: CUDA out of memory")
                        continue
                    noise = [0.003 * ((k * 7 + len(label) * 3 + i) % 5 - 2) for i in range(len(base_auc))]
                    store.write_metrics(run_id, [(f"auc/{ts}", 0, round(float(v[k]) + RESULTS_EFFECT[label] + e, 4),
                                                  0.0) for (ts, v), e in zip(base_auc.items(), noise, strict=True)])
                    store.finish(run_id, st.SUCCEEDED)
    finally:
        core.time = saved


# ------------------------------------------------------------------------------------------ pilot helpers
def make_app(workspace: Path, **kw: object) -> GanaugApp:
    """The app on a fixture workspace: the fixture clock, a slow poll (tests move it on), no GPU probe."""
    return GanaugApp(workspace, poll_s=60, clock=lambda: NOW, gpu=kw.pop("gpu", False), **kw)  # type: ignore[arg-type]


async def settle(app: GanaugApp, pilot) -> None:  # noqa: ANN001
    """Let the thread workers finish and their messages land (a worker may start another: a few rounds)."""
    for _ in range(4):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()
