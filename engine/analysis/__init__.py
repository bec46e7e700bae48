"""Results of an experiment: AUCs read from the store (``load``), descriptive statistics and paired comparisons
with each group's baseline (``stats``), the results table and its formats (``tables``), and the paper's box-plots
in the terminal and as PNG/SVG (``plots``). :func:`analyse` runs the whole chain.

Reads only the store (``experiments.spec``, ``run_labels``, metrics ``auc/<test set>``), so it works on a copied
workspace with no GPU and no toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from engine.analysis.load import ExperimentData, check_test_sets, load_aucs, stored_experiment
from engine.analysis.stats import N_BOOT, compare, describe
from engine.analysis.tables import results_table
from engine.config import Experiment

if TYPE_CHECKING:
    from engine.store import Store

__all__ = ["Results", "analyse", "analyse_data", "write_files"]


@dataclass(frozen=True)
class Results:
    """Everything ``ganaug results`` shows: the experiment, its AUCs and missing replicates (``load``), the
    per-configuration statistics (``stats.describe``), the comparisons (``stats.compare``) and both joined
    (``tables.results_table``), for ``test_sets`` in the experiment's order."""

    experiment: Experiment
    test_sets: list[str]
    aucs: pd.DataFrame
    missing: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    table: pd.DataFrame
    n_boot: int
    seed: int


def analyse(store: Store, name: str, test_sets: list[str] | None = None, *, n_boot: int = N_BOOT,
            seed: int = 0) -> Results:
    """Load the stored experiment ``name`` and compute its results (InputError: unknown experiment/test set)."""
    experiment = stored_experiment(store, name)
    sets = check_test_sets(experiment, test_sets)
    return analyse_data(load_aucs(store, experiment, sets), sets, n_boot=n_boot, seed=seed)


def analyse_data(data: ExperimentData, test_sets: list[str], *, n_boot: int = N_BOOT, seed: int = 0) -> Results:
    """The statistics of already loaded AUCs (e.g. for the TUI, which loads in a worker thread)."""
    exp = data.experiment
    summary = describe(data.aucs, exp, test_sets)
    comparisons = compare(data.aucs, exp, test_sets, n_boot=n_boot, seed=seed)
    baselines = {g: exp.baseline_of(g) for g, _ in exp.groups}
    table = results_table(exp.name, summary, comparisons, baselines)
    return Results(exp, test_sets, data.aucs, data.missing, summary, comparisons, table, n_boot, seed)


def write_files(res: Results, out: Path) -> list[Path]:
    """``<experiment>.csv``, ``<experiment>.png/.svg`` (all test sets) and ``<experiment>-<test set>.png/.svg``."""
    from engine.analysis import plots, tables
    from engine.errors import InputError
    from engine.fsutil import atomic_write_text

    name = res.experiment.name
    try:
        atomic_write_text(out / f"{name}.csv", tables.to_csv(res.table))
        written = [out / f"{name}.csv"]
        written += plots.save_figure(plots.figure(res.aucs, res.experiment, res.test_sets), out / name)
        for ts in res.test_sets:
            written += plots.save_figure(plots.figure(res.aucs, res.experiment, [ts]), out / f"{name}-{ts}")
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    return written
