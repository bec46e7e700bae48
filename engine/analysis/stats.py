"""Statistics of an experiment's AUCs: descriptive statistics per configuration, and the paired comparison of
each configuration with its group's baseline (replicate k against replicate k: both trained on the same real
subset, so the pairs remove the between-subset variance the paper found to dominate).

The comparison: mean ΔAUC with a seeded percentile-bootstrap 95 % CI; the Wilcoxon signed-rank test from 6 pairs
up (below that its smallest attainable two-sided p is above 0.05 — 0.0625 at 5 pairs, 0.25 at 3 — so it could
never say anything) and a paired t-test below 6, named as such; Holm's step-down correction within each group
(the family of comparisons a reader makes on one panel); a verdict of better / worse only when the CI excludes 0
AND the Holm-adjusted p < 0.05, otherwise "no evidence".
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from engine.config import Experiment

WILCOXON_MIN_PAIRS = 6
ALPHA = 0.05
CI_LEVEL = 0.95
N_BOOT = 10_000
BETTER, WORSE, NO_EVIDENCE, BASELINE = "better", "worse", "no evidence", "baseline"
SUMMARY_COLUMNS = ["test_set", "group", "label", "n", "mean", "sd", "median", "q1", "q3", "min", "max"]
COMPARISON_COLUMNS = ["test_set", "group", "label", "baseline", "n_pairs", "dropped", "mean_delta", "ci_low",
                      "ci_high", "test", "statistic", "p", "p_holm", "verdict"]


def describe(aucs: pd.DataFrame, experiment: Experiment, test_sets: Sequence[str] | None = None) -> pd.DataFrame:
    """n, mean, sd (n-1), median, quartiles (linear interpolation, as the box-plots), min, max of AUC per test set
    and configuration, in the experiment's order; a configuration without any AUC has n = 0 and NaN statistics."""
    sets = list(test_sets or experiment.test_sets)
    groups = {c.label: g for g, confs in experiment.groups for c in confs}
    g = aucs.groupby(["test_set", "label"], sort=False)["auc"]
    stats = pd.DataFrame({
        "n": g.size(), "mean": g.mean(), "sd": g.std(ddof=1), "median": g.median(),
        "q1": g.quantile(0.25), "q3": g.quantile(0.75), "min": g.min(), "max": g.max(),
    })
    index = pd.MultiIndex.from_product([sets, experiment.labels], names=["test_set", "label"])
    out = stats.reindex(index).reset_index()
    out["n"] = out["n"].fillna(0).astype(int)
    out.insert(1, "group", out["label"].map(groups))
    return out[SUMMARY_COLUMNS]


def bootstrap_ci(deltas: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT,
                 level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``deltas`` (resampling pairs); NaN below 2 pairs."""
    d = np.asarray(deltas, dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan")
    means = np.empty(n_boot)
    chunk = max(1, 4_000_000 // len(d))  # bounded memory for long series
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def paired_test(deltas: np.ndarray) -> tuple[str, float, float]:
    """(test name, statistic, two-sided p) on paired differences: ``wilcoxon`` (signed-rank) from
    :data:`WILCOXON_MIN_PAIRS` pairs, else ``paired-t``; p is NaN where the test is undefined (fewer than 2
    pairs, or a t-test on differences without spread)."""
    from scipy import stats

    d = np.asarray(deltas, dtype=float)
    if len(d) >= WILCOXON_MIN_PAIRS:
        if not np.any(d):
            return "wilcoxon", 0.0, 1.0  # every pair tied: no difference to rank
        res = stats.wilcoxon(d)
        return "wilcoxon", float(res.statistic), float(res.pvalue)
    if len(d) < 2 or np.ptp(d) == 0:
        return "paired-t", float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_1samp(d, 0.0)  # = ttest_rel(configuration, baseline) on the pairs
    return "paired-t", float(res.statistic), float(res.pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count in the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m:
        order = np.argsort(p[ok], kind="stable")
        stepped = np.minimum(1.0, np.maximum.accumulate(p[ok][order] * (m - np.arange(m))))
        adjusted = np.empty(m)
        adjusted[order] = stepped
        out[ok] = adjusted
    return out


def verdict(ci_low: float, ci_high: float, p_holm: float, alpha: float = ALPHA) -> str:
    """better / worse only when the CI excludes 0 and the Holm-adjusted p is below ``alpha``."""
    if not p_holm < alpha:  # also NaN
        return NO_EVIDENCE
    if ci_low > 0:
        return BETTER
    if ci_high < 0:
        return WORSE
    return NO_EVIDENCE


def compare(aucs: pd.DataFrame, experiment: Experiment, test_sets: Sequence[str] | None = None, *,
            n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Each configuration against its group's baseline (``experiment.baseline_of``), per test set.

    Pairs are replicates present on both sides; ``dropped`` lists the expected replicates (0..replicates-1 and
    any other seen) that have no pair, so a missing or failed run shows in the table. Each comparison's bootstrap
    draws from its own stream seeded by (seed, test set, label): results do not depend on what else is compared.
    """
    sets = list(test_sets or experiment.test_sets)
    series = {key: s.droplevel([0, 1]) for key, s in
              aucs.set_index(["test_set", "label", "replicate"])["auc"].groupby(level=[0, 1])}
    empty = pd.Series(dtype=float)
    rows: list[dict[str, object]] = []
    for ts in sets:
        for group, confs in experiment.groups:
            base = experiment.baseline_of(group)
            b = series.get((ts, base), empty)
            family = []
            for conf in confs:
                if conf.label == base:
                    continue
                x = series.get((ts, conf.label), empty)
                common = sorted(set(x.index) & set(b.index))
                expected = set(range(experiment.replicates)) | set(x.index) | set(b.index)
                d = (x.loc[common] - b.loc[common]).to_numpy(dtype=float)
                rng = np.random.default_rng([seed, zlib.crc32(f"{ts}\t{conf.label}".encode())])
                lo, hi = bootstrap_ci(d, rng, n_boot)
                test, stat, p = paired_test(d)
                family.append({"test_set": ts, "group": group, "label": conf.label, "baseline": base,
                               "n_pairs": len(d), "dropped": sorted(int(k) for k in expected - set(common)),
                               "mean_delta": float(d.mean()) if len(d) else float("nan"), "ci_low": lo,
                               "ci_high": hi, "test": test, "statistic": stat, "p": p})
            for row, adjusted in zip(family, holm([r["p"] for r in family]), strict=True):
                row["p_holm"] = float(adjusted)
                row["verdict"] = verdict(row["ci_low"], row["ci_high"], adjusted)  # type: ignore[arg-type]
            rows += family
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
