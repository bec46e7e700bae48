"""Results analysis: AUCs from the store only, descriptive statistics and paired comparisons checked against
numpy/scipy on fixed inputs, missing and failed replicates reported with their pairs dropped."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from engine import store as st
from engine.analysis import analyse
from engine.analysis.load import load_aucs
from engine.analysis.stats import bootstrap_ci, compare, describe, holm, paired_test, verdict
from engine.config import Experiment, parse_experiments
from engine.errors import InputError


def experiment(groups: str, replicates: int = 10, baseline: str = "1:0", tests: tuple[str, ...] = ("isic20",),
               ) -> Experiment:
    """A small experiment (data paths never read: the analysis only needs the design)."""
    tables = "".join(f'[data.tests.{t}]\nformat = "isic2020"\nroot = "/d/{t}"\n' for t in tests)
    text = (f'[data.train]\nformat = "isic2019"\nroot = "/d/train"\n{tables}[gans.sgn]\nfamily = "stylegan2"\n'
            f'[[experiment]]\nname = "e"\nbaseline = "{baseline}"\nreplicates = {replicates}\n'
            f'[experiment.groups]\n{groups}\n')
    return parse_experiments(text, Path("t.toml"))[0]


def aucs_frame(exp: Experiment, values: Mapping[str, Mapping[str, list[float | None]]]) -> pd.DataFrame:
    """{test set: {label: AUC per replicate (None = missing)}} -> the loader's long frame."""
    group = {c.label: g for g, cs in exp.groups for c in cs}
    rows = [(ts, group[label], label, k, f"run-{label}-{k}", v) for ts, by_label in values.items()
            for label, series in by_label.items() for k, v in enumerate(series) if v is not None]
    return pd.DataFrame(rows, columns=["test_set", "group", "label", "replicate", "run_id", "auc"])


def fill_store(s: st.Store, exp: Experiment, values: Mapping[str, Mapping[str, list[float | None]]],
               failed: Mapping[tuple[str, int], str] = {},  # noqa: B006
               configs: Mapping[str, dict] = {}) -> dict[tuple[str, int], str]:  # noqa: B006
    """Submit ``exp``, create one classify run per (label, replicate) (config: ``configs[label]`` plus its
    replicate) and record its ``auc/<test set>`` metrics as the classify kind does (step 0); ``failed`` runs end
    failed with that reason. Returns the run ids."""
    s.set_experiment(exp.name, exp.to_spec())
    keys = [(c.label, k) for c in exp.configurations for k in range(exp.replicates)]
    ids = dict(zip(keys, s.create_runs([st.NewRun("classify", {**configs.get(lab, {}), "replicate": k}, label=lab,
                                                  experiment=exp.name) for lab, k in keys]), strict=True))
    for (label, k), rid in ids.items():
        if (label, k) in failed:
            s.finish(rid, st.FAILED, failed[label, k])
            continue
        s.write_metrics(rid, [(f"auc/{ts}", 0, by[label][k], time.time()) for ts, by in values.items()
                              if label in by and by[label][k] is not None])
        s.finish(rid, st.SUCCEEDED)
    return ids


RNG = np.random.default_rng(42)
BASE = np.round(0.80 + 0.02 * RNG.standard_normal(10), 4)
BETTER = np.round(BASE + 0.015 + 0.003 * RNG.standard_normal(10), 4)  # consistently above its pair
NOISE = np.round(BASE + 0.01 * RNG.standard_normal(10), 4)


def test_describe_matches_numpy() -> None:
    exp = experiment('g = ["1:0", "1:1/2"]')
    aucs = aucs_frame(exp, {"isic19": {"1:0": list(BASE), "1:1/2": list(NOISE[:7])}})
    out = describe(aucs, exp, ["isic19", "isic20"]).set_index(["test_set", "label"])
    row = out.loc[("isic19", "1:1/2")]
    v = NOISE[:7]
    assert row["n"] == 7 and row["mean"] == pytest.approx(v.mean()) and row["sd"] == pytest.approx(v.std(ddof=1))
    assert row["median"] == pytest.approx(np.median(v))
    assert (row["q1"], row["q3"]) == pytest.approx(tuple(np.percentile(v, [25, 75])))
    assert (row["min"], row["max"]) == (v.min(), v.max())
    assert out.loc[("isic20", "1:0"), "n"] == 0 and np.isnan(out.loc[("isic20", "1:0"), "mean"])  # shown, empty
    assert list(out.index.get_level_values("label")) == ["1:0", "1:1/2"] * 2  # the experiment's order


def test_paired_tests_match_scipy() -> None:
    name, stat, p = paired_test(BETTER - BASE)
    ref = ss.wilcoxon(BETTER, BASE)
    assert name == "wilcoxon" and (stat, p) == pytest.approx((ref.statistic, ref.pvalue))
    # Below 6 pairs the signed-rank test cannot reach p < 0.05 (5 pairs: 0.0625 at best): a paired t-test.
    assert ss.wilcoxon(BETTER[:5], BASE[:5]).pvalue > 0.05
    name, stat, p = paired_test(BETTER[:5] - BASE[:5])
    ref = ss.ttest_rel(BETTER[:5], BASE[:5])
    assert name == "paired-t" and (stat, p) == pytest.approx((ref.statistic, ref.pvalue))
    assert np.isnan(paired_test(np.array([0.01]))[2])  # one pair: no test
    assert paired_test(np.zeros(8))[2] == 1.0  # all pairs tied: no difference


def test_holm_step_down() -> None:
    # Textbook: sorted p (0.005, 0.01, 0.03, 0.04) x (4, 3, 2, 1) = (0.02, 0.03, 0.06, 0.04), then made monotone.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([np.nan, 0.02, 0.04, 0.6])  # NaN is not part of the family
    assert np.isnan(out[0]) and out[1:] == pytest.approx([0.06, 0.08, 0.6])
    assert holm([0.7, 0.01]) == pytest.approx([0.7, 0.02])
    assert holm([0.6, 0.55]) == pytest.approx([1.0, 1.0])  # capped at 1, and never below a smaller p's value


def test_bootstrap_ci_is_seeded_and_agrees_with_scipy() -> None:
    d = BETTER - BASE
    lo, hi = bootstrap_ci(d, seed=7, n_boot=10_000)
    # The same resamples as scipy's percentile bootstrap drawing from default_rng([seed, number of pairs]).
    ref = ss.bootstrap((d,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng([7, 10]))
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)
    assert bootstrap_ci(d, seed=7, n_boot=10_000) == (lo, hi)
    assert bootstrap_ci(d, seed=8, n_boot=10_000) != (lo, hi)
    assert lo < d.mean() < hi
    assert bootstrap_ci(-d, seed=7) == pytest.approx((-hi, -lo), abs=1e-12)  # the same resamples, mirrored
    assert all(np.isnan(bootstrap_ci(d[:1])))


@pytest.mark.parametrize(("ci", "p", "want"), [
    ((0.01, 0.02), 0.01, "better"), ((-0.02, -0.01), 0.01, "worse"),
    ((0.01, 0.02), 0.06, "no evidence"),  # CI excludes 0 but the corrected test does not agree
    ((-0.01, 0.02), 0.001, "no evidence"),  # the test agrees but the CI contains 0
    ((0.01, 0.02), float("nan"), "no evidence")])
def test_verdict_needs_both_the_interval_and_the_corrected_test(ci, p, want) -> None:
    assert verdict(*ci, p) == want


def test_compare_pairs_replicates_within_each_group() -> None:
    exp = experiment('base = ["1:0"]\naug = ["1:1/2", "1:1/4"]\nx4 = ["1/4:1/4", "1/4:0"]')
    low = list(np.round(BASE - 0.05, 4))
    aucs = aucs_frame(exp, {"isic19": {"1:0": list(BASE), "1:1/2": list(BETTER), "1:1/4": list(NOISE),
                                       "1/4:1/4": list(np.round(np.array(low) - 0.01, 4)), "1/4:0": low}})
    out = compare(aucs, exp, ["isic19"], n_boot=2000, seed=3).set_index("label")
    assert list(out.index) == ["1:1/2", "1:1/4", "1/4:1/4"]  # baselines are not compared with themselves
    assert out.loc["1/4:1/4", "baseline"] == "1/4:0" and out.loc["1:1/2", "baseline"] == "1:0"
    d = BETTER - BASE
    assert out.loc["1:1/2", "mean_delta"] == pytest.approx(d.mean())
    p_aug = [ss.wilcoxon(BETTER, BASE).pvalue, ss.wilcoxon(NOISE, BASE).pvalue]
    assert list(out.loc[["1:1/2", "1:1/4"], "p_holm"]) == pytest.approx(list(holm(p_aug)))  # family = group
    assert out.loc["1/4:1/4", "p_holm"] == pytest.approx(ss.wilcoxon(np.array(low) - 0.01, low).pvalue)
    assert out.loc["1:1/2", "verdict"] == "better" and out.loc["1/4:1/4", "verdict"] == "worse"
    assert out.loc["1:1/4", "verdict"] == "no evidence"
    again = compare(aucs, exp, ["isic19"], n_boot=2000, seed=3).set_index("label")
    assert again.loc["1:1/2", "ci_low"] == out.loc["1:1/2", "ci_low"]  # seeded


def test_a_missing_replicate_drops_its_pair_visibly_and_small_samples_use_the_t_test() -> None:
    exp = experiment('g = ["1:0", "1:1/2"]', replicates=5)
    base, aug = list(BASE[:5]), list(BETTER[:5])
    aug[2] = None
    out = compare(aucs_frame(exp, {"isic19": {"1:0": base, "1:1/2": aug}}), exp, ["isic19"], n_boot=500).iloc[0]
    kept = [0, 1, 3, 4]
    assert out["n_pairs"] == 4 and out["dropped"] == [2]
    assert out["test"] == "paired-t"
    assert out["p"] == pytest.approx(ss.ttest_rel(BETTER[kept], BASE[kept]).pvalue)


def test_results_from_the_store_report_failed_and_missing_runs(tmp_path) -> None:
    exp = experiment('g = ["1:0", "1:1/2"]', replicates=6, tests=("isic20", "derm"))
    values = {"isic19": {"1:0": list(BASE[:6]), "1:1/2": list(BETTER[:6])},
              "isic20": {"1:0": list(BASE[:6]), "1:1/2": [*BETTER[:5], None]}}
    with st.open_store(tmp_path / "ws") as s:
        ids = fill_store(s, exp, values, failed={("1:1/2", 1): "CUDA out of memory"})
        # A retried replicate is a second run: the one that succeeded counts.
        retry = s.create_run("classify", {"replicate": 1}, label="1:0", experiment="e")
        s.write_metrics(retry, [("auc/isic19", 0, 0.5, time.time())])
        s.finish(retry, st.SUCCEEDED)
        res = analyse(s, "e", n_boot=500)
        data = load_aucs(s, res.experiment, ["isic19"])
    assert res.test_sets == ["isic19", "isic20", "derm"]
    missing = {(m.label, m.replicate, None if pd.isna(m.test_set) else m.test_set): m.reason
               for m in res.missing.itertuples()}
    assert missing[("1:1/2", 1, None)] == "run failed: CUDA out of memory"
    assert missing[("1:1/2", 5, "isic20")] == "no auc/isic20 metric"
    assert missing[("1:0", 0, "derm")] == "no auc/derm metric"  # never scored on that set
    rows = res.table.set_index(["test_set", "label"])
    assert rows.loc[("isic19", "1:1/2"), "dropped"] == [1] and rows.loc[("isic20", "1:1/2"), "dropped"] == [1, 5]
    assert rows.loc[("isic19", "1:0"), "verdict"] == "baseline"
    assert rows.loc[("derm", "1:1/2"), "n"] == 0 and rows.loc[("derm", "1:1/2"), "verdict"] == "no evidence"
    base = data.aucs[data.aucs["label"] == "1:0"].set_index("replicate")
    assert base.loc[1, "auc"] == 0.5 and base.loc[1, "run_id"] == retry  # the latest success, not the first
    assert set(data.aucs["run_id"]) - {retry} <= set(ids.values())


def test_runs_trained_under_different_protocols_are_not_compared(tmp_path) -> None:
    from engine.train.config import parse_config

    def config(**keys: object) -> dict:
        return parse_config({"data": {"format": "isic2019", "root": "/d/train"}, **keys}).to_json()

    exp = experiment('g = ["1:0", "1:1/2"]', replicates=3)
    values = {"isic19": {"1:0": list(BASE[:3]), "1:1/2": list(BETTER[:3])}}
    with st.open_store(tmp_path / "same") as s:  # what a configuration may vary, and how a run executes: fine
        fill_store(s, exp, values, configs={"1:0": config(device="cpu"),
                                            "1:1/2": config(real_fraction="1/2", device="cuda", amp=False)})
        assert len(analyse(s, "e", n_boot=100).comparisons) == 2
    with st.open_store(tmp_path / "tuned") as s:  # more tuning for the augmented model: refused
        ids = fill_store(s, exp, values, configs={"1:0": config(), "1:1/2": config(optim={"lr": 0.01})})
        with pytest.raises(InputError, match=rf"group 'g': runs {ids['1:0', 0]} and {ids['1:1/2', 0]} differ in "
                                             r"protocol \(optim.lr\)"):
            analyse(s, "e")


def test_unknown_experiment_test_set_and_unsubmitted_experiment(tmp_path) -> None:
    exp = experiment('g = ["1:0"]', replicates=1)
    with st.open_store(tmp_path / "ws") as s:
        fill_store(s, exp, {"isic19": {"1:0": [0.7]}})
        s.create_run("classify", {}, label="1:0", experiment="adhoc")  # linked, but never submitted with a spec
        with pytest.raises(InputError, match=r"unknown experiment 'x' in workspace .* \(known: e, adhoc\)"):
            analyse(s, "x")
        with pytest.raises(InputError, match=r"--test-set 'isic21': experiment 'e' scores isic19, isic20"):
            analyse(s, "e", ["isic21"])
        with pytest.raises(InputError, match="'adhoc' .* has no stored spec"):
            analyse(s, "adhoc")
