"""``classify`` end to end: CLI -> engine foreground run -> predictions.csv / result.json, on tiny PNG data sets."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import cli, write_generic_csv
from PIL import Image
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import InputError

RES = 32


def write_csv_set(root: Path, n: int, seed: int, shift: int = 0) -> Path:
    """A generic-CSV data set of learnable toy lesions (dark blob = melanoma, light blob = benign)."""
    rng = np.random.default_rng(seed)

    def blob(label: int) -> np.ndarray:
        img = rng.integers(110 + shift, 170 + shift, size=(RES, RES, 3)).astype(np.uint8)
        r, c = rng.integers(4, RES - 14, size=2)
        img[r:r + 10, c:c + 10] = 30 if label else 230
        return img

    return write_generic_csv(root, ((f"img{seed}_{i:04d}.png", blob(i % 2), i % 2) for i in range(n)))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sets")
    return {"train": write_csv_set(base / "train", 160, 1), "ood": write_csv_set(base / "ood", 40, 2, shift=40)}


def train_cli(ws: Path, data: Path, *extra: str, fmt: str = "csv") -> tuple[int, str]:
    return cli("train", "--data", str(data), "--format", fmt, "--model", "test_resnet", "--res", str(RES),
               "--no-pretrained", "--batch-size", "16", "--lr", "0.05", "--tta", "3", "--workspace", str(ws),
               "--json", *extra)


def test_train_command_writes_consistent_artefacts(tmp_path: Path, datasets: dict[str, Path]) -> None:
    from sklearn.metrics import roc_auc_score

    from engine.store import Store

    ws = tmp_path / "ws"
    code, out = train_cli(ws, datasets["train"], "--epochs", "4", "--test", f"ood:csv={datasets['ood']}",
                          "--label", "1:0")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "succeeded"
    run_dir = Path(doc["run_dir"])
    result = json.loads((run_dir / "result.json").read_text())
    assert doc["auc"] == result["auc"] and doc["val_auc"] == result["val_auc"]  # `train --json` has the scores
    assert (result["label"], result["experiment"]) == ("1:0", None)
    assert "n_train" not in result and "gan" not in result and "sampler" not in result
    counts = result["counts"]
    assert counts["synthetic"] == {"benign": 0, "melanoma": 0}
    assert counts["real"]["benign"] + counts["real"]["melanoma"] == 160 - result["n_val"] - result["n_test"]["csv"]
    # every AUC is also a store metric at step 0 (the results view reads them there)
    with Store(ws) as store:
        m = store.metrics(doc["run_id"])
    aucs = {row.name: row.value for row in m[m["name"].str.startswith("auc/")].itertuples()}
    assert aucs == {"auc/csv": result["auc"]["csv"], "auc/ood": result["auc"]["ood"], "auc/val": result["val_auc"]}
    assert set(m[m["name"].str.startswith("auc/")]["step"]) == {0}
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["test_set", "image", "label", "score"]
    assert set(result["auc"]) == {"csv", "ood"}
    for name, auc in result["auc"].items():
        part = [r for r in rows if r["test_set"] == name]
        assert len(part) == result["n_test"][name]
        recomputed = roc_auc_score([int(r["label"]) for r in part], [float(r["score"]) for r in part])
        assert auc == pytest.approx(recomputed, abs=1e-12)
    assert result["n_test"]["ood"] == 40
    assert result["epochs"] == 4 and 1 <= result["best_epoch"] <= 4 and result["stopped_early"] is False
    assert result["val_auc"] > 0.5 and result["monitor"] == "val_loss"
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    # the split was persisted once in the workspace and is reused by the next run
    (split_file,) = (ws / "splits").glob("csv-*-seed0.csv")
    assert result["split"] == str(split_file)
    test_ids = {r["image"] for r in rows if r["test_set"] == "csv"}
    with open(split_file, newline="") as fh:
        split_rows = list(csv.DictReader(fh))
    assert test_ids == {r["image_id"] for r in split_rows if r["split"] == "test"}
    assert not test_ids & {r["image_id"] for r in split_rows if r["split"] != "test"}


def test_fraction_and_replicate_pick_the_real_subset(tmp_path: Path, datasets: dict[str, Path]) -> None:
    ws = tmp_path / "ws"
    docs = []
    for extra in (("--real-fraction", "1/2", "--replicate", "1"), ("--real-fraction", "0.5", "--replicate", "1")):
        code, out = train_cli(ws, datasets["train"], "--epochs", "1", "--tta", "1", *extra)
        assert code == 0, out
        docs.append(json.loads((Path(json.loads(out)["run_dir"]) / "result.json").read_text()))
    a, b = docs
    assert a["counts"] == b["counts"] and sum(a["counts"]["real"].values()) < 160
    assert a["auc"] == b["auc"] and a["val_auc"] == b["val_auc"]  # same subset, same seed: same result


def test_synthetic_images_join_training_and_test_leak_is_refused(tmp_path: Path, datasets: dict[str, Path]) -> None:
    ws = tmp_path / "ws"
    synth = write_csv_set(tmp_path / "synth", 20, 7)
    # a second source with melanomas only: a one-class synthetic set is allowed (ratios like (1:0:1))
    mel_copy = tmp_path / "melcopies"
    mel_copy.mkdir()
    for i in range(1, 7, 2):
        (mel_copy / f"{i}.png").write_bytes((synth / f"img7_{i:04d}.png").read_bytes())
    (mel_copy / "labels.csv").write_text("image,label\n" + "".join(f"{i}.png,melanoma\n" for i in range(1, 7, 2)))
    code, out = train_cli(ws, datasets["train"], "--epochs", "1", "--tta", "1", "--synthetic",
                          str(synth / "labels.csv"), "--synthetic", f"csv:{mel_copy / 'labels.csv'}")
    assert code == 0, out
    result = json.loads((Path(json.loads(out)["run_dir"]) / "result.json").read_text())
    assert result["counts"]["synthetic"] == {"benign": 10, "melanoma": 13}
    assert result["gan"] == {"family": None, "gan_runs": [], "pool_runs": []} and result["sampler"] is None
    assert [s["source"] for s in result["synthetic"]] == ["csv", "csv"]
    assert result["config"]["synthetic"] == [{"csv": str(synth / "labels.csv")}, {"csv": str(mel_copy / "labels.csv")}]
    # a test set that contains a training image (same bytes, other file) is refused before training
    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "copy.png").write_bytes((synth / "img7_0003.png").read_bytes())
    (leak / "other.png").write_bytes((datasets["ood"] / "img2_0000.png").read_bytes())
    (leak / "labels.csv").write_text("image,label\ncopy.png,1\nother.png,0\n")
    code, out = train_cli(ws, datasets["train"], "--epochs", "1", "--synthetic", str(synth / "labels.csv"),
                          "--test", f"leak:csv={leak}")
    assert code == 1, out  # the run fails, with the reason in its log
    logs = "".join(p.read_text() for p in (ws).rglob("log.txt"))
    assert "same content as training/validation image" in logs


@pytest.mark.parametrize("extra, message", [
    (("--test", "csv"), "expected FORMAT=ROOT"),
    (("--real-fraction", "0"), "real_fraction"),
    (("--monitor", "test_auc"), "optim.monitor"),
    (("--weights", "/no/such/file.pth"), "--weights"),
])
def test_bad_flags_are_input_errors(tmp_path: Path, datasets: dict[str, Path], extra: tuple[str, ...],
                                    message: str) -> None:
    code, out = train_cli(tmp_path / "ws", datasets["train"], *extra)
    assert code == 2 and message in out and "\n" not in out
    assert not (tmp_path / "ws").exists()  # nothing was created


def test_model_problems_are_refused_before_anything_is_queued(tmp_path: Path, datasets: dict[str, Path]) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    base = ["train", "--data", str(datasets["train"]), "--format", "csv", "--workspace", str(tmp_path / "ws")]
    for extra, message in [(["--model", "no_such_model", "--no-pretrained"], "model.name: unknown timm model"),
                           (["--model", "test_resnet"], "--no-pretrained"),  # pretrained, no local weights
                           (["--model", "test_resnet", "--weights", str(junk)], "cannot load")]:
        result = CliRunner().invoke(app, [*base, *extra])
        assert isinstance(result.exception, InputError) and message in str(result.exception), result.output
    assert not (tmp_path / "ws").exists()


def test_test_pixels_are_read_only_after_training(tmp_path: Path, datasets: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural guard: model selection is over before any test image is decoded."""
    import engine.train.classifier as classifier
    from engine.data.cache import ImageCache

    events: list[str] = []
    real_load, real_fit = ImageCache.load, classifier.fit

    def load(self: ImageCache, paths: list[Path], res: int) -> np.ndarray:
        events.append("load:" + ",".join(sorted({Path(p).parent.name for p in paths})) + f":{len(paths)}")
        return real_load(self, paths, res)

    def fit(*args: object, **kwargs: object) -> object:
        events.append("fit:start")
        out = real_fit(*args, **kwargs)
        events.append("fit:end")
        return out

    monkeypatch.setattr(ImageCache, "load", load)
    monkeypatch.setattr(classifier, "fit", fit)
    code, out = train_cli(tmp_path / "ws", datasets["train"], "--epochs", "1", "--tta", "1",
                          "--test", f"ood:csv={datasets['ood']}")
    assert code == 0, out
    end = events.index("fit:end")
    assert events.index("fit:start") < end
    assert not any("ood" in e for e in events[:end])
    result = json.loads((Path(json.loads(out)["run_dir"]) / "result.json").read_text())
    n_before = [int(e.rsplit(":", 1)[1]) for e in events[:end] if e.startswith("load:")]
    assert n_before == [160 - result["n_test"]["csv"] - result["n_val"], result["n_val"]]  # train, val
    assert [e for e in events[end:] if e.startswith("load:")] == [
        f"load:train:{result['n_test']['csv']}", "load:ood:40"]


def test_demo_data_learns_and_scores_every_test_set(tmp_path: Path) -> None:
    """The procedural demo collection (all adapters): loss falls, validation AUC beats chance."""
    from engine.data.demo_data import generate_demo

    demo = tmp_path / "demo"
    generate_demo(demo, seed=0, res=RES, n_train=400)
    code, out = train_cli(tmp_path / "ws", demo / "isic2019", "--epochs", "5", "--lr", "0.01",
                          "--test", f"derm7pt-clinic={demo / 'derm7pt'}", "--test", f"dermofit={demo / 'dermofit'}",
                          fmt="isic2019")
    assert code == 0, out
    result = json.loads((Path(json.loads(out)["run_dir"]) / "result.json").read_text())
    assert set(result["auc"]) == {"isic19", "derm7pt-clinic", "dermofit"}
    losses = [h["train_loss"] for h in result["history"]]
    assert min(losses[-2:]) < losses[0]
    assert result["val_auc"] > 0.5


def make_pool(ws: Path, run_id: str, images: np.ndarray, labels: list[int], family: str = "stylegan2") -> Path:
    """A finished gan-pool run's folder, written with the pool format's own writer (no GAN needed)."""
    from engine.synth.pool import PoolRow, PoolWriter, pool_id

    order = np.argsort(labels, kind="stable")  # benign first, as a pool stores them
    images, labels = images[order], [labels[i] for i in order]
    seen = [0, 0]
    rows = []
    for i, label in enumerate(labels):
        rows.append(PoolRow(pool_id(label, seen[label]), label, "gan-run-1", "kimg-000010", seed=i))
        seen[label] += 1
    writer = PoolWriter(ws / run_id, res=images.shape[1], shard_size=8)
    n_shards = -(-len(rows) // 8)
    for k in range(n_shards):
        writer.write_shard(k, images[k * 8:(k + 1) * 8], rows[k * 8:(k + 1) * 8])
    writer.finish(n_shards, {"family": family, "gan_run": "gan-run-1"})
    return ws / run_id


def toy_pixels(n: int, res: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    images = rng.integers(110, 170, size=(n, res, res, 3)).astype(np.uint8)
    labels = [i % 2 for i in range(n)]
    for i, label in enumerate(labels):
        r, c = rng.integers(1, res - 6, size=2)
        images[i, r:r + 5, c:c + 5] = 30 if label else 230
    return images, labels


def test_pool_images_train_through_the_cache_and_are_recorded(tmp_path: Path, datasets: dict[str, Path]) -> None:
    from engine.data.cache import pixel_key, resize_pixels

    ws = tmp_path / "ws"
    pixels, labels = toy_pixels(24, 16, 3)  # the GAN's resolution (16 px) differs from the classifier's (32)
    make_pool(ws, "pool-run", pixels, labels)
    ids = tmp_path / "ids.csv"
    picked = ["b000001", "b000004", "m000000", "m000002", "m000003", "m000011"]
    ids.write_text("id\n" + "\n".join(picked) + "\n")
    code, out = train_cli(ws, datasets["train"], "--epochs", "1", "--tta", "1", "--synthetic", f"pool:pool-run@{ids}")
    assert code == 0, out
    result = json.loads((Path(json.loads(out)["run_dir"]) / "result.json").read_text())
    assert result["counts"]["synthetic"] == {"benign": 2, "melanoma": 4}
    assert result["gan"] == {"family": "stylegan2", "gan_runs": ["gan-run-1"], "pool_runs": ["pool-run"]}
    assert result["sampler"] is None
    (source,) = result["synthetic"]
    assert (source["source"], source["pool_run"], source["ids"], source["melanoma"]) == ("pool", "pool-run",
                                                                                      str(ids), 4)
    # the picked pool images went through the cache's array source at the classifier's resolution
    from engine.synth.pool import Pool

    pool = Pool(ws / "pool-run")
    index = json.loads((ws / "cache" / "images" / f"res{RES}" / "index.json").read_text())
    shard, row = index["entries"][pixel_key(pool.images[pool.rows_of(["m000011"])][0])]
    cached = np.load(ws / "cache" / "images" / f"res{RES}" / shard, mmap_mode="r")[row]
    np.testing.assert_array_equal(cached, resize_pixels(pool.images[pool.rows_of(["m000011"])][0], RES))
    picked_keys = {pixel_key(im) for im in pool.images[pool.rows_of(picked)]}
    others = {pixel_key(im) for im in pool.images[np.arange(len(pool))]} - picked_keys
    assert picked_keys <= set(index["entries"]) and not others & set(index["entries"])


def test_a_pool_that_holds_test_pixels_fails_the_run_before_any_score(tmp_path: Path,
                                                                      datasets: dict[str, Path]) -> None:
    ws = tmp_path / "ws"
    pixels, labels = toy_pixels(6, RES, 4)
    leaked = [np.asarray(Image.open(datasets["ood"] / f"img2_{i:04d}.png").convert("RGB")) for i in (5, 8)]
    make_pool(ws, "leaky", np.concatenate([pixels, np.stack(leaked)]), [*labels, 1, 0])
    code, out = train_cli(ws, datasets["train"], "--epochs", "1", "--tta", "1", "--synthetic", "pool:leaky",
                          "--test", f"ood:csv={datasets['ood']}")
    assert code == 1, out
    doc = json.loads(out)
    assert "test set ood: image img2_0005.png has the same pixels as synthetic training image" in doc["exit_reason"]
    run_dir = Path(doc["run_dir"])
    assert "epoch 1:" in (run_dir / "log.txt").read_text()  # found after training ...
    assert not (run_dir / "predictions.csv").exists() and not (run_dir / "result.json").exists()  # ... before scores


def _config(root: Path, **extra: Any) -> dict[str, Any]:
    """A tiny classify config on the CSV set at ``root``; ``extra`` replaces whole top-level keys."""
    return {"data": {"format": "csv", "root": str(root)}, "model": {"name": "test_resnet", "pretrained": False,
                                                                      "res": RES},
            "optim": {"max_epochs": 1, "batch_size": 16, "lr": 0.05}, "tta": {"replicas": 1}, **extra}


def test_bad_input_is_refused_at_enqueue_even_detached(tmp_path: Path, datasets: dict[str, Path]) -> None:
    """Each case: one line, exit 2 (InputError), and no run (no store) created, under --detach."""
    import torch

    from engine.runner.launch import launch

    ws = tmp_path / "ws"
    make_pool(ws, "pool-run", *toy_pixels(8, 16, 5))
    before = sorted(p.relative_to(ws) for p in ws.rglob("*"))
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(f"image,label\n{datasets['train'] / 'img1_0000.png'},maybe\n")
    ids = tmp_path / "ids.csv"
    ids.write_text("id\nb000000\nm000099\n")
    no_col = tmp_path / "subset.csv"
    no_col.write_text("file\na.png\n")
    train = datasets["train"]
    cases = [
        (_config(train, data={"format": "isic2019", "root": str(train)}), "no ISIC_2019_Training_GroundTruth.csv"),
        (_config(train, synthetic=[str(bad_csv)]), "column label: 'maybe'"),
        (_config(train, synthetic=[{"pool": "no-such-run"}]), "synthetic[0].pool: no run 'no-such-run'"),
        (_config(train, synthetic=[{"pool": "pool-run", "ids": str(tmp_path / "none.csv")}]),
         "synthetic[0].ids:"),
        (_config(train, synthetic=[{"pool": "pool-run", "ids": str(ids)}]),
         "line 3: pool id 'm000099' is not in the pool of run pool-run"),
        (_config(train, real_fraction="1/1000"), "real_fraction: 1/1000 of the"),
        (_config(train, tests=[{"format": "dermofit", "root": str(train)}]), "no lesionlist.txt"),
        (_config(train, tests=[{"name": "ood", "format": "csv", "root": str(datasets["ood"]), "subset": str(no_col)}]),
         "no image column"),
    ]
    if not torch.cuda.is_available():
        cases.append((_config(train, device="cuda"), "device: cuda requested but no CUDA GPU is visible"))
    for config, message in cases:
        with pytest.raises(InputError) as err:
            launch("classify", config, workspace=ws, detach=True)
        assert message in str(err.value) and "\n" not in str(err.value), (message, err.value)
    assert sorted(p.relative_to(ws) for p in ws.rglob("*")) == before  # no store, no run folder, no split file


def test_paper_split_subset_test_set_label_and_the_run_as_a_tool(tmp_path: Path, datasets: dict[str, Path]) -> None:
    """The authors' way: a split from assignment lists, a listed test subset; then the run loads as a tool."""
    import torch
    from sklearn.metrics import roc_auc_score

    from engine.data.cache import decode_image
    from engine.runner.launch import run_here
    from engine.store import Store
    from engine.train.kind import validate_classify
    from engine.train.trained import load_classifier

    ids = sorted(p.stem for p in datasets["train"].glob("*.png"))
    lists = {"train": ids[:110], "val": ids[110:140], "test": ids[140:155]}  # 5 images in no part
    args = []
    for part, names in lists.items():
        (tmp_path / f"{part}.csv").write_text("image,label\n" + "".join(f"Input/{n},0\n" for n in names))
        args += ["--assign", f"{part}={tmp_path / f'{part}.csv'}"]
    split_csv = tmp_path / "split.csv"
    result = CliRunner().invoke(app, ["data", "split", "--format", "csv", "--root", str(datasets["train"]), *args,
                                      "--out", str(split_csv), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {k: doc[k]["n"] for k in ("train", "val", "test")} == {"train": 110, "val": 30, "test": 15}
    assert doc["unassigned"] == 5 and doc["out"] == str(split_csv) and doc["val"]["melanoma"] == 15
    subset = sorted(p.name for p in datasets["ood"].glob("*.png"))[::3]
    (tmp_path / "subset.csv").write_text("image_name\n" + "\n".join(subset) + "\n")

    ws = tmp_path / "ws"
    config = _config(datasets["train"], data={"format": "csv", "root": str(datasets["train"]),
                                              "split_file": str(split_csv)},
                     tests=[{"name": "ood", "format": "csv", "root": str(datasets["ood"]),
                             "subset": str(tmp_path / "subset.csv")}],
                     augment={"source_scale": 1.25}, optim={"max_epochs": 2, "batch_size": 16, "lr": 0.05})
    run = run_here("classify", config, label="1:0", experiment="augmentation", workspace=ws)
    assert run["status"] == "succeeded", run
    run_dir = Path(run["run_dir"])
    res = json.loads((run_dir / "result.json").read_text())
    assert (res["label"], res["experiment"]) == ("1:0", "augmentation")
    assert res["split"] == str(split_csv) and res["n_val"] == 30 and res["n_test"] == {"csv": 15, "ood": len(subset)}
    assert sum(res["counts"]["real"].values()) == 110
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["image"] for r in rows if r["test_set"] == "ood") == subset
    assert sorted(Path(r["image"]).stem for r in rows if r["test_set"] == "csv") == lists["test"]
    with Store(ws) as store:  # label and experiment live in the store row, never in the hashed config
        assert store.get_run(run["run_id"]).config_hash == run_here.__globals__["st"].config_hash(
            validate_classify(config, ws))
    assert not (ws / "cache" / "images" / f"res{RES}").exists()  # source_scale 1.25: cached at 40 px

    clf = load_classifier(ws, run["run_id"])
    val = [datasets["train"] / f"{n}.png" for n in lists["val"]]
    val_labels = np.array([int(n.split("_")[1]) % 2 for n in lists["val"]])
    images = np.stack([decode_image(p, 40) for p in val])  # as validation saw them: the 40 px cached copy
    feats = clf.features(images)
    assert feats.shape == (30, clf.model.num_features) and feats.dtype == np.float32 and np.isfinite(feats).all()
    logits = clf.logits(images)
    prob = clf.melanoma_prob(images)
    assert ((prob >= 0) & (prob <= 1)).all()
    np.testing.assert_allclose(prob, torch.softmax(torch.from_numpy(logits), 1)[:, 1].numpy(), rtol=1e-6)
    ce = clf.cross_entropy(images, val_labels)
    expected = -torch.log_softmax(torch.from_numpy(logits), 1)[torch.arange(30), torch.from_numpy(val_labels)]
    np.testing.assert_allclose(ce, expected.numpy(), rtol=1e-5, atol=1e-6)
    # the reloaded best checkpoint reproduces the run's validation AUC
    assert roc_auc_score(val_labels, prob) == pytest.approx(res["val_auc"], abs=1e-9)
    with pytest.raises(InputError, match="not a classify run"):
        meta = json.loads((run_dir / "run.json").read_text())
        (ws / "other").mkdir()
        (ws / "other" / "run.json").write_text(json.dumps({**meta, "kind": "gan-pool"}))
        load_classifier(ws, "other")
