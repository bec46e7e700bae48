"""``classify`` end to end: CLI -> engine foreground run -> predictions.csv / result.json, on tiny PNG data sets."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import InputError

RES = 32


def write_csv_set(root: Path, n: int, seed: int, shift: int = 0) -> Path:
    """A generic-CSV data set of learnable toy lesions (dark blob = melanoma, light blob = benign)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        img = rng.integers(110 + shift, 170 + shift, size=(RES, RES, 3)).astype(np.uint8)
        r, c = rng.integers(4, RES - 14, size=2)
        img[r:r + 10, c:c + 10] = 30 if label else 230
        Image.fromarray(img).save(root / f"img{seed}_{i:04d}.png")
        rows.append((f"img{seed}_{i:04d}.png", label))
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label"])
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sets")
    return {"train": write_csv_set(base / "train", 160, 1), "ood": write_csv_set(base / "ood", 40, 2, shift=40)}


def train_cli(ws: Path, data: Path, *extra: str, fmt: str = "csv") -> tuple[int, str]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    args = ["train", "--data", str(data), "--format", fmt, "--model", "test_resnet", "--res", str(RES),
            "--no-pretrained", "--batch-size", "16", "--lr", "0.05", "--tta", "3", "--workspace", str(ws),
            "--json", *extra]
    result = CliRunner().invoke(app, args)
    if isinstance(result.exception, InputError):
        return 2, str(result.exception)
    return result.exit_code, result.stdout


def test_train_command_writes_consistent_artefacts(tmp_path: Path, datasets: dict[str, Path]) -> None:
    from sklearn.metrics import roc_auc_score

    ws = tmp_path / "ws"
    code, out = train_cli(ws, datasets["train"], "--epochs", "4", "--test", f"ood:csv={datasets['ood']}")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "succeeded"
    run_dir = Path(doc["run_dir"])
    result = json.loads((run_dir / "result.json").read_text())
    assert doc["auc"] == result["auc"] and doc["val_auc"] == result["val_auc"]  # `train --json` has the scores
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
    assert a["n_train"]["real"] == b["n_train"]["real"] < 160
    assert a["auc"] == b["auc"] and a["val_auc"] == b["val_auc"]  # same subset, same seed: same result


def test_synthetic_images_join_training_and_test_leak_is_refused(tmp_path: Path, datasets: dict[str, Path]) -> None:
    ws = tmp_path / "ws"
    synth = write_csv_set(tmp_path / "synth", 20, 7)
    code, out = train_cli(ws, datasets["train"], "--epochs", "1", "--tta", "1", "--synthetic",
                          str(synth / "labels.csv"))
    assert code == 0, out
    result = json.loads((Path(json.loads(out)["run_dir"]) / "result.json").read_text())
    assert result["n_train"]["synthetic"] == 20
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
