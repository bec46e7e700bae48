"""The ratio grammar and experiments.toml: the paper's labels mean exactly one training mix."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from engine.config import ClassCounts, Configuration, Ratio, load_experiments
from engine.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_plain_ratio_splits_synthetic_by_real_class_ratio() -> None:
    c = Ratio.parse("1:1/2").counts(n_benign=12000, n_melanoma=2805)
    assert c == ClassCounts(12000, 2805, 6000, 1402)  # 1402.5 rounds half to even


def test_balanced_form_scales_each_class() -> None:
    c = Ratio.parse("(1:1/2:1)").counts(n_benign=100, n_melanoma=30)
    assert (c.synth_benign, c.synth_melanoma) == (50, 30)
    assert Ratio.parse("(1:1/2:1/2)") == Ratio.parse("1:1/2")
    assert Ratio.parse("(1:1/2:3/4)") != Ratio.parse("1:1/2")


@pytest.mark.parametrize("n", [7, 10, 25, 37, 14805])
@pytest.mark.parametrize("frac", ["1/16", "1/8", "1/4", "1/2"])
def test_real_counts_match_pandas_sample(n: int, frac: str) -> None:
    expected = len(pd.DataFrame({"x": range(n)}).sample(frac=float(Fraction(frac)), random_state=0))
    assert Ratio.parse(f"{frac}:0").counts(n, 0).real_benign == expected


@pytest.mark.parametrize("bad", ["1", "1:", "2:0", "1:0.5", "1:1/0", "0:0", "(1:1/2)", "1/2:3/2:1", "a:b"])
def test_bad_ratios_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="bad ratio"):
        Ratio.parse(bad)


def test_labels_round_trip_and_default_tags() -> None:
    conf = Configuration.parse("1:1/2 bst sgn")
    assert (conf.gan, conf.sampler) == ("stylegan2", "best")
    assert conf.label == "1:1/2 bst"
    assert Configuration.parse("1:1/2 p2p").label == "1:1/2 p2p"
    assert Configuration.parse("1:1/4").gan == "stylegan2"


@pytest.mark.parametrize(
    ("label", "why"),
    [("1:0 sgn", "no synthetic"), ("1:1/2 xyz", "unknown tag"), ("1:1/2 p2p bst", "noise GANs"),
     ("1:1/2 sgn pgn", "at most one")],
)
def test_bad_labels_say_why(label: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Configuration.parse(label)


def test_translation_gan_capacity_is_per_class() -> None:
    # The paper's data: 14,805 real training images (3,121 melanoma), 2,346 training masks (1,861 + 485).
    real_benign, real_melanoma, masks = 14805 - 3121, 3121, (1861, 485)
    melanoma_heavy = Configuration.parse("(1:0:1/2) p2p")
    counts = melanoma_heavy.ratio.counts(real_benign, real_melanoma)
    assert counts.synthetic == 1560 < sum(masks)  # the old total-only check let this through
    with pytest.raises(ValueError, match=r"1560 synthetic melanoma images but pix2pixhd has only 485 melanoma"):
        melanoma_heavy.check_capacity(counts, masks, cap=False)
    assert melanoma_heavy.check_capacity(counts, masks, cap=True) == ClassCounts(11684, 3121, 0, 485)

    half = Configuration.parse("1:1/2 spd")
    with pytest.raises(ValueError, match="benign images but spade has only 1861 benign masks"):
        half.check_capacity(half.ratio.counts(real_benign, real_melanoma), masks, cap=False)
    capped = half.check_capacity(half.ratio.counts(real_benign, real_melanoma), masks, cap=True)
    assert (capped.synth_benign, capped.synth_melanoma) == (1861, 485)  # each class clipped to its own masks

    # Under capacity in both classes: unchanged, cap or not; a class under capacity is never scaled down.
    small = Configuration.parse("(1:1/16:1/8) p2p")
    counts = small.ratio.counts(real_benign, real_melanoma)
    assert small.check_capacity(counts, masks, cap=False) == counts == small.check_capacity(counts, masks, cap=True)
    one_over = Configuration.parse("(1:1/16:1/2) p2p").check_capacity(
        Ratio.parse("(1:1/16:1/2)").counts(real_benign, real_melanoma), masks, cap=True)
    assert (one_over.synth_benign, one_over.synth_melanoma) == (730, 485)


def test_noise_gans_have_no_capacity() -> None:
    counts = Ratio.parse("1:1").counts(1000, 200)
    assert Configuration.parse("1:1").check_capacity(counts, (1, 1), cap=False) == counts
    assert Configuration.parse("1:1 pgn").check_capacity(counts, (0, 0), cap=False) == counts


def test_shipped_experiments_are_the_papers_table_2() -> None:
    aug, anon, demo = load_experiments(ROOT / "experiments.toml")
    assert {c.ratio.text for c in aug.configurations} == {
        "1:0", "1:1/4", "1:1/2", "1:1", "(1:1/2:1/2)", "(1:1/2:3/4)", "(1:1/2:1)"}
    assert {c.gan for c in aug.configurations if c.ratio.has_synthetic} == {
        "pix2pixhd", "spade", "pgan", "stylegan2", "all"}
    assert {c.sampler for c in aug.configurations} == {"random", "diverse", "best", "worst"}
    assert dict(aug.groups)["sampler_1_1"] == tuple(Configuration.parse(x) for x in ("1:1 bst", "1:1 wst", "1:1 div"))
    # Figure 2's order: each anonymization group's own baseline 1/x:0 is drawn last in its group, 1:0 last of all.
    assert [c.label for c in anon.configurations] == [
        "1/16:1/16", "1/16:15/16", "1/16:0", "1/8:1/8", "1/8:7/8", "1/8:0",
        "1/4:1/4", "1/4:3/4", "1/4:0", "1/2:1/2", "1/2:0", "1:1", "1:0"]
    assert {c.gan for c in anon.configurations} == {"stylegan2"}
    assert anon.baseline_of("x8") == "1/8:0" and anon.baseline == "1:0" and aug.baseline_of("gan") == "1:0"
    assert aug.replicates == anon.replicates == 10
    assert demo.replicates == 3 and {"1:0", "1:1/2", "1:1/2 div", "1:1/2 bst", "1/4:0", "1/4:3/4"} <= set(demo.labels)


def test_bad_experiments_file_names_file_and_key(tmp_path: Path) -> None:
    f = tmp_path / "experiments.toml"
    f.write_text('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0", "1:1/2 nope"]\n')
    with pytest.raises(InputError, match=r"experiments\.toml: experiment\[0\]\.groups\.g\[1\]: .*nope"):
        load_experiments(f)


def test_experiments_take_the_split_file_key_of_classify_runs(tmp_path) -> None:
    toml = tmp_path / "exp.toml"
    toml.write_text('[data.train]\nformat = "isic2019"\nroot = "data"\nsplit_file = "splits/paper.csv"\n\n'
                    '[[experiment]]\nname = "a"\n[experiment.groups]\nbaseline = ["1:0"]\n')
    (exp,) = load_experiments(toml)
    assert exp.train.split_file == str(tmp_path / "splits" / "paper.csv")  # relative to the TOML file
    assert exp.classify_base()["data"]["split_file"] == exp.train.split_file
    toml.write_text('[data.train]\nformat = "isic2019"\nroot = "data"\nsplit_file = 3\n\n'
                    '[[experiment]]\nname = "a"\n[experiment.groups]\nbaseline = ["1:0"]\n')
    with pytest.raises(InputError, match=r"split_file"):
        load_experiments(toml)
