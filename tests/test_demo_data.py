"""The procedural demo data: written in the official layouts, read back through the real adapters, and with
the properties later experiments rely on (learnable but overlapping classes, a measurably different clinical
look, exact masks, determinism)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, stats

from engine.data import load_dataset
from engine.data.demo_data import MANIFEST, generate_demo
from engine.data.split import split_dataset
from engine.errors import InputError

SEED, RES, N_TRAIN = 3, 32, 150


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    manifest = generate_demo(out, seed=SEED, res=RES, n_train=N_TRAIN, workers=1)
    return out, manifest


def _load(demo: tuple[Path, dict], name: str):
    out, manifest = demo
    d = manifest["datasets"][name]
    return load_dataset(d["format"], out / d["root"])


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64) / 255


def _lesion_mask(img: np.ndarray) -> np.ndarray:
    """Threshold segmentation: pixels clearly darker than the skin (median of a ring near the border)."""
    gray = img.mean(axis=2)
    h, w = gray.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2) / (h / 2)
    ring = (r > 0.75) & (r < 0.95) & (gray > 0.15)  # skip the dermoscope's black vignette
    skin = np.median(gray[ring]) if ring.any() else np.median(gray)
    mask = ndimage.binary_opening(gray < 0.85 * skin)
    return mask if mask.sum() >= 4 else gray <= np.quantile(gray, 0.1)


def _features(path: Path) -> list[float]:
    """Colour statistics of the lesion plus a shape asymmetry and size measure (no learning from pixels)."""
    img = _rgb(path)
    mask = _lesion_mask(img)
    px = img[mask]
    with Image.open(path) as im:
        hsv = np.asarray(im.convert("HSV"), dtype=np.float64)[mask] / 255
    h, w = mask.shape
    cy, cx = ndimage.center_of_mass(mask)
    centred = ndimage.shift(mask.astype(float), (h / 2 - cy, w / 2 - cx), order=0) > 0.5
    asymmetry = np.logical_xor(centred, np.rot90(centred, 2)).sum() / max(1, centred.sum())
    return [*px.mean(0), *px.std(0), hsv[:, 1].mean(), hsv[:, 0].std(), asymmetry, mask.mean()]


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_data_set_reads_back_through_its_adapter(demo):
    out, manifest = demo
    assert json.loads((out / MANIFEST).read_text()) == manifest
    assert set(manifest["datasets"]) == {
        "isic2019",
        "isic2018-masks",
        "isic2020",
        "derm7pt-derm",
        "derm7pt-clinic",
        "dermofit",
    }
    for name, d in manifest["datasets"].items():
        ds = _load(demo, name)
        assert (ds.n, ds.n_melanoma, ds.n_benign) == (d["n"], d["melanoma"], d["benign"]), name
        assert ds.dropped == d["dropped"], name
        assert dict(sorted(ds.diagnoses().items())) == d["diagnoses"], name
        assert ds.n_melanoma > 0 and ds.n_benign > 0, name
    assert manifest["datasets"]["isic2019"]["images"] == N_TRAIN


def test_isic2019_layout_carcinomas_downsampled_ids_and_shared_lesions(demo):
    out, manifest = demo
    root = out / "isic2019"
    with open(root / "ISIC_2019_Training_GroundTruth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    assert {r["MEL"] for r in rows} == {"0.0", "1.0"}
    carcinomas = sum(r["BCC"] == "1.0" or r["SCC"] == "1.0" for r in rows)
    assert carcinomas > 0
    ds = _load(demo, "isic2019")
    assert ds.dropped == {"carcinoma": carcinomas}
    assert ds.n == len(rows) - carcinomas
    assert {"NV", "BKL", "AK", "DF", "VASC", "MEL"} <= set(ds.diagnoses())
    assert any(r.image_id.endswith("_downsampled") for r in ds.records)
    with open(root / "ISIC_2019_Training_Metadata.csv", newline="") as fh:
        meta = list(csv.DictReader(fh))
    assert list(meta[0]) == ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    per_lesion: dict[str, list] = {}
    for r in ds.records:
        if r.lesion_id:
            per_lesion.setdefault(r.lesion_id, []).append(r)
    split = split_dataset(ds.records, seed=0)  # the paper's train/val/test proportions, grouped by lesion
    for part in (split.train, split.val, split.test):
        assert {r.label for r in part} == {0, 1}
    twice = [rs for rs in per_lesion.values() if len(rs) > 1]
    assert twice, "some lesions must be photographed twice"
    for rs in twice:  # the same lesion, two different photographs, one diagnosis
        assert len({r.diagnosis for r in rs}) == 1
        assert not np.array_equal(_rgb(rs[0].image), _rgb(rs[1].image))


def test_derm7pt_mixed_case_paths_and_planted_near_duplicates(demo):
    out, manifest = demo
    release = out / "derm7pt" / "release_v0"
    with open(release / "meta" / "meta.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:3] == ["case_num", "diagnosis", "seven_point_score"]
    assert list(rows[0])[-4:] == ["clinic", "derm", "case_id", "notes"]
    for col in ("derm", "clinic"):
        ds = _load(demo, f"derm7pt-{col}")
        assert ds.dropped["near-duplicate"] == manifest["datasets"][f"derm7pt-{col}"]["dropped"]["near-duplicate"] >= 1
        assert any("class not in ISIC 2018 Task 2" in k for k in ds.dropped)
        mismatched = {r[col] for r in rows if not (release / "images" / r[col]).exists()}
        resolved = [r for r in ds.records if r.image_id in mismatched]
        assert resolved, f"some kept {col} paths in meta.csv must disagree with the files' case"
        for r in resolved:
            assert r.image.is_file() and r.image.relative_to(release.resolve() / "images").as_posix() != r.image_id
            assert r.image.relative_to(release.resolve() / "images").as_posix().lower() == r.image_id.lower()
        assert all(
            r.diagnosis.startswith("melanoma") or "nevus" in r.diagnosis or r.diagnosis == "seborrheic keratosis"
            for r in ds.records
        )
    # clinic duplicates (one clinical photo reused for several lesions) outnumber dermoscopic ones
    assert (
        manifest["datasets"]["derm7pt-clinic"]["dropped"]["near-duplicate"]
        > manifest["datasets"]["derm7pt-derm"]["dropped"]["near-duplicate"]
    )


def test_task2_masks_match_the_rendered_lesions(demo):
    from engine.data.masks import label_map

    ds = _load(demo, "isic2018-masks")
    ious, present = [], dict.fromkeys(("pigment_network", "globules", "streaks", "milia_like_cyst"), 0)
    for rec in ds.records:
        seg = np.asarray(Image.open(rec.masks["segmentation"])) > 127
        img = _rgb(rec.image)
        assert seg.shape == img.shape[:2]
        thr = _lesion_mask(img)
        ious.append((seg & thr).sum() / max(1, (seg | thr).sum()))
        for name in present:
            m = np.asarray(Image.open(rec.masks[name])) > 127
            present[name] += bool(m.any())
            if name != "streaks":  # streaks reach beyond the lesion border; the rest lie inside it
                assert not (m & ~seg).any(), (rec.image_id, name)
        assert label_map(rec).max() >= 2  # the adapter assembles a label map with a lesion in it
    assert np.median(ious) > 0.5
    assert present["pigment_network"] and present["globules"]


def test_simple_colour_shape_classifier_beats_chance_but_not_trivially(demo):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    records = [r for name in ("isic2019", "isic2020", "derm7pt-derm") for r in _load(demo, name).records]
    x = np.array([_features(r.image) for r in records])
    y = np.array([r.label for r in records])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    auc = cross_val_score(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="roc_auc").mean()
    assert 0.6 < auc < 0.98, auc


def test_clinical_look_differs_from_dermoscopic_beyond_seed_noise(demo):
    """Paired design: each derm7pt case has a dermoscopic and a clinical photograph of the same lesion, so
    lesion-to-lesion and seed variation cancel and what is left is the look."""

    def look_stats(path: Path) -> dict[str, float]:
        img = _rgb(path)
        gray = img.mean(axis=2)
        with Image.open(path) as im:
            width = im.width
        return {
            "sharpness": ndimage.laplace(gray).var() / max(gray.var(), 1e-9),
            "warmth": img[..., 0].mean() - img[..., 2].mean(),  # colour cast of room light
            "brightness": gray.mean(),
            "width": width,
        }

    derm = {r.lesion_id: look_stats(r.image) for r in _load(demo, "derm7pt-derm").records}
    clinic = {r.lesion_id: look_stats(r.image) for r in _load(demo, "derm7pt-clinic").records}
    cases = sorted(set(derm) & set(clinic))
    assert len(cases) >= 20
    for key, clinic_is in (("sharpness", "lower"), ("warmth", "higher"), ("brightness", "higher")):
        a = np.array([derm[c][key] for c in cases])
        b = np.array([clinic[c][key] for c in cases])
        assert stats.wilcoxon(a, b).pvalue < 1e-4, key
        assert ((b < a) if clinic_is == "lower" else (b > a)).mean() > 0.8, key
    assert max(clinic[c]["width"] for c in cases) < min(derm[c]["width"] for c in cases)  # lower resolution


def test_dermofit_brings_benign_classes_the_training_set_never_had(demo):
    ds = _load(demo, "dermofit")
    assert {"PYO", "IEC", "ML", "VASC"} <= set(ds.diagnoses())
    assert all(rec.masks["segmentation"].is_file() for rec in ds.records)

    def colour(records) -> tuple[np.ndarray, np.ndarray]:
        imgs = [_rgb(r.image) for r in records if r.label == 0]
        redness = np.array([np.median(im[..., 0] - im[..., 1]) for im in imgs])
        return redness, np.array([im.mean() for im in imgs])

    red_fit, bright_fit = colour(ds.records)
    red_train, bright_train = colour(_load(demo, "isic2019").records)
    assert stats.mannwhitneyu(red_fit, red_train).pvalue < 1e-3  # red vascular/granuloma classes
    assert stats.mannwhitneyu(bright_fit, bright_train).pvalue < 1e-3  # flash-lit, no dermoscope vignette


def test_deterministic_per_seed_whatever_the_worker_count(tmp_path):
    a = generate_demo(tmp_path / "a", seed=11, res=24, n_train=60, workers=1)
    b = generate_demo(tmp_path / "b", seed=11, res=24, n_train=60, workers=2)
    generate_demo(tmp_path / "c", seed=12, res=24, n_train=60, workers=1)
    assert a == b
    tree_a, tree_b, tree_c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert tree_a == tree_b  # same bytes, images and CSVs alike
    gt = "isic2019/ISIC_2019_Training_GroundTruth.csv"
    assert tree_a[gt] != tree_c[gt]
    images_a = sorted(v for k, v in tree_a.items() if k.endswith(".jpg"))
    images_c = sorted(v for k, v in tree_c.items() if k.endswith(".jpg"))
    assert not set(images_a) & set(images_c)


def test_output_folder_rules_and_nothing_half_written(tmp_path, monkeypatch):
    import engine.data.demo_data as demo_mod

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        generate_demo(tmp_path / "busy", n_train=60, res=16)
    with pytest.raises(InputError, match="--n-train"):
        generate_demo(tmp_path / "x", n_train=10)
    with pytest.raises(InputError, match="--res"):
        generate_demo(tmp_path / "x", res=4)

    out = tmp_path / "demo"
    out.mkdir()  # an empty folder is fine
    first = generate_demo(out, seed=1, res=16, n_train=60, workers=1)
    stamp = (out / MANIFEST).stat().st_mtime_ns
    assert generate_demo(out, seed=1, res=16, n_train=60) == first  # same parameters: reused as is
    assert (out / MANIFEST).stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="other parameters"):
        generate_demo(out, seed=2, res=16, n_train=60)

    def crash(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(demo_mod, "_derm7pt", crash)
    with pytest.raises(RuntimeError):
        generate_demo(out, seed=2, res=16, n_train=60, overwrite=True, workers=1)
    assert json.loads((out / MANIFEST).read_text()) == first  # the old demo is untouched
    with pytest.raises(RuntimeError):
        generate_demo(tmp_path / "fresh", seed=2, res=16, n_train=60, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "demo"]  # no temp folders left behind
    monkeypatch.undo()
    second = generate_demo(out, seed=2, res=16, n_train=60, overwrite=True, workers=1)
    assert second["seed"] == 2 and json.loads((out / MANIFEST).read_text()) == second
