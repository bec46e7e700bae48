"""Each adapter on tiny fixtures in the real on-disk layouts: kept records, labels, ids, drop reports, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import FORMATS, load_dataset, verify_images
from engine.data.masks import label_map
from engine.errors import InputError

ALL_2019 = [
    ("ISIC_0000001", "MEL"),
    ("ISIC_0000002", "NV"),
    ("ISIC_0000003", "BCC"),
    ("ISIC_0000004", "AK"),
    ("ISIC_0000005", "BKL"),
    ("ISIC_0000006", "DF"),
    ("ISIC_0000007", "VASC"),
    ("ISIC_0000008", "SCC"),
    ("ISIC_0000009", "UNK"),
    ("ISIC_0000010_downsampled", "MEL"),
]


def test_formats_are_the_documented_ones():
    assert FORMATS == ("isic2019", "isic2020", "derm7pt-derm", "derm7pt-clinic", "dermofit", "isic2018-masks", "csv")


def test_isic2019_labels_drops_downsampled_and_lesion_ids(tmp_path, make_isic2019):
    root = make_isic2019(tmp_path / "isic19", ALL_2019, lesion_ids={"ISIC_0000001": "IL_1", "ISIC_0000002": "IL_1"})
    ds = load_dataset("isic2019", root)
    by_id = {r.image_id: r for r in ds.records}
    assert set(by_id) == {"ISIC_0000001", "ISIC_0000002", "ISIC_0000004", "ISIC_0000005", "ISIC_0000006",
                          "ISIC_0000007", "ISIC_0000010_downsampled"}
    assert (ds.n, ds.n_melanoma, ds.n_benign) == (7, 2, 5)
    assert ds.dropped == {"carcinoma": 2, "unknown class (UNK)": 1}
    down = by_id["ISIC_0000010_downsampled"]
    assert down.label == 1 and down.diagnosis == "MEL" and down.image.is_absolute() and down.image.is_file()
    assert down.image.name == "ISIC_0000010_downsampled.jpg"
    assert by_id["ISIC_0000001"].lesion_id == by_id["ISIC_0000002"].lesion_id == "IL_1"
    assert by_id["ISIC_0000004"].lesion_id is None and by_id["ISIC_0000004"].group == "ISIC_0000004"
    summary = ds.summary()
    assert summary["n"] == 7 and summary["melanoma"] == 2 and summary["benign"] == 5
    assert summary["diagnoses"]["MEL"] == 2
    assert list(ds.to_frame()["image_id"]) == [r.image_id for r in ds.records]


@pytest.mark.parametrize(
    ("layout", "gt_name", "image_dir"),
    [
        ("kaggle", "train.csv", "train"),
        ("archive", "ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_JPEG/train"),
        ("archive-flat", "ISIC_2020_Training_GroundTruth.csv", "ISIC_2020_Training_JPEG"),
    ],
)
def test_isic2020_layouts(tmp_path, write_image, layout, gt_name, image_dir):
    root = tmp_path / layout
    rows = [("ISIC_1", "IP_1", "IL_a", "nevus", "benign", 0), ("ISIC_2", "IP_1", "", "melanoma", "malignant", 1),
            ("ISIC_3", "IP_2", "IL_c", "unknown", "benign", 0)]
    lines = ["image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,diagnosis,"
             "benign_malignant,target"]
    for i, (name, pid, lid, diag, bm, target) in enumerate(rows):
        lines.append(f"{name},{pid},{lid},male,50,torso,{diag},{bm},{target}")
        write_image(root / image_dir / f"{name}.jpg", seed=i)
    (root / gt_name).write_text("\n".join(lines) + "\n")
    ds = load_dataset("isic2020", root)
    assert [(r.image_id, r.label, r.patient_id, r.lesion_id) for r in ds.records] == [
        ("ISIC_1", 0, "IP_1", "IL_a"), ("ISIC_2", 1, "IP_1", None), ("ISIC_3", 0, "IP_2", "IL_c")]
    assert ds.dropped == {}


def _derm7pt(root: Path, write_image) -> Path:
    """release_v0 with mixed-case paths, dropped classes, a shared clinical photo and a near-identical copy."""
    rel = root / "release_v0"
    cases = [  # case_num, diagnosis, clinic path (as in meta.csv), derm path, file on disk (clinic), (derm)
        (1, "melanoma (in situ)", "NEL/Nel001.JPG", "NEL/Nel002.JPG", "Nel/nel001.jpg", "Nel/NEL002.jpg"),
        (2, "clark nevus", "Aal/Aal003.jpg", "Aal/Aal004.jpg", "aal/Aal003.jpg", "aal/Aal004.jpg"),
        (3, "seborrheic keratosis", "Fgl/Fgl005.jpg", "Fgl/Fgl006.jpg", "Fgl/Fgl005.jpg", "Fgl/Fgl006.jpg"),
        (4, "basal cell carcinoma", "Bbl/Bbl007.jpg", "Bbl/Bbl008.jpg", "Bbl/Bbl007.jpg", "Bbl/Bbl008.jpg"),
        (5, "lentigo", "Ccl/Ccl009.jpg", "Ccl/Ccl010.jpg", "Ccl/Ccl009.jpg", "Ccl/Ccl010.jpg"),
        (6, "melanoma (more than 1.5 mm)", "Fhl/Fhl011.jpg", "Fhl/Fhl012.jpg", "Fhl/Fhl011.jpg", "Fhl/Fhl012.jpg"),
        (7, "reed or spitz nevus", "Fhl/Fhl011.jpg", "Fhl/Fhl014.jpg", None, "Fhl/Fhl014.jpg"),  # shared photo
        (8, "blue nevus", "Gal/Gal015.png", "Gal/Gal016.png", "Gal/Gal015.png", "Gal/Gal016.png"),
    ]
    lines = ["case_num,diagnosis,seven_point_score,clinic,derm,case_id,notes"]
    for case_num, diag, clinic, derm, clinic_file, derm_file in cases:
        lines.append(f'{case_num},"{diag}",1,{clinic},{derm},case_{case_num},')
        if clinic_file:
            write_image(rel / "images" / clinic_file, seed=100 + case_num)
        write_image(rel / "images" / derm_file, seed=200 + case_num)
    # case 8's clinical photo is case 2's re-exported a little brighter: a near-duplicate, not a new image
    arr = np.asarray(Image.open(rel / "images" / "aal/Aal003.jpg").convert("RGB")).astype(int)
    Image.fromarray(np.clip(arr + 3, 0, 255).astype(np.uint8)).save(rel / "images" / "Gal/Gal015.png")
    (rel / "meta").mkdir(parents=True)
    (rel / "meta" / "meta.csv").write_text("\n".join(lines) + "\n")
    return rel


def test_derm7pt_derm_and_clinic(tmp_path, write_image):
    rel = _derm7pt(tmp_path / "d7", write_image)
    derm = load_dataset("derm7pt-derm", tmp_path / "d7")
    assert [r.image_id for r in derm.records] == ["NEL/Nel002.JPG", "Aal/Aal004.jpg", "Fgl/Fgl006.jpg",
                                                  "Fhl/Fhl012.jpg", "Fhl/Fhl014.jpg", "Gal/Gal016.png"]
    assert [r.label for r in derm.records] == [1, 0, 0, 1, 0, 0]
    assert derm.records[0].image == (rel / "images" / "Nel" / "NEL002.jpg").resolve()
    assert derm.dropped == {"carcinoma": 1, "class not in ISIC 2018 Task 2: lentigo": 1}
    clinic = load_dataset("derm7pt-clinic", rel)  # root may also be release_v0 itself
    assert [r.image_id for r in clinic.records] == ["NEL/Nel001.JPG", "Aal/Aal003.jpg", "Fgl/Fgl005.jpg",
                                                    "Fhl/Fhl011.jpg"]
    assert clinic.dropped == {"carcinoma": 1, "class not in ISIC 2018 Task 2: lentigo": 1, "near-duplicate": 2}
    assert {r.lesion_id for r in clinic.records} == {"case1", "case2", "case3", "case6"}


def test_dermofit(tmp_path, write_image):
    root = tmp_path / "dermofit"
    entries = [("A1", "AK"), ("B1", "BCC"), ("D1", "DF"), ("I1", "IEC"), ("M1", "MEL"), ("M2", "MEL"), ("N1", "ML"),
               ("P1", "PYO"), ("S1", "SCC"), ("K1", "SK"), ("V1", "VASC")]
    for i, (lesion, cls) in enumerate(entries):
        write_image(root / cls / lesion / f"{lesion}.png", seed=i)
        if lesion != "D1":
            write_image(root / cls / lesion / f"{lesion}mask.png", seed=50 + i)
    (root / "lesionlist.txt").write_text("".join(f"{i} {lesion} {cls}\n" for i, (lesion, cls) in enumerate(entries)))
    ds = load_dataset("dermofit", root)
    assert (ds.n, ds.n_melanoma, ds.n_benign) == (9, 2, 7)
    assert ds.dropped == {"carcinoma": 2}
    by_id = {r.image_id: r for r in ds.records}
    assert by_id["M1"].masks["segmentation"].name == "M1mask.png" and by_id["D1"].masks == {}


def _task2(root: Path, ids: list[str], write_image, skip: tuple[str, str] | None = None) -> None:
    names = ["segmentation"] + [f"attribute_{a}" for a in
                                ("globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks")]
    for i, image_id in enumerate(ids):
        for j, name in enumerate(names):
            if skip == (image_id, name):
                continue
            folder = "ISIC2018_Task1_Training_GroundTruth" if name == "segmentation" else \
                "ISIC2018_Task2_Training_GroundTruth_v3"
            write_image(root / folder / f"{image_id}_{name}.png", seed=1000 + 10 * i + j)


def test_isic2018_masks_label_from_isic2019(tmp_path, make_isic2019, write_image):
    root = make_isic2019(tmp_path / "m", [("ISIC_0000001", "MEL"), ("ISIC_0000002_downsampled", "NV"),
                                          ("ISIC_0000003", "BCC"), ("ISIC_0000004", "NV")])
    write_image(root / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000004.jpg", seed=77)
    _task2(root, ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003", "ISIC_0000004", "ISIC_0000099"], write_image)
    ds = load_dataset("isic2018-masks", root)
    assert [(r.image_id, r.label, r.diagnosis) for r in ds.records] == [
        ("ISIC_0000001", 1, "MEL"), ("ISIC_0000002", 0, "NV"), ("ISIC_0000004", 0, "NV")]
    assert ds.dropped == {"carcinoma": 1, "no ISIC 2019 label": 1}
    rec = {r.image_id: r for r in ds.records}
    assert rec["ISIC_0000002"].image.name == "ISIC_0000002_downsampled.jpg"
    assert rec["ISIC_0000004"].image.parent.name == "ISIC2018_Task1-2_Training_Input"
    assert sorted(rec["ISIC_0000001"].masks) == sorted(
        ["segmentation", "pigment_network", "negative_network", "streaks", "milia_like_cyst", "globules"])
    assert all(p.is_file() for p in rec["ISIC_0000001"].masks.values())
    assert verify_images(ds) == 3 * 7  # image + six masks each
    lm = label_map(rec["ISIC_0000001"])
    assert lm.shape == (24, 32) and set(np.unique(lm)) <= set(range(8)) and len(np.unique(lm)) > 2


def test_isic2018_masks_incomplete_set_is_an_error(tmp_path, make_isic2019, write_image):
    root = make_isic2019(tmp_path / "m", [("ISIC_0000001", "MEL"), ("ISIC_0000002", "NV")])
    _task2(root, ["ISIC_0000001", "ISIC_0000002"], write_image, skip=("ISIC_0000002", "attribute_streaks"))
    with pytest.raises(InputError, match="ISIC_0000002_attribute_streaks.png not found"):
        load_dataset("isic2018-masks", root)


def test_generic_csv_relative_absolute_and_folder_root(tmp_path, write_image):
    folder = tmp_path / "mine"
    a = write_image(folder / "imgs" / "a.png", seed=1)
    b = write_image(tmp_path / "elsewhere" / "b.png", seed=2)
    write_image(folder / "imgs" / "c.png", seed=3)
    rows = ["image,label,diagnosis", "imgs/a.png,melanoma,MEL", f"{b},0,nevus", "imgs/c.png,Benign,"]
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    for root in (folder, folder / "list.csv"):
        ds = load_dataset("csv", root)
        assert [(r.image, r.label, r.diagnosis) for r in ds.records] == [
            (a.resolve(), 1, "MEL"), (b.resolve(), 0, "nevus"), ((folder / "imgs" / "c.png").resolve(), 0, "benign")]


def test_csv_with_byte_order_mark_and_crlf(tmp_path, make_isic2019):
    root = make_isic2019(tmp_path / "isic", [("ISIC_0000001", "MEL"), ("ISIC_0000002", "NV")])
    gt = root / "ISIC_2019_Training_GroundTruth.csv"
    gt.write_bytes(b"\xef\xbb\xbf" + gt.read_bytes().replace(b"\n", b"\r\n"))
    assert load_dataset("isic2019", root).n == 2


def test_root_may_not_be_missing(tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        load_dataset("isic2019", tmp_path / "nope")


def test_derm7pt_paths_differ_only_in_case_from_meta(tmp_path, write_image):
    rel = _derm7pt(tmp_path / "d7", write_image)
    shutil.rmtree(rel / "images" / "Gal")
    with pytest.raises(InputError, match=r"meta\.csv, line 9: image file not found: .*Gal016\.png"):
        load_dataset("derm7pt-derm", rel)
