"""The results table (descriptive statistics joined with the paired comparisons) and its file formats.

CSV columns (a contract; scripts read them): :data:`TABLE_COLUMNS`. ``dropped`` is space-separated replicate
numbers; ``verdict`` is better | worse | no evidence | baseline (the group's own baseline row).
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from engine.analysis.stats import BASELINE

TABLE_COLUMNS = ["experiment", "test_set", "group", "label", "baseline", "n", "mean", "sd", "median", "q1", "q3",
                 "min", "max", "n_pairs", "dropped", "mean_delta", "ci_low", "ci_high", "test", "statistic", "p",
                 "p_holm", "verdict"]


def results_table(experiment_name: str, summary: pd.DataFrame, comparisons: pd.DataFrame,
                  baselines: dict[str, str]) -> pd.DataFrame:
    """One row per (test set, configuration) in the summary's order; comparison columns empty on a group's own
    baseline row (``verdict`` = ``baseline``). ``baselines``: group -> its baseline label."""
    table = summary.merge(comparisons, on=["test_set", "group", "label"], how="left", sort=False)
    own = table["label"] == table["group"].map(baselines)
    table.loc[own, "verdict"] = BASELINE
    table["baseline"] = table["group"].map(baselines)
    table["n_pairs"] = table["n_pairs"].astype("Int64")
    table["dropped"] = [d if isinstance(d, list) else [] for d in table["dropped"]]
    table.insert(0, "experiment", experiment_name)
    return table[TABLE_COLUMNS]


# What a reader sees of one test set's rows, in ``ganaug results`` and the TUI's Results screen alike:
# (key, title, right-aligned) per column of :func:`display_rows`.
DISPLAY_COLUMNS = (("group", "group", False), ("label", "configuration", False), ("n", "n", True),
                   ("mean", "mean ± sd", True), ("median", "median [q1, q3]", True), ("range", "min – max", True),
                   ("delta", "ΔAUC [95 % CI]", True), ("pairs", "pairs", True), ("test", "test", False),
                   ("p", "p (Holm)", True), ("verdict", "verdict", False))


def display_rows(table: pd.DataFrame, test_set: str) -> list[dict[str, str]]:
    """One test set's rows of :func:`results_table` as formatted cells keyed by :data:`DISPLAY_COLUMNS`: three
    decimals, a dash for an undefined statistic, the comparison cells blank on a group's own baseline row."""
    out = []
    for r in table[table["test_set"] == test_set].itertuples():
        if r.verdict == BASELINE:
            delta, pairs, test, p = f"baseline of {r.group}", "", "", ""
        else:
            delta = f"{fmt(r.mean_delta, '+.3f')} [{fmt(r.ci_low, '+.3f')}, {fmt(r.ci_high, '+.3f')}]"
            pairs = str(r.n_pairs) + (f" (no pair: {' '.join(map(str, r.dropped))})" if r.dropped else "")
            test, p = r.test, fmt(r.p_holm, ".3g")
        out.append({"group": r.group, "label": r.label, "n": str(r.n), "mean": f"{fmt(r.mean)} ± {fmt(r.sd)}",
                    "median": f"{fmt(r.median)} [{fmt(r.q1)}, {fmt(r.q3)}]", "range": f"{fmt(r.min)} – {fmt(r.max)}",
                    "delta": delta, "pairs": pairs, "test": test, "p": p, "verdict": r.verdict})
    return out


def fmt(x: Any, spec: str = ".3f") -> str:
    """A number for a table; an undefined statistic (NaN/NA: too few pairs, no data) is a dash."""
    return "–" if pd.isna(x) else format(x, spec)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN/NA become null, numpy scalars plain Python."""
    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: _plain(v) for k, v in row.items()})
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def to_csv(table: pd.DataFrame) -> str:
    flat = table.assign(dropped=[" ".join(str(k) for k in d) for d in table["dropped"]])
    buf = io.StringIO()
    flat.to_csv(buf, index=False, float_format="%.6g", lineterminator="\n")
    return buf.getvalue()


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _num(x: Any, digits: int = 3) -> str:
    return "--" if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def to_latex(table: pd.DataFrame) -> str:
    """One booktabs tabular per test set, groups separated by rules (the paper's colour groups)."""
    out = []
    for ts, rows in table.groupby("test_set", sort=False):
        lines = [r"\begin{tabular}{lrrrrll}", r"\toprule",
                 rf"\multicolumn{{7}}{{l}}{{\textbf{{{_tex(str(ts))}}}}} \\",
                 r"Configuration & $n$ & Mean $\pm$ SD & Median [Q1, Q3] & $\Delta$AUC [95\% CI] & "
                 r"$p$ (Holm) & Verdict \\", r"\midrule"]
        previous = None
        for r in rows.itertuples():
            if previous is not None and r.group != previous:
                lines.append(r"\midrule")
            previous = r.group
            delta = "--" if r.verdict == BASELINE or pd.isna(r.mean_delta) else \
                f"{r.mean_delta:+.3f} [{_num(r.ci_low)}, {_num(r.ci_high)}]"
            p = "--" if r.verdict == BASELINE or pd.isna(r.p_holm) else f"{r.p_holm:.3g} ({_tex(str(r.test))})"
            lines.append(f"{_tex(r.label)} & {r.n} & {_num(r.mean)} $\\pm$ {_num(r.sd)} & {_num(r.median)} "
                         f"[{_num(r.q1)}, {_num(r.q3)}] & {delta} & {p} & {_tex(str(r.verdict))} \\\\")
        lines += [r"\bottomrule", r"\end{tabular}", ""]
        out.append("\n".join(lines))
    return "\n".join(out)
