"""Translation GANs as runs: ``ganaug gan train|sample|pool`` on attribute masks, the split rule, resume equality."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gan_fixtures import assert_resume_equals_uninterrupted, cli, train_classifier
from PIL import Image

from engine.data import load_dataset
from engine.data.cache import decode_image
from engine.data.masks import colour, training_masks
from engine.data.split import persisted_split
from engine.errors import InputError
from engine.gans.kind import validate_gan_train
from engine.synth.pool import COLUMNS, Pool

RES = 32  # the data
GAN_RES = 16
SMALL = {"res": GAN_RES, "batch": 32, "kimg": 1, "snapshot_kimg": 1}  # 32 steps; SPADE needs a width per scale
SETS = {"pix2pixhd": [], "spade": ["--set", "channels=[32,16,8]"]}
CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
ATTRIBUTES = ("pigment_network", "negative_network", "streaks", "milia_like_cyst", "globules")
TASK1, TASK2 = "ISIC2018_Task1_Training_GroundTruth", "ISIC2018_Task2_Training_GroundTruth_v3"


def write_isic(root: Path, n: int = 60, n_masks: int = 45) -> Path:
    """ISIC 2019 layout with toy lesions (melanoma: large, dark, globules) and, for the first ``n_masks`` images,
    ISIC 2018 Task 1/2 masks beside them: ``root`` serves as both the masks root and the split's data."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:RES, 0:RES]
    gt = ["image," + ",".join(CLASSES)]
    for folder in ("ISIC_2019_Training_Input", TASK1, TASK2):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image_id, melanoma = f"ISIC_{i:07d}", i % 3 == 0
        cy, cx = rng.uniform(12, 20, size=2)
        lesion = (yy - cy) ** 2 + (xx - cx) ** 2 < (rng.uniform(9, 12) if melanoma else rng.uniform(5, 8)) ** 2
        attrs = {a: np.zeros((RES, RES), bool) for a in ATTRIBUTES}
        if melanoma:
            attrs["globules"] = lesion & ((yy + xx) % 6 == 0)
        else:
            attrs["pigment_network"] = lesion & (yy < cy)
        img = np.empty((RES, RES, 3))
        img[:] = [220, 180, 160]
        img[lesion] = [70, 40, 45] if melanoma else [150, 100, 70]
        img[attrs["globules"]] = [20, 10, 10]
        img[attrs["pigment_network"]] = [110, 70, 50]
        if i % 4 == 0:
            img[:, :3] = 0  # a dark letterbox band: the pad label
        img += rng.normal(0, 4, size=img.shape)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / "ISIC_2019_Training_Input" / f"{image_id}.jpg",
                                                                 quality=95)
        gt.append(image_id + "," + ",".join("1.0" if c == ("MEL" if melanoma else "NV") else "0.0" for c in CLASSES))
        if i < n_masks:
            Image.fromarray(lesion.astype(np.uint8) * 255).save(root / TASK1 / f"{image_id}_segmentation.png")
            for a, m in attrs.items():
                Image.fromarray(m.astype(np.uint8) * 255).save(root / TASK2 / f"{image_id}_attribute_{a}.png")
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(gt) + "\n")
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("translation")
    root = write_isic(base / "isic")
    ws = base / "ws"
    split, split_file = persisted_split(ws, "isic2019", load_dataset("isic2019", root).records, 0)
    train, left_out = training_masks(load_dataset("isic2018-masks", root).records, split, "split")
    return {"root": root, "ws": ws, "features": train_classifier(ws, root, "isic2019"), "split": split,
            "split_file": split_file, "train_masks": train, "left_out": left_out}


def _config(setup: dict[str, Any], family: str, **gan: Any) -> dict[str, Any]:
    return validate_gan_train({
        "family": family, "preset": "tiny", "device": "cpu", "metrics": {"features": setup["features"]},
        "data": {"format": "isic2018-masks", "root": str(setup["root"]), "split_data": str(setup["root"])},
        "gan": {**SMALL, **({"channels": [32, 16, 8]} if family == "spade" else {}), **gan}}, setup["ws"])


@pytest.mark.parametrize("family", ["pix2pixhd", "spade"])
def test_train_sample_pool_end_to_end(setup: dict[str, Any], tmp_path: Path, family: str) -> None:
    ws, root = str(setup["ws"]), str(setup["root"])
    train = setup["train_masks"]
    assert setup["left_out"].get("image in val", 0) + setup["left_out"].get("image in test", 0) > 0
    code, out = cli("gan", "train", "--family", family, "--preset", "tiny", "--data", root, "--format",
                    "isic2018-masks", "--split-data", root, "--split-seed", "0", "--features", setup["features"],
                    *[f"--set={k}={v}" for k, v in SMALL.items()], *SETS[family], "--workspace", ws, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "succeeded"
    run_dir, run_id = Path(doc["run_dir"]), doc["run_id"]
    result = json.loads((run_dir / "result.json").read_text())
    n_mel = sum(r.label for r in train)
    assert result["n_train"] == {"benign": len(train) - n_mel, "melanoma": n_mel}
    assert result["split"] == str(setup["split_file"])  # the classifier's own split file of that data and seed
    (entry,) = result["checkpoints"]
    assert {"fid_domain", "precision_domain", "recall_domain"} <= set(entry)
    assert result["selected"]["kimg"] == 1
    log = (run_dir / "log.txt").read_text()
    assert "VGG perceptual loss off" in log and f"{len(train)} training masks" in log

    # The grid: label map (palette) | real | synthetic of the first training masks.
    from engine.data.masks import LabelMapCache

    maps = LabelMapCache(setup["ws"] / "cache" / "labelmaps").load(train, GAN_RES)
    grid = np.asarray(Image.open(run_dir / entry["grid"]))
    np.testing.assert_array_equal(grid[:GAN_RES, :GAN_RES], colour(maps[0]))
    np.testing.assert_array_equal(grid[:GAN_RES, GAN_RES + 2:2 * GAN_RES + 2], decode_image(train[0].image, GAN_RES))

    # gan sample: triplets of the first N training masks, or of listed ones; never a held-out image's mask.
    code, _ = cli("gan", "sample", run_id, "--n", "3", "--out", str(tmp_path / "s"), "--workspace", ws)
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == sorted(f"{r.image_id}_{k}.png" for r in train[:3] for k in ("map", "real", "synthetic"))
    held_out = setup["split"].test[0].image_id
    listing = tmp_path / "masks.txt"
    listing.write_text(f"{train[5].image_id}\n{held_out}\n")
    code, msg = cli("gan", "sample", run_id, "--masks", str(listing), "--out", str(tmp_path / "t.png"),
                    "--workspace", ws)
    assert code == 2 and f"line 2: {held_out} is not a training mask" in msg and "\n" not in msg
    listing.write_text(f"image_id,note\n{train[5].image_id},x\n{train[1].image_id},y\n")
    code, _ = cli("gan", "sample", run_id, "--masks", str(listing), "--out", str(tmp_path / "t.png"),
                  "--workspace", ws)
    assert code == 0 and np.asarray(Image.open(tmp_path / "t.png")).shape[1] == 3 * GAN_RES + 4
    code, msg = cli("gan", "sample", run_id, "--n", "2", "--class", "benign", "--out", str(tmp_path / "u"),
                    "--workspace", ws)
    assert code == 2 and "translation GAN" in msg

    # gan pool: exactly one image per training mask, of its source image's class; --per-class is refused.
    code, msg = cli("gan", "pool", run_id, "--per-class", "5", "--workspace", ws)
    assert code == 2 and "one image per training mask" in msg and "\n" not in msg
    code, out = cli("gan", "pool", run_id, "--workspace", ws, "--json")
    assert code == 0, out
    pool_dir = Path(json.loads(out)["run_dir"])
    pool = Pool(pool_dir)
    with open(pool_dir / "pool" / "pool.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(train) == len(pool.ids)
    assert [r["source_mask"] for r in rows] == [m.image_id for m in train]
    assert [int(r["label"]) for r in rows] == [m.label for m in train] == pool.labels.tolist()
    assert all(r["seed"] == "" and r["gan_run"] == run_id and r["checkpoint"] == "kimg-000001" for r in rows)
    assert [r["id"] for r in rows if r["class"] == "melanoma"] == [f"m{i:06d}" for i in range(n_mel)]
    first = pool.images[pool.rows_of([rows[0]["id"]])][0]
    np.testing.assert_array_equal(first, np.asarray(Image.open(tmp_path / "s" / f"{train[0].image_id}_synthetic.png")))
    info = json.loads((pool_dir / "result.json").read_text())
    assert info["per_class"] == {"benign": len(train) - n_mel, "melanoma": n_mel} and info["images_per_s"] > 0

    # The audit of a translation pool: the training images are those of the training masks (never the masks'
    # own split of the mask folder), the yardstick the ISIC 2019 split's validation images.
    code, out = cli("audit", pool_dir.name, "--helper", setup["features"], "--device", "cpu", "--workspace", ws,
                    "--json")
    assert code == 0, out
    audit = json.loads(out)
    assert {c: v["n"] for c, v in audit["per_class"].items()} == info["per_class"]
    assert {c["train_image"] for c in audit["closest"]} <= {m.image_id for m in train}
    assert not list((setup["ws"] / "splits").glob("isic2018-masks-*"))


def test_spade_interrupted_and_resumed_equals_uninterrupted(setup: dict[str, Any], tmp_path: Path) -> None:
    config = _config(setup, "spade", kimg=2)  # 63 steps of 32, checkpoints after steps 32 and 63
    runs = assert_resume_equals_uninterrupted(tmp_path, setup["ws"], config, stop_after=45)
    snapshot = json.loads((runs["ref"].run_dir / "result.json").read_text())["checkpoints"][0]["path"]
    # batch-norm statistics are part of what must match (SPADE's parameter-free norm keeps running stats)
    assert any("running_mean" in k for k in torch.load(runs["ref"].run_dir / snapshot, weights_only=True)["generator"])


def test_split_file_and_split_data_name_the_same_masks(setup: dict[str, Any]) -> None:
    from engine.gans.data import load_translation_data, translation_masks

    by_data, path = translation_masks(setup["ws"], {"format": "isic2018-masks", "root": str(setup["root"]),
                                                    "split_data": str(setup["root"]), "split_seed": 0})
    by_file, _ = translation_masks(setup["ws"], {"format": "isic2018-masks", "root": str(setup["root"]),
                                                 "split_file": str(setup["split_file"])})
    assert path == setup["split_file"]
    assert [r.image_id for r in by_data] == [r.image_id for r in by_file] == [r.image_id for r in setup["train_masks"]]
    train_ids = {r.image_id for r in setup["split"].train}
    assert {r.image_id for r in by_data} <= train_ids  # no validation or test image's mask
    other, _ = translation_masks(setup["ws"], {"format": "isic2018-masks", "root": str(setup["root"]),
                                               "split_data": str(setup["root"]), "split_seed": 3})
    assert [r.image_id for r in other] != [r.image_id for r in by_data]
    data = load_translation_data(setup["ws"], {"format": "isic2018-masks", "root": str(setup["root"]),
                                               "split_file": str(setup["split_file"])}, GAN_RES, boundary=True)
    batch = data.batch(np.arange(4), torch.device("cpu"))
    assert batch.maps.shape == (4, 9, GAN_RES, GAN_RES)
    assert torch.equal(batch.maps[:, :8].sum(1), torch.ones(4, GAN_RES, GAN_RES))
    assert batch.labels.tolist() == [r.label for r in by_data[:4]]


def test_translation_configs_are_refused_in_one_line(setup: dict[str, Any], tmp_path: Path) -> None:
    root, ws = str(setup["root"]), str(tmp_path / "ws")
    base = ["gan", "train", "--family", "spade", "--data", root, "--features", setup["features"], "--workspace", ws]
    code, msg = cli(*base, "--format", "isic2019", "--split-data", root)
    assert code == 2 and "use --format isic2018-masks" in msg
    code, msg = cli(*base, "--format", "isic2018-masks")
    assert code == 2 and "--split-data ISIC2019_ROOT" in msg and "\n" not in msg
    code, msg = cli(*base, "--format", "isic2018-masks", "--split-data", root, "--set", f"vgg_weights={tmp_path}/v.pth")
    assert code == 2 and "VGG19 weights file not found" in msg
    code, msg = cli(*base, "--format", "isic2018-masks", "--split-data", root, "--set", "res=48")
    assert code == 2 and "spade cannot be built from this config: spade: res 48 must be bottom 4" in msg
    code, msg = cli("gan", "train", "--family", "pgan", "--data", root, "--format", "isic2019", "--split-data", root,
                    "--features", setup["features"], "--workspace", ws)
    assert code == 2 and "--split-data names the ISIC 2019 data" in msg
    assert not list(Path(ws).glob("*-gan-train")) if Path(ws).exists() else True
    with pytest.raises(InputError, match="give one"):
        validate_gan_train({"family": "pix2pixhd", "metrics": {"features": "x"},
                            "data": {"format": "isic2018-masks", "root": root, "split_data": root,
                                     "split_file": str(setup["split_file"])}}, setup["ws"])
