"""Statistics of an experiment's AUCs: descriptive statistics per configuration, and the paired comparison of
each configuration with its group's baseline (replicate k against replicate k: both trained on the same real
subset, so the pairs remove the between-subset variance the paper found to dominate).

The comparison: mean ΔAUC with a seeded percentile-bootstrap 95 % CI; the Wilcoxon signed-rank test from 6 pairs
up (below that its smallest attainable two-sided p is above 0.05 — 0.0625 at 5 pairs, 0.25 at 3 — so it could
never say anything) and a paired t-test below 6, named as such; Holm's step-down correction within each group
(the family of comparisons a reader makes on one panel); a verdict of better / worse only when the CI excludes 0
AND the Holm-adjusted p < 0.05, otherwise "no evidence" (also
while no replicate has a pair: ``n_pairs`` 0 says so).
"""

from __future__ import annotations

import functools
import warnings
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


def bootstrap_ci(deltas: np.ndarray, seed: int = 0, n_boot: int = N_BOOT,
                 level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``deltas`` (pairs resampled with replacement); NaN below 2 pairs."""
    return bootstrap_cis([deltas], seed, n_boot, level)[0]


def bootstrap_cis(series: Sequence[np.ndarray], seed: int = 0, n_boot: int = N_BOOT,
                  level: float = CI_LEVEL) -> list[tuple[float, float]]:
    """:func:`bootstrap_ci` of many series at once.

    The resamples depend only on (seed, number of pairs, n_boot): series with as many pairs share one seeded
    draw (common random numbers), so a CI never depends on what else is compared, and a table of hundreds of
    comparisons costs one draw and one matrix product per pair count."""
    out: list[tuple[float, float]] = [(float("nan"), float("nan"))] * len(series)
    by_n: dict[int, list[int]] = {}
    for i, d in enumerate(series):
        if len(d) >= 2:
            by_n.setdefault(len(d), []).append(i)
    tail = (1 - level) / 2 * 100
    for n, which in by_n.items():
        deltas = np.stack([np.asarray(series[i], dtype=float) for i in which], axis=1)  # (n, k)
        lo, hi = np.percentile(_resample_weights(n, n_boot, seed) @ deltas, [tail, 100 - tail], axis=0)
        for j, i in enumerate(which):
            out[i] = (float(lo[j]), float(hi[j]))
    return out


@functools.lru_cache(maxsize=16)
def _resample_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n): row b holds how often resample b draws each pair, over n, so ``weights @ d`` are the
    resample means. The draw is ``default_rng([seed, n]).integers(0, n, (n_boot, n))``, i.e. what
    ``scipy.stats.bootstrap`` draws from that generator."""
    idx = np.random.default_rng([seed, n]).integers(0, n, size=(n_boot, n))
    counts = np.bincount((np.arange(n_boot)[:, None] * n + idx).ravel(), minlength=n_boot * n)
    weights = counts.reshape(n_boot, n) / n
    weights.setflags(write=False)
    return weights


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
    any other seen) that have no pair, so a missing or failed run shows in the table. ``seed`` seeds the
    bootstrap (see :func:`bootstrap_ci`).
    """
    sets = list(test_sets or experiment.test_sets)
    series = {key: s.droplevel([0, 1]) for key, s in
              aucs.set_index(["test_set", "label", "replicate"])["auc"].groupby(level=[0, 1])}
    empty = pd.Series(dtype=float)
    rows: list[dict[str, object]] = []
    deltas: list[np.ndarray] = []
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
                deltas.append(d)
                test, stat, p = paired_test(d)
                family.append({"test_set": ts, "group": group, "label": conf.label, "baseline": base,
                               "n_pairs": len(d), "dropped": sorted(int(k) for k in expected - set(common)),
                               "mean_delta": float(d.mean()) if len(d) else float("nan"), "test": test,
                               "statistic": stat, "p": p})
            for row, adjusted in zip(family, holm([r["p"] for r in family]), strict=True):
                row["p_holm"] = float(adjusted)
            rows += family
    for row, (lo, hi) in zip(rows, bootstrap_cis(deltas, seed, n_boot), strict=True):
        row["ci_low"], row["ci_high"] = lo, hi
        row["verdict"] = verdict(lo, hi, row["p_holm"])  # type: ignore[arg-type]
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
