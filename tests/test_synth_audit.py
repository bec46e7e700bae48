"""The memorization audit: planted copies of training images are flagged, fresh images are not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from synth_helpers import ScriptedHelper, cli, csv_set, helper_run, pool_run

RES = 24


def _training_pixels(ws: Path, real: Path) -> tuple[np.ndarray, list[str]]:
    """The real training images as the audit sees them (the workspace split, through the image cache)."""
    from engine.data import load_dataset
    from engine.data.cache import ImageCache
    from engine.data.split import persisted_split

    records = load_dataset("csv", real).records
    split, _ = persisted_split(ws, "csv", records, 0)
    pixels = ImageCache(ws / "cache" / "images").load([r.image for r in split.train], RES)
    return np.asarray(pixels), [r.image_id for r in split.train]


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, RES, RES, 3), dtype=np.uint8)


def test_audit_flags_planted_copies_and_nothing_in_fresh_images(tmp_path: Path, monkeypatch) -> None:
    ws, real = tmp_path / "ws", csv_set(tmp_path / "real", 150, res=RES)
    helper = helper_run(ws, monkeypatch, ScriptedHelper())
    train, train_ids = _training_pixels(ws, real)
    rng = np.random.default_rng(0)
    exact = train[:6]
    near = np.clip(train[6:12].astype(int) + rng.normal(0, 2, train[6:12].shape).round(), 0, 255).astype(np.uint8)
    fresh = _noise(rng, 30)
    labels = [0, 1] * 21
    data = {"data": {"format": "csv", "root": str(real)}}
    planted = pool_run(ws, np.concatenate([exact, near, fresh]), labels, config=data)
    clean = pool_run(ws, _noise(rng, 40), [0, 1] * 20, config=data)

    code, out = cli(ws, "audit", planted, "--helper", helper, "--device", "cpu", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert set(doc) == {"reference", "threshold", "per_class", "closest"} and doc["reference"] == "val"
    assert doc["threshold"]["phash"] > 0 and doc["threshold"]["feature"] > 0
    # the pool stores benign first: the 12 planted images alternate classes, 6 per class
    assert {c: (v["n"], v["suspected_copies"]) for c, v in doc["per_class"].items()} == {
        "benign": (21, 6), "melanoma": (21, 6)}
    assert doc["per_class"]["benign"]["fraction"] == 6 / 21
    top = doc["closest"][:12]
    assert {c["train_image"] for c in top} == set(train_ids[:12])  # each copy found its original
    assert all(c["phash_distance"] == 0 and c["feature_distance"] < 1e-6 for c in top if c["train_image"]
               in set(train_ids[:6]))
    out_dir = ws / planted / "audit"
    assert json.loads((out_dir / "audit.json").read_text()) == doc
    with Image.open(out_dir / "histograms.png") as im:
        assert im.format == "PNG"
    with Image.open(out_dir / top[0]["png"]) as im:
        assert im.size == (2 * 128 + 4, 128)

    code, out = cli(ws, "audit", clean, "--helper", helper, "--device", "cpu", "--json")
    assert code == 0, out
    assert [v["suspected_copies"] for v in json.loads(out)["per_class"].values()] == [0, 0]


def test_audit_without_a_helper_uses_phash_and_a_select_run_audits_its_choice(tmp_path: Path) -> None:
    ws, real = tmp_path / "ws", csv_set(tmp_path / "real", 90, res=RES)
    train, _ = _training_pixels(ws, real)
    rng = np.random.default_rng(1)
    pool = pool_run(ws, np.concatenate([train[:4], _noise(rng, 60)]), [0, 1] * 32,
                    config={"data": {"format": "csv", "root": str(real)}})
    code, out = cli(ws, "select", pool, "--label", "1:1/4", "--data", str(real), "--format", "csv", "--json")
    assert code == 0, out
    select_run = json.loads(out)["run_id"]
    code, out = cli(ws, "audit", select_run, "--device", "cpu", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["threshold"]["feature"] is None and all(c["feature_distance"] is None for c in doc["closest"])
    n_selected = sum(v["n"] for v in doc["per_class"].values())
    selected = json.loads((ws / select_run / "result.json").read_text())["counts"]
    assert n_selected == sum(selected.values())
    code, out = cli(ws, "audit", pool, "--device", "cpu", "--json")
    doc = json.loads(out)
    assert sum(v["suspected_copies"] for v in doc["per_class"].values()) == 4
    code, out = cli(ws, "audit", "no-such-run")
    assert code == 2 and "unknown run id 'no-such-run'" in out
