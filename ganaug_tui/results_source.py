"""Where the Results screen gets its numbers: one adapter, so the screen never computes a statistic itself.

``ResultsSource`` is what the screen asks for: the experiments, the test sets of one, and for a test set the
table (and, when the source has one, the terminal box-plot) to show. ``RunAucs`` is the source this build
ships: every classify run of the experiment with the AUC its ``result.json`` reports, one row per run and
replicate, nothing aggregated. The analysis module of the experiment grid (paired statistics against each
group's baseline, verdicts, the paper's box-plots) plugs in as another ``ResultsSource``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine import store as st
from ganaug_tui.reads import open_reader, paper_order, read_json

NO_EXPERIMENT = "(runs outside any experiment)"


@dataclass
class ResultsView:
    """What the screen draws for one experiment and test set: ``columns`` (key, title, right-aligned) and
    ``rows`` of already formatted cells; ``plot`` is a terminal plot as text, when the source draws one."""

    experiment: str
    test_set: str | None
    columns: list[tuple[str, str, bool]]
    rows: list[dict[str, str]]
    notes: list[str] = field(default_factory=list)
    plot: str | None = None


class ResultsSource(Protocol):
    """The Results screen's only view of results (all methods run in thread workers)."""

    def experiments(self) -> list[str]: ...

    def test_sets(self, experiment: str) -> list[str]: ...

    def view(self, experiment: str, test_set: str | None) -> ResultsView: ...


class RunAucs:
    """Per-run AUCs exactly as the classify runs wrote them; missing and unfinished replicates are listed as such."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace

    def experiments(self) -> list[str]:
        with open_reader(self.workspace) as store:
            names = [e["name"] for e in store.experiments()]
            loose = any(r.experiment is None for r in store.list_runs(kind="classify"))
        return names + ([NO_EXPERIMENT] if loose else [])

    def _runs(self, experiment: str) -> list[st.Run]:
        with open_reader(self.workspace) as store:
            if experiment == NO_EXPERIMENT:
                return [r for r in store.list_runs(kind="classify") if r.experiment is None]
            return store.list_runs(kind="classify", experiment=experiment)

    def _results(self, runs: list[st.Run]) -> dict[str, dict]:
        out = {}
        for run in runs:
            if run.status == st.SUCCEEDED and (doc := read_json(self.workspace / run.id / "result.json")):
                out[run.id] = doc
        return out

    def test_sets(self, experiment: str) -> list[str]:
        names: dict[str, None] = {}
        for doc in self._results(self._runs(experiment)).values():
            for name in doc.get("auc") or {}:
                names[name] = None
        return list(paper_order(names))

    def view(self, experiment: str, test_set: str | None) -> ResultsView:
        runs = self._runs(experiment)
        results = self._results(runs)
        columns = [("label", "configuration", False), ("replicate", "rep", True), ("status", "state", False),
                   ("auc", f"AUC {test_set}" if test_set else "AUC", True), ("val_auc", "val AUC", True),
                   ("epochs", "best/epochs", True), ("run", "run", False)]
        rows = []
        for run in sorted(runs, key=lambda r: (r.label or "", _replicate(r), r.seq)):
            doc = results.get(run.id, {})
            auc = (doc.get("auc") or {}).get(test_set) if test_set else None
            rows.append({
                "label": run.label or "", "replicate": str(_replicate(run)), "status": run.status,
                "auc": f"{auc:.4f}" if isinstance(auc, int | float) else "",
                "val_auc": f"{doc['val_auc']:.4f}" if isinstance(doc.get("val_auc"), int | float) else "",
                "epochs": f"{doc.get('best_epoch')}/{doc.get('epochs')}" if doc else "",
                "run": run.id,
            })
        done = sum(1 for r in runs if r.id in results)
        notes = [f"{len(runs)} classify runs, {done} with results: the AUCs each run wrote (result.json), "
                 "one row per replicate, nothing aggregated. Paired statistics against each group's baseline "
                 "and the paper's box-plots come from the analysis module of the experiment grid."]
        return ResultsView(experiment, test_set, columns, rows, notes)


def _replicate(run: st.Run) -> int:
    value = run.config.get("replicate", 0)
    return value if isinstance(value, int) else 0
