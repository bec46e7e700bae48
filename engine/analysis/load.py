"""Read an experiment's results from the store only: the stored spec, and per (test set, label, replicate) the AUC
that the classify run recorded as metric ``auc/<test set>`` (step 0). No ``result.json`` is parsed, so a
10,000-run experiment loads with two queries; what is missing or failed is listed, never silently skipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from engine.config import Experiment
from engine.errors import InputError
from engine.store import SUCCEEDED

if TYPE_CHECKING:
    from engine.store import Store

AUC_PREFIX = "auc/"
AUC_COLUMNS = ["test_set", "group", "label", "replicate", "run_id", "auc"]
MISSING_COLUMNS = ["label", "replicate", "test_set", "run_id", "status", "reason"]


@dataclass(frozen=True)
class ExperimentData:
    """``aucs``: one row per scored (test set, label, replicate), columns :data:`AUC_COLUMNS`, in the experiment's
    order. ``missing``: each expected replicate without an AUC, columns :data:`MISSING_COLUMNS` (``test_set`` None
    when the whole run is absent or did not succeed)."""

    experiment: Experiment
    aucs: pd.DataFrame
    missing: pd.DataFrame


def stored_experiment(store: Store, name: str) -> Experiment:
    """The experiment as it was submitted (``experiments.spec``): works on a copied workspace without the toml."""
    spec = store.experiment_spec(name)
    if spec is None:
        known = ", ".join(e["name"] for e in store.experiments()) or "none"
        raise InputError(f"unknown experiment {name!r} in workspace {store.workspace} (known: {known})")
    if not spec:
        raise InputError(f"experiment {name!r} in workspace {store.workspace} has no stored spec (it was not "
                         "submitted with `ganaug run EXPERIMENT`)")
    return Experiment.from_spec(spec)


def check_test_sets(experiment: Experiment, test_sets: list[str] | None) -> list[str]:
    """The requested test sets in the experiment's order (all when None); an unknown one is an InputError."""
    if not test_sets:
        return list(experiment.test_sets)
    for t in test_sets:
        if t not in experiment.test_sets:
            raise InputError(f"--test-set {t!r}: experiment {experiment.name!r} scores "
                             f"{', '.join(experiment.test_sets)}")
    return [t for t in experiment.test_sets if t in test_sets]


def load_aucs(store: Store, experiment: Experiment, test_sets: list[str] | None = None) -> ExperimentData:
    """AUCs of every labelled classify run of ``experiment``; one run per (label, replicate): the latest that
    succeeded, else the latest (whose state is then reported as missing)."""
    sets = check_test_sets(experiment, test_sets)
    check_protocols(store, experiment)
    labels = experiment.labels
    group = {c.label: g for g, confs in experiment.groups for c in confs}
    runs = store.labelled_runs(experiment.name)
    runs = runs[runs["label"].isin(labels)]
    runs = runs.assign(ok=runs["status"] == SUCCEEDED, replicate=runs["replicate"].astype(int))
    runs = runs.sort_values(["ok", "seq"]).drop_duplicates(["label", "replicate"], keep="last")
    replicates = sorted(set(range(experiment.replicates)) | set(runs["replicate"]))

    metrics = store.labelled_metrics(experiment.name, prefix=AUC_PREFIX)
    metrics = metrics.assign(test_set=metrics["name"].str.slice(len(AUC_PREFIX)), auc=metrics["value"].astype(float))
    metrics = metrics[metrics["test_set"].isin(sets) & metrics["auc"].notna()]
    scored = runs[runs["ok"]][["label", "replicate", "run_id"]].merge(metrics[["run_id", "test_set", "auc"]],
                                                                     on="run_id")
    aucs = _ordered(scored.assign(group=scored["label"].map(group))[AUC_COLUMNS], sets, labels)

    missing: list[tuple[object, ...]] = []
    by_key = {(r.label, r.replicate): r for r in runs.itertuples()}
    have = set(zip(aucs["label"].tolist(), aucs["replicate"].tolist(), aucs["test_set"].tolist(), strict=True))
    for label in labels:
        for k in replicates:
            run = by_key.get((label, k))
            if run is None:
                missing.append((label, k, None, None, None, "no run in the store"))
            elif not run.ok:
                why = f"run {run.status}" + (f": {run.exit_reason}" if isinstance(run.exit_reason, str) else "")
                missing.append((label, k, None, run.run_id, run.status, why))
            else:
                missing += [(label, k, t, run.run_id, run.status, f"no {AUC_PREFIX}{t} metric")
                            for t in sets if (label, k, t) not in have]
    return ExperimentData(experiment, aucs, pd.DataFrame(missing, columns=MISSING_COLUMNS))


def check_protocols(store: Store, experiment: Experiment) -> None:
    """InputError when two succeeded runs that a group's comparisons pair (a configuration and the group's
    baseline, or two runs of one configuration) were trained under different protocols
    (``engine.train.protocol_diff``): their difference would be the protocol's, not the synthetic images'."""
    import json

    from engine.train.config import EXECUTION_KEYS, VARIABLE_KEYS, protocol_diff

    rows = store.labelled_protocols(experiment.name, VARIABLE_KEYS | EXECUTION_KEYS, status=[SUCCEEDED])
    by_label: dict[str, list[tuple[str, str]]] = {}
    for label, text, run_id, _n in rows:
        by_label.setdefault(label, []).append((text, run_id))
    for gname, confs in experiment.groups:
        compared = [experiment.baseline_of(gname), *(c.label for c in confs)]
        seen = [(label, text, run_id) for label in dict.fromkeys(compared) for text, run_id in by_label.get(label, [])]
        for label, text, run_id in seen[1:]:
            diff = text != seen[0][1] and protocol_diff(json.loads(seen[0][1]), json.loads(text))
            if diff:
                raise InputError(
                    f"experiment {experiment.name!r}, group {gname}: run {run_id} ({label}) and run {seen[0][2]} "
                    f"({seen[0][0]}) were trained under different protocols ({', '.join(diff[:4])}); comparing them "
                    "would measure the protocol, not the synthetic images (remove the runs of the other protocol, "
                    "or submit it as another experiment)")


def _ordered(df: pd.DataFrame, test_sets: list[str], labels: list[str]) -> pd.DataFrame:
    """Sort by the experiment's test-set and label order (then replicate), not alphabetically."""
    ts = {t: i for i, t in enumerate(test_sets)}
    lab = {x: i for i, x in enumerate(labels)}
    key = df["test_set"].map(ts) * (len(labels) + 1) + df["label"].map(lab)
    return df.assign(_k=key).sort_values(["_k", "replicate"], kind="stable").drop(columns="_k").reset_index(drop=True)
