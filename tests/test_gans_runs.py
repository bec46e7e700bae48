"""GANs as runs: ``ganaug gan train|fid|sample|pool`` end to end, resume equality, overfitting, data rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gan_fixtures import assert_resume_equals_uninterrupted, cli, train_classifier, write_lesions
from PIL import Image

from engine.errors import InputError
from engine.gans.kind import validate_gan_train
from engine.synth.pool import COLUMNS, Pool

GAN_RES = 16
SMALL = ["--set", f"res={GAN_RES}", "--set", "batch=32", "--set", "snapshot_kimg=1", "--kimg", "2"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("gans")
    data = write_lesions(base / "lesions", 72, seed=3)
    ws = base / "ws"
    return {"data": data, "ws": ws, "features": train_classifier(ws, data)}


def _train_config(setup: dict[str, Any], family: str, **gan: Any) -> dict[str, Any]:
    return validate_gan_train({
        "family": family, "preset": "tiny", "data": {"format": "csv", "root": str(setup["data"])},
        "gan": {"res": GAN_RES, "batch": 32, "snapshot_kimg": 1, "kimg": 2, **gan},
        "metrics": {"features": setup["features"]}, "device": "cpu"}, setup["ws"])


def test_gan_train_fid_sample_pool_end_to_end(setup: dict[str, Any], tmp_path: Path) -> None:
    ws = str(setup["ws"])
    code, out = cli("gan", "train", "--family", "stylegan2", "--preset", "tiny", "--data", str(setup["data"]),
                    "--format", "csv", "--features", setup["features"], *SMALL, "--workspace", ws, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "succeeded"
    run_dir, run_id = Path(doc["run_dir"]), doc["run_id"]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["features"] == f"domain:{setup['features']}"
    assert [c["kimg"] for c in result["checkpoints"]] == [1, 2]
    for c in result["checkpoints"]:
        assert c["grid"] == f"samples/kimg-{c['kimg']:06d}.png" and (run_dir / c["grid"]).is_file()
        assert (run_dir / c["path"]).is_file()
        assert {"fid_domain", "precision_domain", "recall_domain"} <= set(c) and "fid" not in c
    # one grid row per class, same latents at every checkpoint: 2 rows of 8 at 16 px + 2 px padding
    grid = np.asarray(Image.open(run_dir / "samples" / "kimg-000001.png"))
    assert grid.shape == (2 * 18 + 2, 8 * 18 + 2, 3)
    sel = result["selected"]
    assert set(sel) == {"kimg", "path", "rule"} and sel["kimg"] in (1, 2) and "fid_domain" in sel["rule"]
    best = min(c["fid_domain"] for c in result["checkpoints"])
    chosen = next(c for c in result["checkpoints"] if c["kimg"] == sel["kimg"])
    assert chosen["fid_domain"] - best < 0.01 * best or chosen["fid_domain"] == best

    # stored metrics: losses at step = images seen, checkpoint metrics at step = kimg
    from engine.store import Store

    with Store(setup["ws"]) as store:
        frame = store.metrics(run_id)
    names = set(frame["name"])
    assert {"loss_g", "loss_d", "r1", "aug_p", "fid_domain", "precision_domain", "recall_domain"} <= names
    assert frame[frame["name"] == "loss_g"]["step"].max() == result["images_seen"] == 2016  # 63 x 32
    assert sorted(frame[frame["name"] == "fid_domain"]["step"]) == [1, 2]

    code, out = cli("gan", "fid", run_id, "--workspace", ws, "--json")
    assert code == 0
    curve = json.loads(out)
    assert curve["selected"] == sel and curve["checkpoints"] == result["checkpoints"]
    code, text = cli("gan", "fid", run_id, "--workspace", ws)
    assert code == 0 and "fid_domain" in text and f"selected: kimg {sel['kimg']}" in text
    # a run still training has no result.json yet: the curve comes from the stored metrics
    (run_dir / "result.json").rename(run_dir / "result.json.bak")
    code, out = cli("gan", "fid", run_id, "--workspace", ws, "--json")
    (run_dir / "result.json.bak").rename(run_dir / "result.json")
    partial = json.loads(out)
    assert partial["selected"] is None and partial["features"] == result["features"]
    assert [(c["kimg"], c["path"], c["fid_domain"]) for c in partial["checkpoints"]] == \
        [(c["kimg"], c["path"], c["fid_domain"]) for c in result["checkpoints"]]

    # samples: a folder of PNGs at the generator's resolution, or one grid; the same images as the pool's
    code, _ = cli("gan", "sample", run_id, "--n", "3", "--class", "melanoma", "--out", str(tmp_path / "s"),
                  "--workspace", ws)
    assert code == 0
    files = sorted((tmp_path / "s").glob("*.png"))
    assert [f.name for f in files] == ["m000000.png", "m000001.png", "m000002.png"]
    assert np.asarray(Image.open(files[0])).shape == (GAN_RES, GAN_RES, 3)
    code, _ = cli("gan", "sample", run_id, "--n", "4", "--class", "benign", "--out", str(tmp_path / "g.png"),
                  "--workspace", ws)
    assert code == 0 and np.asarray(Image.open(tmp_path / "g.png")).shape == (2 * 18 + 2, 2 * 18 + 2, 3)

    code, out = cli("gan", "pool", run_id, "--per-class", "5", "--workspace", ws, "--json")
    assert code == 0, out
    pool_dir = Path(json.loads(out)["run_dir"])
    pool = Pool(pool_dir)
    assert pool.ids == [f"b{i:06d}" for i in range(5)] + [f"m{i:06d}" for i in range(5)]
    assert pool.labels.tolist() == [0] * 5 + [1] * 5 and pool.res == GAN_RES
    with open(pool_dir / "pool" / "pool.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS
    assert {r["gan_run"] for r in rows} == {run_id}
    assert {r["checkpoint"] for r in rows} == {f"kimg-{sel['kimg']:06d}"}
    assert all(r["seed"] and not r["source_mask"] for r in rows)
    melanoma = pool.images[pool.rows_of(["m000000", "m000001", "m000002"])]
    assert np.array_equal(melanoma, np.stack([np.asarray(Image.open(f)) for f in files]))
    pool_result = json.loads((pool_dir / "result.json").read_text())
    assert pool_result["n"] == 10 and pool_result["per_class"] == {"benign": 5, "melanoma": 5}
    assert pool_result["images_per_s"] > 0


@pytest.mark.parametrize("family", ["stylegan2", "pgan"])
def test_interrupted_and_resumed_training_equals_uninterrupted(setup: dict[str, Any], tmp_path: Path,
                                                               family: str) -> None:
    config = _train_config(setup, family, **({"ada_kimg": 0.5} if family == "stylegan2" else {}))
    # 63 steps of 32 images, a checkpoint after step 32: stop between the first and the second
    runs = assert_resume_equals_uninterrupted(tmp_path, setup["ws"], config, stop_after=45)
    if family == "stylegan2":
        assert runs["ref"].series["aug_p"][2016] > 0  # ADA had moved p, and the resumed run carried it on


def test_validation_and_test_images_never_reach_the_gan(setup: dict[str, Any]) -> None:
    from engine.data import load_dataset
    from engine.data.split import persisted_split
    from engine.gans.data import load_training_data

    data = load_training_data(setup["ws"], {"format": "csv", "root": str(setup["data"])}, GAN_RES)
    split, _ = persisted_split(setup["ws"], "csv", load_dataset("csv", setup["data"]).records, 0)
    assert {r.image_id for r in data.records} == {r.image_id for r in split.train}
    assert not {r.image_id for r in data.records} & {r.image_id for r in (*split.val, *split.test)}
    assert data.images.shape == (len(split.train), GAN_RES, GAN_RES, 3)
    batch = data.batch(np.arange(4), torch.device("cpu"))
    assert batch.images.shape == (4, 3, GAN_RES, GAN_RES) and -1 <= batch.images.min() < batch.images.max() <= 1


def test_bad_gan_configs_are_refused_in_one_line(setup: dict[str, Any], tmp_path: Path) -> None:
    base = ["gan", "train", "--family", "stylegan2", "--data", str(setup["data"]), "--format", "csv",
            "--workspace", str(tmp_path / "ws")]
    code, msg = cli(*base)
    assert code == 2 and "--features RUN" in msg and "\n" not in msg
    code, msg = cli(*base, "--features", "x", "--set", "chanels=3")
    assert code == 2 and "unknown config key 'chanels'" in msg
    code, msg = cli(*base, "--features", "x", "--preset", "huge")
    assert code == 2 and "preset" in msg
    code, msg = cli("gan", "train", "--family", "biggan", "--data", str(setup["data"]), "--format", "csv",
                    "--features", "x", "--workspace", str(tmp_path / "ws"))
    assert code == 2 and "unknown GAN family 'biggan'" in msg
    code, msg = cli(*base, "--features", "x", "--split-file", str(tmp_path / "none.csv"))
    assert code == 2 and "none.csv" in msg
    assert not (tmp_path / "ws").exists() or not list((tmp_path / "ws").glob("*-gan-train"))
    with pytest.raises(InputError, match="gan.kimg"):
        validate_gan_train({"family": "pgan", "data": {"format": "csv", "root": "x"}, "gan": {"kimg": 0},
                            "metrics": {"features": "x"}}, tmp_path)


def test_a_split_file_names_the_training_images(setup: dict[str, Any], tmp_path: Path) -> None:
    from engine.data import load_dataset
    from engine.data.split import split_dataset
    from engine.gans.data import training_split

    records = load_dataset("csv", setup["data"]).records
    split = split_dataset(records, seed=7)
    split.write_csv(tmp_path / "split.csv")
    train, path = training_split(setup["ws"], {"format": "csv", "root": str(setup["data"]),
                                               "split_file": str(tmp_path / "split.csv")})
    assert path == tmp_path / "split.csv"
    assert [r.image_id for r in train] == [r.image_id for r in split.train]


@pytest.mark.parametrize("family", ["stylegan2", "pgan"])
def test_overfits_a_16_image_set(setup: dict[str, Any], family: str) -> None:
    """Trained on 16 images, the samples move towards them in the domain feature space."""
    from engine.gans import create_gan
    from engine.gans.data import load_training_data
    from engine.gans.generator import to_uint8
    from engine.train.trained import load_classifier

    data = load_training_data(setup["ws"], {"format": "csv", "root": str(setup["data"])}, GAN_RES)
    index = np.arange(16)
    clf = load_classifier(setup["ws"], setup["features"])
    target = clf.features(np.asarray(data.images[index]))
    extra = {"ada": False, "r1_gamma": 0.1, "lr_g": 0.005, "lr_d": 0.005} if family == "stylegan2" else \
        {"stab_kimg": 0.1, "fade_kimg": 0.1, "lr": 0.003}  # PGAN: at 16 px after 31 steps
    trainer = create_gan(family, "tiny", seed=0, res=GAN_RES, batch=16, ema_kimg=0.1, **extra)
    z = torch.randn(16, trainer.G.z_dim, generator=torch.Generator().manual_seed(0))
    labels = torch.from_numpy(data.labels[index])

    def distance() -> float:
        fake = clf.features(to_uint8(trainer.generate(labels=labels, z=z)))
        d = np.linalg.norm(fake[:, None] - target[None], axis=2)
        return float(d.min(axis=1).mean())  # each sample to its nearest training image

    before = distance()
    batch = data.batch(index, torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    for _ in range(50 if family == "stylegan2" else 75):
        trainer.train_step(batch, gen)
    after = distance()
    assert after < 0.5 * before, (before, after)
