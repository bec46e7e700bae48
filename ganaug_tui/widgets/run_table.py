"""The runs table of the Queue screen: a virtual table of runs, its state column coloured by the theme."""

from __future__ import annotations

from textual.binding import Binding

from engine import store as st
from ganaug_tui.reads import PhaseRates, fmt_duration, progress_fraction
from ganaug_tui.widgets.virtual_table import Column, VirtualTable

SHORT_STATUS = {st.DEPENDENCY_FAILED: "dep-failed"}
COLUMNS = (
    Column("status", "state", 11, 0),
    Column("progress", "prog", 4, 1, right=True),
    Column("label", "label", 12, 2, flex=3),
    Column("eta", "eta", 6, 3, right=True),
    Column("kind", "kind", 9, 4),
    Column("slot", "slot", 5, 5),
    Column("executor", "exec", 5, 11),  # local (engine slots, foreground) or slurm (a cluster job) ...
    Column("job_id", "job", 8, 12),  # ... and then its job id
    Column("attempt", "try", 3, 6, right=True),
    Column("experiment", "experiment", 10, 7, flex=2),
    Column("elapsed", "elapsed", 7, 8, right=True),
    Column("priority", "pri", 3, 9, right=True),
    Column("id", "run", 20, 10, flex=4),
)


class RunTable(VirtualTable[st.Run]):
    """One row per run, keyed by run id; ``now`` (the snapshot's time) drives elapsed time and ETA."""

    # Enter is what anyone tries on a row: the footer's room at 80 columns goes to the commands.
    BINDINGS = [Binding("enter", "choose", "Open", id="runs.open", show=False,
                        tooltip="Open the run on the Live screen")]
    COMPONENT_CLASSES = {*(f"run-table--{s}" for s in st.STATES)}
    DEFAULT_CSS = """
    RunTable > .run-table--queued { color: $secondary; }
    RunTable > .run-table--blocked { color: $text-muted; }
    RunTable > .run-table--running { color: $warning; text-style: bold; }
    RunTable > .run-table--paused { color: $accent; }
    RunTable > .run-table--succeeded { color: $success; }
    RunTable > .run-table--failed { color: $error; text-style: bold; }
    RunTable > .run-table--cancelled { color: $text-muted; }
    RunTable > .run-table--interrupted { color: $error; }
    RunTable > .run-table--dependency-failed { color: $error 70%; }
    """

    def __init__(self, rates: PhaseRates, *, empty_text: str = "no runs", id: str | None = None) -> None:
        super().__init__(COLUMNS, key_of=lambda r: r.id, cell=self.cell_text, styled="status",
                         style_of=lambda r: f"run-table--{r.status}", empty_text=empty_text, id=id)
        self.now = 0.0
        self.rates = rates

    def set_runs(self, runs: list[st.Run], now: float) -> None:
        self.now = now
        self.set_rows(runs)

    def cell_text(self, run: st.Run, key: str) -> str:
        if key == "status":
            return SHORT_STATUS.get(run.status, run.status)
        if key == "progress":
            frac = progress_fraction(run)
            return f"{100 * frac:.0f}%" if frac is not None and run.status in st.ACTIVE else ""
        if key == "eta":
            return fmt_duration(self.rates.eta(run, self.now))
        if key == "elapsed":
            return fmt_duration(((run.ended or self.now) - run.started) if run.started else None)
        if key == "slot":
            return "fg" if run.slot == "foreground" else (run.slot or "")
        if key == "attempt":
            return str(run.attempt)
        if key == "priority":
            return str(run.priority) if run.priority else ""
        if key == "job_id":
            return run.job_id or ""
        return str(getattr(run, key) or "")

    @property
    def selected_run(self) -> st.Run | None:
        return self.selected
