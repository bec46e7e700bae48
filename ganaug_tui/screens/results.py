"""Results: per experiment and test set, the paper's box-plots and the paired-statistics table of the engine's
analysis module (``engine.analysis``), exactly as ``ganaug results`` computes and formats them.

The screen computes nothing: a thread worker calls ``engine.analysis.analyse`` for the chosen experiment and test
set (one test set's numbers do not depend on the others': Holm families are per test set and group, and the
bootstrap draws depend only on the number of pairs), the plot is ``engine.analysis.plots.draw_terminal`` on the
widget's plotext figure, and the cells are ``engine.analysis.tables.display_rows``. Results are kept per
(experiment, test set) until the store's finished runs change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Select, Static
from textual_plotext import PlotextPlot

from engine import store as st
from engine.errors import InputError
from ganaug_tui import actions
from ganaug_tui.messages import Loaded
from ganaug_tui.reads import Snapshot, display_path, open_reader
from ganaug_tui.screens.base import GanaugScreen
from ganaug_tui.screens.modals import ExportDialog
from ganaug_tui.widgets.virtual_table import Column, VirtualTable

if TYPE_CHECKING:
    from engine.analysis import Results

# Which table columns an 80-column terminal keeps first (lower = dropped last).
COLUMN_PRIORITY = {"label": 0, "verdict": 1, "delta": 2, "p": 3, "median": 4, "n": 5, "pairs": 6, "mean": 7,
                   "group": 8, "test": 9, "range": 10}
VIEWS = ("both", "table", "plot")


@dataclass(frozen=True)
class Analysed:
    """One worker's answer: the analysis of ``experiment`` on ``test_set`` (``results`` None: ``error`` says why)."""

    experiment: str
    test_set: str | None
    results: Results | None
    error: str | None = None


def analyse_one(workspace: Path, experiment: str, test_set: str | None) -> Analysed:
    """``engine.analysis.analyse`` on one test set (the experiment's first when None or no longer one of its)."""
    from engine.analysis import analyse
    from engine.analysis.load import stored_experiment

    try:
        with open_reader(workspace) as store:
            exp = stored_experiment(store, experiment)
            ts = test_set if test_set in exp.test_sets else exp.test_sets[0]
            return Analysed(experiment, ts, analyse(store, experiment, [ts]))
    except InputError as exc:
        return Analysed(experiment, test_set, None, str(exc))


def list_experiments(workspace: Path) -> list[tuple[str, bool]]:
    """The store's experiments, each with whether it has a stored spec (only those can be analysed)."""
    with open_reader(workspace) as store:
        return [(e["name"], bool(e["spec"])) for e in store.experiments()]


class ResultsTable(VirtualTable[dict[str, str]]):
    """The results rows (formatted cells, keyed by configuration); the verdict coloured by the theme."""

    COMPONENT_CLASSES = {"results-table--better", "results-table--worse", "results-table--no-evidence",
                         "results-table--baseline"}
    DEFAULT_CSS = """
    ResultsTable > .results-table--better { color: $success; text-style: bold; }
    ResultsTable > .results-table--worse { color: $error; text-style: bold; }
    ResultsTable > .results-table--no-evidence { color: $text-muted; }
    ResultsTable > .results-table--baseline { text-style: italic; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__((), key_of=lambda r: r["label"], cell=lambda r, k: r.get(k, ""), styled="verdict",
                         style_of=lambda r: "results-table--" + r["verdict"].replace(" ", "-"),
                         empty_text="no results to show", id=id)

    def show(self, rows: list[dict[str, str]]) -> None:
        from engine.analysis.tables import DISPLAY_COLUMNS

        widths = {k: max([len(title), *(len(r[k]) for r in rows)]) for k, title, _ in DISPLAY_COLUMNS}
        self.columns = tuple(Column(k, title, widths[k], COLUMN_PRIORITY[k], flex=1 if k == "label" else 0,
                                    right=right) for k, title, right in DISPLAY_COLUMNS)
        self.styles.height = len(rows) + 1  # what it needs (up to its max-height): the box-plots get the rest
        self.set_rows(rows)


class ResultsScreen(GanaugScreen):
    AUTO_FOCUS = "ResultsTable"  # arrows move through the rows at once (the table takes neither 1-5 nor x/s/g)
    MODE = "results"
    BINDINGS = [
        Binding("x", "cycle('experiment', 1)", "Experiment", id="results.experiment",
                tooltip="Show the next experiment (shift+x: the previous one)"),
        Binding("s", "cycle('test-set', 1)", "Test set", id="results.test_set",
                tooltip="Show the next test set (shift+s: the previous one)"),
        Binding("g", "cycle('group', 1)", "Group", id="results.group",
                tooltip="Show one group and its baseline, then the next; all groups after the last (shift+g: back)"),
        Binding("X", "cycle('experiment', -1)", "Previous experiment", id="results.experiment_back", show=False),
        Binding("S", "cycle('test-set', -1)", "Previous test set", id="results.test_set_back", show=False),
        Binding("G", "cycle('group', -1)", "Previous group", id="results.group_back", show=False),
        Binding("v", "view", "View", id="results.view", tooltip="Box-plots and table, the table only, the plots only"),
        Binding("e", "export", "Export", id="results.export",
                tooltip="Write the table (CSV) and box-plots (PNG, SVG) into a folder you confirm"),
        Binding("f", "pickers", "Pick", id="results.pick", show=False,
                tooltip="Pick experiment, test set and group from lists"),
        Binding("escape", "focus_table", "Back to the table", id="results.table", show=False),
    ]
    DEFAULT_CSS = """
    ResultsScreen #bar { height: 1; padding: 0 1; }
    ResultsScreen #bar Select { width: 1fr; max-width: 32; margin-right: 1; }
    ResultsScreen #state { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    ResultsScreen #state.-error { color: $error; }
    ResultsScreen #plot { height: 1fr; min-height: 8; }
    ResultsScreen #table { height: 1fr; max-height: 60%; min-height: 3; }
    ResultsScreen #detail { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[str, str | None], Analysed] = {}
        self._shown: Analysed | None = None
        self._finished: tuple[int, float] | None = None  # what the cache was computed from (see snapshot_changed)
        self._view = 0
        self._values: dict[str, list[str]] = {"experiment": [], "test-set": [], "group": []}  # each picker's choices
        self._pending: tuple[str, str | None] | None = None  # the view last asked for
        self._cramped = False  # the plots left out of the "both" view for want of rows (see _check_room)

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bar"):
            yield Select([], prompt="no experiment yet", id="experiment", compact=True, type_to_search=False)
            yield Select([], prompt="test set", id="test-set", compact=True, type_to_search=False)
            yield Select([], prompt="all groups", id="group", compact=True, type_to_search=False)
        yield Static("reading the experiments…", id="state", markup=False)
        yield PlotextPlot(id="plot")
        yield ResultsTable(id="table")
        yield Static("", id="detail", markup=False)

    def on_mount(self) -> None:
        super().on_mount()
        self._list_experiments()

    def on_screen_resume(self) -> None:
        self._list_experiments()

    # ------------------------------------------------------------------ workers
    @work(thread=True, exclusive=True, group="results-list")
    def _list_experiments(self) -> None:
        try:
            self.post_message(Loaded("results-experiments", list_experiments(self.gapp.workspace)))
        except InputError as exc:
            self.post_message(Loaded("results-experiments", [], error=str(exc)))

    @work(thread=True, exclusive=True, group="results-analysis")
    def _analyse(self, experiment: str, test_set: str | None) -> None:
        answer = analyse_one(self.gapp.workspace, experiment, test_set)
        self.post_message(Loaded("results-analysis", (test_set, answer)))

    def on_loaded(self, message: Loaded) -> None:
        if message.topic == "results-experiments":
            self._experiments_listed(message.data, message.error)
        elif message.topic == "results-analysis":
            asked, answer = message.data
            self._cache[(answer.experiment, asked)] = self._cache[(answer.experiment, answer.test_set)] = answer
            if self._pending == (answer.experiment, asked):  # not an answer the user has moved on from
                self._show(answer)

    # ------------------------------------------------------------------ choosing
    def _experiments_listed(self, experiments: list[tuple[str, bool]], error: str | None) -> None:
        select = self.query_one("#experiment", Select)
        names = self._values["experiment"] = [name for name, _ in experiments]
        keep = self._value("#experiment")
        with self.prevent(Select.Changed):
            select.set_options([(name if spec else f"{name} (no spec)", name) for name, spec in experiments])
            if keep in names:
                select.value = keep
            elif names:  # the first that can be analysed
                select.value = next((name for name, spec in experiments if spec), names[0])
        if error or not names:
            self._state(error or "no experiment in this store yet: enqueue one from the Builder (1) or with "
                        "`ganaug run EXPERIMENT`", error=bool(error))
            self._clear()
            return
        self._request()

    def _request(self) -> None:
        """Show the chosen experiment and test set: from the cache, else computed in a worker."""
        experiment = self._value("#experiment")
        if experiment is None:
            self._state("pick an experiment (x)")
            self._clear()
            return
        test_set = self._value("#test-set") if self._shown and self._shown.experiment == experiment else None
        self._pending = (experiment, test_set)
        if (cached := self._cache.get((experiment, test_set))) is not None:
            self._show(cached)
            return
        self._state(f"computing {experiment}" + (f" · {test_set}" if test_set else "")
                    + ": paired statistics against each group's baseline…")
        self._analyse(experiment, test_set)

    def _value(self, selector: str) -> str | None:
        value = self.query_one(selector, Select).value
        return value if isinstance(value, str) else None

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "group":
            if self._shown is not None:
                self._show(self._shown)
        else:
            self._request()

    def action_cycle(self, which: str, step: int) -> None:
        select = self.query_one(f"#{which}", Select)
        values: list[str | None] = list(self._values[which])
        if which == "group":
            values.append(None)  # all groups: after the last, before the first
        if not values or (len(values) == 1 and which != "group"):
            return
        current = self._value(f"#{which}")
        at = values.index(current) if current in values else (-1 if step > 0 else len(values))
        new = values[(at + step) % len(values)]
        if new is None:
            select.clear()
        else:
            select.value = new

    # ------------------------------------------------------------------ showing
    def _state(self, text: str, error: bool = False) -> None:
        state = self.query_one("#state", Static)
        state.update(text)
        state.set_class(error, "-error")

    def _clear(self) -> None:
        self._shown = None
        self.query_one(ResultsTable).set_rows([])
        self.query_one("#plot").display = False
        self.query_one("#detail", Static).update("")

    def _show(self, answer: Analysed) -> None:
        if answer.results is None:
            self._state(answer.error or "cannot analyse this experiment", error=True)
            self._clear()
            self._fill("#test-set", [], None)  # nothing of another experiment's stays on show
            self._fill("#group", [], None)
            return
        res = answer.results
        ts = answer.test_set
        self._fill("#test-set", list(res.experiment.test_sets), ts)
        groups = [g for g, _ in res.experiment.groups]
        self._fill("#group", groups, self._value("#group") if self._value("#group") in groups else None)
        self._shown = answer
        group = self._value("#group")
        from engine.analysis.tables import display_rows

        rows = display_rows(res.table, ts)
        if group is not None:
            keep = {res.experiment.baseline_of(group), *(c.label for c in dict(res.experiment.groups)[group])}
            rows = [r for r in rows if r["label"] in keep]
        self.query_one(ResultsTable).show(rows)
        self._draw_plot(res, ts, group)
        # 4 rows per box at most, as `ganaug results --plot` draws them: a few boxes do not fill a tall terminal
        self.query_one("#plot").styles.max_height = 4 * len(rows) + 5
        self._state(f"{res.aucs['run_id'].nunique()} runs scored · {res.experiment.replicates} replicates · ΔAUC "
                    f"paired with the group's baseline, 95 % CI of {res.n_boot:,} bootstrap resamples · p "
                    f"Holm-adjusted per group · {len(res.missing)} missing")
        self._apply_view()
        self._show_detail()

    def _fill(self, selector: str, values: list[str], value: str | None) -> None:
        select = self.query_one(selector, Select)
        with self.prevent(Select.Changed):
            if self._values[selector[1:]] != values:
                self._values[selector[1:]] = values
                select.set_options([(v, v) for v in values])
            if value is None:
                select.clear()
            elif select.value != value:
                select.value = value

    def _draw_plot(self, res: Results, test_set: str, group: str | None) -> None:
        from engine.analysis.plots import draw_terminal

        exp = res.experiment
        if group is not None:  # the group's own rows (its baseline is one of them, or the experiment's first)
            base = exp.baseline_of(group)
            confs = dict(exp.groups)[group]
            own = [(group, confs)] if any(c.label == base for c in confs) else \
                [(exp.group_of(base), tuple(c for c in exp.configurations if c.label == base)), (group, confs)]
            exp = replace(exp, groups=tuple(own))
        plot = self.query_one("#plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        draw_terminal(plt, res.aucs, exp, test_set)
        plot.refresh()

    def _apply_view(self) -> None:
        view = VIEWS[self._view]
        cramped, self._cramped = self._cramped, False
        self.query_one("#plot").display = self._shown is not None and view in ("both", "plot")
        self.query_one(ResultsTable).display = view in ("both", "table")
        if cramped:
            self._show_detail()
        if view == "both":
            self.call_after_refresh(self._check_room)

    def _check_room(self) -> None:
        """Beside the table on a short terminal the boxes would overlap (2 rows each, plus title, frame and x axis):
        the table stays alone and the detail line says how to see the plots."""
        plot = self.query_one("#plot")
        if plot.display and plot.size.height < 2 * len(self.query_one(ResultsTable).rows) + 4:
            plot.display = False
            self._cramped = True
            self._show_detail()

    def on_resize(self) -> None:
        if self._shown is not None:
            self._apply_view()

    def on_virtual_table_highlighted(self, event: VirtualTable.Highlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        """The highlighted configuration's missing replicates and why (failed, unfinished, no metric)."""
        row = self.query_one(ResultsTable).selected
        detail = ""
        if row is not None and self._shown is not None and self._shown.results is not None:
            missing = self._shown.results.missing
            mine = missing[(missing["label"] == row["label"])
                           & (missing["test_set"].isna() | (missing["test_set"] == self._shown.test_set))]
            detail = f"{row['label']}: " + ("; ".join(f"replicate {m.replicate}: {m.reason}"
                                                      for m in mine.itertuples()) if len(mine) else
                                            "every replicate scored")
        if self._cramped:
            detail = "too short for the box-plots beside the table: v shows them alone" + (f" · {detail}" if detail
                                                                                          else "")
        self.query_one("#detail", Static).update(detail)

    def snapshot_changed(self, snap: Snapshot) -> None:
        """Runs that finished since the results were computed change them: compute the view again."""
        done = [r.ended or 0.0 for r in snap.runs if r.status == st.SUCCEEDED and r.kind == "classify"]
        finished = (len(done), max(done, default=0.0))
        if self._finished is not None and finished != self._finished:
            self._cache.clear()
            if self._shown is not None:
                self._request()
        self._finished = finished

    # ------------------------------------------------------------------ commands
    def action_view(self) -> None:
        self._view = (self._view + 1) % len(VIEWS)
        self._apply_view()
        self.notify(f"showing {'box-plots and table' if VIEWS[self._view] == 'both' else VIEWS[self._view]}",
                    timeout=2)

    def action_export(self) -> None:
        experiment = self._value("#experiment")
        if experiment is None or self._shown is None:
            self.notify("nothing to export: pick an experiment that can be analysed", severity="warning")
            return
        def export(out: Path | None) -> None:
            if out is not None:
                self.notify(f"exporting {experiment} to {out}…", timeout=3)
                self.gapp.act(actions.export_results, experiment, out)

        self.app.push_screen(ExportDialog(experiment, self._default_folder(experiment)), export)

    def _default_folder(self, experiment: str) -> Path:
        """``<workspace>/results/<experiment>``, where ``ganaug demo`` writes its results; for a read-only store (an
        offline copy) the same under the working directory."""
        base = self.gapp.workspace if not self.gapp.read_only else Path.cwd()
        return Path(display_path(base / "results" / experiment))

    def action_pickers(self) -> None:
        self.query_one("#experiment", Select).focus()

    def action_focus_table(self) -> None:
        self.query_one(ResultsTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "export":
            return self._shown is not None or None
        return True
