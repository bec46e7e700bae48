"""ISIC 2018 label maps: pad / skin / lesion / attributes, overlap order, size checks."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import LesionRecord
from engine.data.masks import ATTRIBUTE_LABELS, LabelMapCache, check_training_only, label_map, training_masks
from engine.data.split import Split
from engine.errors import InputError

H = W = 20


def _mask(path: Path, rows: slice, cols: slice, shape: tuple[int, int] = (H, W)) -> Path:
    m = np.zeros(shape, dtype=np.uint8)
    m[rows, cols] = 255
    Image.fromarray(m).save(path)
    return path


def _record(tmp_path: Path, **overrides) -> LesionRecord:
    img = np.full((H, W, 3), 180, dtype=np.uint8)
    img[:3] = 0  # letterbox band touching the border: pad
    img[16:18, 2:4] = 0  # dark spot inside the frame: still skin
    img[6:9, 0:2] = 0  # dark pixels under the lesion at the border: lesion wins
    Image.fromarray(img).save(tmp_path / "ISIC_0000001.png")
    masks = {
        "segmentation": _mask(tmp_path / "seg.png", slice(5, 15), slice(0, 15)),
        "pigment_network": _mask(tmp_path / "pn.png", slice(6, 10), slice(5, 12)),
        "negative_network": _mask(tmp_path / "nn.png", slice(0, 0), slice(0, 0)),
        "streaks": _mask(tmp_path / "st.png", slice(12, 14), slice(10, 14)),
        "milia_like_cyst": _mask(tmp_path / "mc.png", slice(0, 0), slice(0, 0)),
        "globules": _mask(tmp_path / "gl.png", slice(8, 11), slice(8, 11)),
    }
    masks.update(overrides)
    return LesionRecord(image=tmp_path / "ISIC_0000001.png", label=1, diagnosis="MEL", source="isic2018-masks",
                        image_id="ISIC_0000001", masks=masks)


def test_label_map_layers(tmp_path):
    out = label_map(_record(tmp_path))
    assert out.shape == (H, W) and out.dtype == np.uint8
    assert (out[:3] == 0).all()  # pad
    assert out[17, 3] == 1 and out[18, 18] == 1  # skin, dark spot not connected to the border included
    assert out[6, 0] == 2 and out[14, 0] == 2  # lesion
    assert out[6, 5] == ATTRIBUTE_LABELS["pigment_network"] == 3
    assert out[9, 9] == ATTRIBUTE_LABELS["globules"] == 7  # globules painted over the pigment network
    assert out[12, 12] == ATTRIBUTE_LABELS["streaks"] == 5
    assert set(np.unique(out)) == {0, 1, 2, 3, 5, 7}


def test_mask_size_mismatch_names_the_file(tmp_path):
    bad = _mask(tmp_path / "odd.png", slice(0, 2), slice(0, 2), shape=(10, 10))
    with pytest.raises(InputError, match=rf"{bad}: mask is 10x10, the segmentation is 20x20"):
        label_map(_record(tmp_path, streaks=bad))


def test_record_without_masks(tmp_path):
    rec = LesionRecord(image=tmp_path / "x.png", label=0, diagnosis="NV", source="csv", image_id="x")
    with pytest.raises(InputError, match="no segmentation, pigment_network"):
        label_map(rec)


def _records(tmp_path: Path, n: int) -> list[LesionRecord]:
    out = []
    for i in range(n):
        folder = tmp_path / f"r{i}"
        folder.mkdir()
        rec = _record(folder, globules=_mask(folder / "gl.png", slice(8, 8 + i + 2), slice(8, 11)))
        out.append(replace(rec, image_id=f"ISIC_000000{i}"))
    return out


def test_label_map_cache_nearest_and_reuse(tmp_path):
    records = _records(tmp_path, 2)
    cache = LabelMapCache(tmp_path / "cache")
    maps = cache.load(records, 10)
    assert maps.shape == (2, 10, 10) and maps.dtype == np.uint8 and cache.misses == 2
    for m, r in zip(maps, records, strict=True):
        full = label_map(r)
        np.testing.assert_array_equal(m, full[1::2, 1::2])  # NEAREST: every value is one of the map's, none blended
    np.testing.assert_array_equal(cache.load(records, H), np.stack([label_map(r) for r in records]))
    again = LabelMapCache(tmp_path / "cache")
    np.testing.assert_array_equal(again.load(records[::-1], 10), maps[::-1])
    assert again.misses == 0
    _mask(records[1].masks["globules"], slice(0, 0), slice(0, 0))  # an edited mask file is a miss
    os.utime(records[1].masks["globules"], ns=(1, 1))
    edited = again.load(records, 10)
    assert again.misses == 1 and (edited[1] != maps[1]).any() and (edited[0] == maps[0]).all()


def _rec(image_id: str, label: int) -> LesionRecord:
    return LesionRecord(image=Path(f"/x/{image_id}.jpg"), label=label, diagnosis="MEL" if label else "NV",
                        source="isic2019", image_id=image_id)


def test_training_masks_keep_only_training_images():
    split = Split(train=[_rec("ISIC_1", 1), _rec("ISIC_2_downsampled", 0), _rec("ISIC_3", 0)],
                  val=[_rec("ISIC_4", 0)], test=[_rec("ISIC_5", 1)])
    masks = [_rec(i, label) for i, label in [("ISIC_1", 1), ("ISIC_2", 0), ("ISIC_4", 0), ("ISIC_5", 1), ("ISIC_6", 0)]]
    kept, left_out = training_masks(masks, split, "split.csv")
    assert [r.image_id for r in kept] == ["ISIC_1", "ISIC_2"]
    assert left_out == {"image in val": 1, "image in test": 1, "not in the split": 1}
    with pytest.raises(InputError, match="split.csv: image ISIC_2 has label 0 in the split but 1"):
        training_masks([_rec("ISIC_2", 1)], split, "split.csv")
    check_training_only(kept, split)
    for leaked in ("ISIC_4", "ISIC_5", "ISIC_6"):
        with pytest.raises(AssertionError, match=leaked):
            check_training_only([*kept, _rec(leaked, 0)], split)
