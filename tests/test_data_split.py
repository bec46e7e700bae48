"""Train/val/test split (proportions, stratification, lesion grouping, determinism, CSV round trip) and
real-fraction subsets (exact per-class counts as pandas.sample(frac), pairing across configurations)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from engine.data import LesionRecord
from engine.data.split import PAPER_SPLIT, Split, split_dataset
from engine.data.subsets import real_subset
from engine.errors import InputError


def _records(n: int, n_melanoma: int, lesion_size: int = 1) -> list[LesionRecord]:
    """``n`` records; consecutive runs of ``lesion_size`` images share a lesion id (None when 1)."""
    return [
        LesionRecord(
            image=Path(f"/data/ISIC_{i:07d}.jpg"),
            label=int(i // lesion_size < n_melanoma // lesion_size),
            diagnosis="MEL" if i // lesion_size < n_melanoma // lesion_size else "NV",
            source="isic2019",
            image_id=f"ISIC_{i:07d}",
            lesion_id=f"IL_{i // lesion_size}" if lesion_size > 1 else None,
        )
        for i in range(n)
    ]


def test_paper_split_proportions_scale_to_400_and_keep_class_ratio():
    records = _records(400, 72)
    s = split_dataset(records, seed=0)
    exact = [400 * k / sum(PAPER_SPLIT) for k in PAPER_SPLIT]
    assert sum(s.sizes) == 400
    assert all(abs(got - want) <= 1 for got, want in zip(s.sizes, exact, strict=True)), (s.sizes, exact)
    for part, size in zip((s.train, s.val, s.test), PAPER_SPLIT, strict=True):
        assert abs(sum(r.label for r in part) - 72 * size / sum(PAPER_SPLIT)) <= 1
    ids = [r.image_id for part in (s.train, s.val, s.test) for r in part]
    assert sorted(ids) == sorted(r.image_id for r in records)  # disjoint and complete


def test_paper_sizes_reproduced_on_20599_images():
    assert split_dataset(_records(20599, 4522), seed=3).sizes == PAPER_SPLIT


def test_lesions_never_straddle_splits():
    s = split_dataset(_records(600, 120, lesion_size=3), seed=1)
    where = {}
    for name, part in s.parts().items():
        for r in part:
            assert where.setdefault(r.lesion_id, name) == name
    exact = [600 * k / sum(PAPER_SPLIT) for k in PAPER_SPLIT]
    assert all(abs(got - want) <= 3 for got, want in zip(s.sizes, exact, strict=True))


def test_a_lesion_with_a_melanoma_image_is_a_melanoma_group():
    records = _records(200, 40)
    mixed = [LesionRecord(image=Path(f"/x/{i}.jpg"), label=i % 2, diagnosis="MEL" if i % 2 else "NV", source="csv",
                          image_id=f"mix{i}", lesion_id="IL_mixed") for i in range(4)]
    s = split_dataset(records + mixed, seed=2)
    assert len({name for name, part in s.parts().items() for r in part if r.lesion_id == "IL_mixed"}) == 1


def test_split_is_deterministic_order_independent_and_seed_dependent():
    records = _records(300, 60)
    a = split_dataset(records, seed=7)
    b = split_dataset(list(reversed(records)), seed=7)
    c = split_dataset(records, seed=8)
    assert a == b
    assert {r.image_id for r in a.test} != {r.image_id for r in c.test}


def test_split_csv_round_trip_and_foreign_ids(tmp_path):
    records = _records(120, 30)
    s = split_dataset(records, seed=0)
    path = tmp_path / "split.csv"
    s.write_csv(path)
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["image_id", "image", "label", "diagnosis", "lesion_id", "split"]
    assert frame["split"].value_counts().to_dict() == dict(zip(("train", "val", "test"), s.sizes, strict=True))
    assert Split.read_csv(path, records) == s
    assert [p.name for p in tmp_path.iterdir()] == ["split.csv"]  # no temporary left behind
    with pytest.raises(InputError, match=r"split\.csv, line \d+: image id 'ISIC_0000119' is not in the data set"):
        Split.read_csv(path, records[:119])



def test_split_from_its_csv_alone(tmp_path):
    records = _records(60, 15, lesion_size=2)
    s = split_dataset(records, seed=1)
    path = tmp_path / "split.csv"
    s.write_csv(path)
    alone = Split.from_csv(path)
    for name, part in s.parts().items():
        got = alone.parts()[name]
        assert [(r.image_id, r.label, r.image, r.lesion_id) for r in got] == [
            (r.image_id, r.label, r.image, r.lesion_id) for r in part]
    path.write_text(path.read_text().replace(",train\n", ",holdout\n", 1))
    with pytest.raises(InputError, match=r"split\.csv, line \d+: split 'holdout' is not one of train, val, test"):
        Split.from_csv(path)

@pytest.mark.parametrize("fraction", [Fraction(1, 16), Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), 0.5, 0.3])
@pytest.mark.parametrize(("n", "n_melanoma"), [(14805, 2661), (37, 5), (10, 2), (50, 25)])
def test_fraction_counts_match_pandas_sample(fraction, n, n_melanoma):
    train = _records(n, n_melanoma)
    sub = real_subset(train, fraction, replicate=0)
    frame = pd.DataFrame({"label": [r.label for r in train]})
    expected = frame.groupby("label").sample(frac=float(fraction), random_state=0)["label"].value_counts().to_dict()
    got = pd.Series([r.label for r in sub]).value_counts().to_dict()
    assert {k: got.get(k, 0) for k in expected} == expected


def test_paper_quarter_is_3701_of_14805():
    assert len(real_subset(_records(14805, 2661), Fraction(1, 4), replicate=3)) == 3701


def test_replicates_are_paired_across_configurations_and_differ_between_replicates():
    train = _records(400, 80)
    first = real_subset(train, Fraction(1, 4), replicate=2, seed=5)
    again = real_subset(list(train), Fraction(1, 4), replicate=2, seed=5)
    other = real_subset(train, Fraction(1, 4), replicate=3, seed=5)
    assert first == again
    assert {r.image_id for r in first} != {r.image_id for r in other}
    half = {r.image_id for r in real_subset(train, Fraction(1, 2), replicate=2, seed=5)}
    assert {r.image_id for r in first} <= half  # nested within a replicate
    order = [r.image_id for r in train]
    assert [r.image_id for r in first] == sorted((r.image_id for r in first), key=order.index)
    assert real_subset(train, 1, replicate=9) == train


def test_fraction_out_of_range():
    with pytest.raises(ValueError, match="fraction"):
        real_subset(_records(10, 2), 1.5, replicate=0)


def _lists(tmp_path: Path, parts: dict[str, list[str]], column: str = "image") -> dict[str, Path]:
    """One CSV per part in the authors' style: ``ISIC_2019_Training_Input/<id>`` without extension, plus a label."""
    files = {}
    for name, ids in parts.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(f"{column},MEL,label\n" + "".join(f"ISIC_2019_Training_Input/{i},0.0,0\n" for i in ids))
        files[name] = path
    return files


def test_assigned_split_reproduces_the_given_parts_exactly(tmp_path):
    from engine.data.split import assigned_split

    records = _records(100, 30)
    ids = [r.image_id for r in records]
    # not stratified: the lists put 20 of the 30 melanomas (ids 0-29) in train, 4 in val, 6 in test
    parts = {"train": ids[:20] + ids[40:90], "val": ids[20:24] + ids[90:95], "test": ids[24:30] + ids[95:100]}
    split, unassigned = assigned_split(records, _lists(tmp_path, parts))
    assert {name: [r.image_id for r in rs] for name, rs in split.parts().items()} == {
        k: sorted(v) for k, v in parts.items()}
    assert [sum(r.label for r in rs) for rs in (split.train, split.val, split.test)] == [20, 4, 6]
    assert unassigned == 100 - 90  # ids 30-39 are in no list
    split.write_csv(tmp_path / "split.csv")
    assert Split.read_csv(tmp_path / "split.csv", records) == split


def test_assigned_split_matches_downsampled_ids_and_file_names(tmp_path):
    from engine.data.split import assigned_split

    records = _records(6, 2)
    records[3] = LesionRecord(image=Path("/data/ISIC_0000003_downsampled.jpg"), label=0, diagnosis="NV",
                              source="isic2019", image_id="ISIC_0000003_downsampled")
    files = {"train": tmp_path / "t.csv", "val": tmp_path / "v.csv", "test": tmp_path / "s.csv"}
    files["train"].write_text("image_name\nISIC_0000000.jpg\nISIC_0000003\nISIC_0000004_downsampled\n")
    files["val"].write_text("image_id\nISIC_0000001\nISIC_0000005\n")
    files["test"].write_text("image\nISIC_2019_Training_Input/ISIC_0000002\n")
    split, unassigned = assigned_split(records, files)
    assert [r.image_id for r in split.train] == ["ISIC_0000000", "ISIC_0000003_downsampled", "ISIC_0000004"]
    assert unassigned == 0


@pytest.mark.parametrize("change, message", [
    (lambda p: p["val"].append(p["train"][0]),
     r"val\.csv, line 7: image 'ISIC_0000000' is also in the train part \(.*train\.csv, line 2\)"),
    (lambda p: p["test"].append("ISIC_9999999"), r"test\.csv, line \d+: image 'ISIC_9999999' is not in the data set"),
    (lambda p: p["train"].append(p["train"][1]), r"train\.csv, line \d+: image 'ISIC_0000001' listed twice"),
])
def test_assigned_split_reports_inconsistencies(tmp_path, change, message):
    from engine.data.split import assigned_split

    records = _records(30, 10)
    ids = [r.image_id for r in records]
    parts = {"train": ids[:20], "val": ids[20:25], "test": ids[25:]}
    change(parts)
    with pytest.raises(InputError, match=message):
        assigned_split(records, _lists(tmp_path, parts))
    with pytest.raises(InputError, match="missing val"):
        assigned_split(records, {"train": tmp_path / "train.csv", "test": tmp_path / "test.csv"})


def test_listed_subset_keeps_exactly_the_listed_images(tmp_path):
    from engine.data import Dataset
    from engine.data.subsets import listed_subset

    records = _records(50, 10)
    ds = Dataset("isic2020", Path("/data"), records, {})
    listed = [records[i].image_id for i in (3, 0, 17, 42, 11)]
    (tmp_path / "subset.csv").write_text("image\n" + "\n".join(f"train/{i}" for i in listed) + "\n")
    sub = listed_subset(ds, tmp_path / "subset.csv")
    assert {r.image_id for r in sub.records} == set(listed)
    assert [r.image_id for r in sub.records] == sorted(listed)  # the data set's order
    assert sub.dropped == {"not in the subset": 45} and (sub.n_melanoma, sub.n_benign) == (2, 3)
    (tmp_path / "bad.csv").write_text("image\nISIC_0000003\nISIC_0099999\n")
    with pytest.raises(InputError, match=r"bad\.csv, line 3: image 'ISIC_0099999' is not in the isic2020 data set"):
        listed_subset(ds, tmp_path / "bad.csv")
    (tmp_path / "nocol.csv").write_text("name\nISIC_0000003\n")
    with pytest.raises(InputError, match="no image column"):
        listed_subset(ds, tmp_path / "nocol.csv")
