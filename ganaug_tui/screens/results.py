"""Results: per experiment and test set, the numbers the engine's results source gives — the screen formats,
it never computes (see ``ganaug_tui.results_source``)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Select, Static

from ganaug_tui.messages import Loaded
from ganaug_tui.results_source import ResultsView
from ganaug_tui.screens.base import GanaugScreen
from ganaug_tui.widgets.virtual_table import Column, VirtualTable


class ResultsScreen(GanaugScreen):
    AUTO_FOCUS = ""  # keys 1-5 and the screen's own keys work on arrival; tab or its key reaches a picker
    MODE = "results"
    BINDINGS = [
        Binding("x", "choose('experiment')", "Experiment", id="results.experiment",
                tooltip="Pick the experiment"),
        Binding("s", "choose('test-set')", "Test set", id="results.test_set", tooltip="Pick the test set"),
        Binding("escape", "focus_table", "Back to the table", id="results.table", show=False),
    ]
    DEFAULT_CSS = """
    ResultsScreen #bar { height: 1; padding: 0 1; }
    ResultsScreen #bar Select { width: 1fr; max-width: 40; margin-right: 1; }
    ResultsScreen #notes { height: auto; padding: 0 1; color: $text-muted; }
    ResultsScreen #plot { height: auto; max-height: 50%; padding: 0 1; }
    """

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bar"):
            yield Select([], prompt="no experiment yet", id="experiment", compact=True, type_to_search=False)
            yield Select([], prompt="test set", id="test-set", compact=True, type_to_search=False)
        yield Static("", id="notes", markup=False)
        yield Static("", id="plot", markup=False)
        yield VirtualTable((), key_of=lambda r: r["run"], cell=lambda r, k: r.get(k, ""), id="table",
                           empty_text="no classify runs in this experiment")

    def on_mount(self) -> None:
        self.query_one("#plot").display = False
        self.source = self.gapp.results_source(self.gapp.workspace)
        self._list_experiments()
        super().on_mount()

    def on_screen_resume(self) -> None:
        self._list_experiments()

    @work(thread=True, exclusive=True, group="results-list")
    def _list_experiments(self) -> None:
        self.post_message(Loaded("results-experiments", self.source.experiments()))

    @work(thread=True, exclusive=True, group="results-sets")
    def _list_test_sets(self, experiment: str) -> None:
        self.post_message(Loaded("results-test-sets", (experiment, self.source.test_sets(experiment))))

    @work(thread=True, exclusive=True, group="results-view")
    def _load_view(self, experiment: str, test_set: str | None) -> None:
        self.post_message(Loaded("results-view", self.source.view(experiment, test_set)))

    def on_loaded(self, message: Loaded) -> None:
        if message.topic == "results-experiments":
            self._fill("#experiment", message.data)
        elif message.topic == "results-test-sets":
            experiment, sets = message.data
            if experiment == self._value("#experiment"):
                self._fill("#test-set", sets)
                self._reload()
        elif message.topic == "results-view":
            self._show(message.data)

    def _fill(self, selector: str, values: list[str]) -> None:
        select = self.query_one(selector, Select)
        keep = select.value
        with self.prevent(Select.Changed):
            select.set_options([(v, v) for v in values])
            if keep in values:
                select.value = keep
            elif values:
                select.value = values[0]
        if selector == "#experiment" and (exp := self._value("#experiment")) is not None:
            self._list_test_sets(exp)

    def _value(self, selector: str) -> str | None:
        value = self.query_one(selector, Select).value
        return value if isinstance(value, str) else None

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "experiment":
            if (exp := self._value("#experiment")) is not None:
                self._list_test_sets(exp)
            else:  # the blank choice: nothing shown rather than the last experiment under no name
                self.query_one("#notes", Static).update("pick an experiment (x)")
                self.query_one("#plot").display = False
                self.query_one(VirtualTable).set_rows([])
        else:
            self._reload()

    def _reload(self) -> None:
        if (exp := self._value("#experiment")) is not None:
            self._load_view(exp, self._value("#test-set"))

    def _show(self, view: ResultsView) -> None:
        if view.experiment != self._value("#experiment"):
            return
        self.query_one("#notes", Static).update("\n".join(view.notes))
        plot = self.query_one("#plot", Static)
        plot.display = view.plot is not None
        plot.update(view.plot or "")
        table = self.query_one(VirtualTable)
        widths = {k: max([len(title), *(len(r.get(k, "")) for r in view.rows[:200])]) for k, title, _ in view.columns}
        table.columns = tuple(Column(k, title, min(widths[k], 40), i, flex=1 if k == "label" else 0, right=right)
                              for i, (k, title, right) in enumerate(view.columns))
        table.set_rows(view.rows)

    def action_choose(self, which: str) -> None:
        self.query_one(f"#{which}", Select).focus()

    def action_focus_table(self) -> None:
        self.query_one(VirtualTable).focus()
