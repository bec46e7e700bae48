"""Queue: every run with its state, progress, ETA, slot, executor and job, attempt, experiment and label;
filters; the commands on a run (cancel, retry, pause/resume, priority), on a whole experiment or label (the
engine's housekeeping, like ``ganaug runs ... --experiment E [--label L]``), on the queue, and starting or
stopping the engine."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Select, Static

from engine import store as st
from engine.errors import InputError
from ganaug_tui import actions, reads
from ganaug_tui.messages import ActionDone, Loaded
from ganaug_tui.reads import Snapshot, fmt_duration
from ganaug_tui.screens.base import GanaugScreen
from ganaug_tui.screens.modals import Confirm, ExperimentActions
from ganaug_tui.widgets.run_table import RunTable

STATE_GROUPS = {"active": st.ACTIVE, "waiting": (st.QUEUED, st.BLOCKED),
                "ended badly": (*st.BAD_ENDS, st.INTERRUPTED)}
CANCELLABLE = (st.QUEUED, st.BLOCKED, st.INTERRUPTED, st.RUNNING, st.PAUSED)
PAUSABLE = (st.QUEUED, st.BLOCKED, st.RUNNING, st.PAUSED)


class QueueScreen(GanaugScreen):
    MODE = "queue"
    BINDINGS = [
        Binding("c", "cancel", "Cancel", id="run.cancel", tooltip="Cancel the selected run (asks first)"),
        Binding("t", "retry", "Retry", id="run.retry", tooltip="Queue the selected run again (attempt + 1)"),
        Binding("s", "pause_run", "Pause", id="run.pause",
                tooltip="Hold a waiting run or suspend a running one; again to let it go on"),
        Binding("plus,equals_sign", "priority(1)", "Priority +1", id="run.priority_up", show=False,
                tooltip="Start the selected run sooner"),
        Binding("minus", "priority(-1)", "Priority -1", id="run.priority_down", show=False,
                tooltip="Start the selected run later"),
        Binding("x", "experiment", "Experiment", id="experiment.act",
                tooltip="Cancel, retry, pause or resume the selected run's whole experiment or label"),
        Binding("e", "engine", "Engine", id="engine.toggle",
                tooltip="Start the engine (it outlives this UI), or stop it (asks first)"),
        Binding("f", "filters", "Filter", id="queue.filter", show=False,
                tooltip="Filter the runs by state, experiment or kind"),
        Binding("escape", "focus_table", "Back to the runs", id="queue.table", show=False),
    ]
    DEFAULT_CSS = """
    QueueScreen #filters { height: 1; padding: 0 1; }
    QueueScreen #filters Select { width: 1fr; max-width: 28; margin-right: 1; }
    QueueScreen #shown { width: auto; color: $text-muted; }
    QueueScreen #detail { height: 2; padding: 0 1; color: $text-muted; border-top: hkey $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._options: dict[str, list[str]] = {"f-experiment": [], "f-kind": []}

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="filters"):
            yield Select([(name, name) for name in (*STATE_GROUPS, *st.STATES)], prompt="any state",
                         id="f-state", compact=True, type_to_search=False)
            yield Select([], prompt="any experiment", id="f-experiment", compact=True, type_to_search=False)
            yield Select([], prompt="any kind", id="f-kind", compact=True, type_to_search=False)
            yield Static("", id="shown")
        yield RunTable(self.gapp.rates, id="runs",
                       empty_text="no runs yet: queue some from the Builder (1) or `ganaug run`")
        yield Static("", id="detail", markup=False)

    def on_mount(self) -> None:
        self.query_one(RunTable).focus()
        super().on_mount()

    # ------------------------------------------------------------------ showing the store
    def snapshot_changed(self, snap: Snapshot) -> None:
        self._set_options("f-experiment", sorted({r.experiment for r in snap.runs if r.experiment}))
        self._set_options("f-kind", sorted({r.kind for r in snap.runs}))
        runs = self._filtered(snap)
        table = self.query_one(RunTable)
        table.set_runs(runs, snap.time)
        self.query_one("#shown", Static).update(f"{len(runs):,} of {len(snap.runs):,} runs")
        if not table.has_focus and self.focused is None:
            table.focus()
        self._show_detail()

    def _set_options(self, select_id: str, values: list[str]) -> None:
        if values != self._options[select_id]:
            self._options[select_id] = values
            select = self.query_one(f"#{select_id}", Select)
            keep = select.value
            select.set_options([(v, v) for v in values])
            if keep in values:
                select.value = keep

    def _filtered(self, snap: Snapshot) -> list[st.Run]:
        state = self.query_one("#f-state", Select).value
        experiment = self.query_one("#f-experiment", Select).value
        kind = self.query_one("#f-kind", Select).value
        states = STATE_GROUPS.get(state, (state,)) if isinstance(state, str) else None
        return [r for r in snap.runs
                if (states is None or r.status in states)
                and (not isinstance(experiment, str) or r.experiment == experiment)
                and (not isinstance(kind, str) or r.kind == kind)]

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.gapp.snapshot is not None:
            self.snapshot_changed(self.gapp.snapshot)

    def on_virtual_table_highlighted(self, event: RunTable.Highlighted) -> None:
        if event.key is not None:
            self.gapp.selected_run = event.key
        self._show_detail()
        self.refresh_bindings()

    def on_virtual_table_chosen(self, event: RunTable.Chosen) -> None:
        self.gapp.selected_run = event.key
        self.app.switch_mode("live")

    def _show_detail(self) -> None:
        run = self.query_one(RunTable).selected_run
        if run is None:
            self.query_one("#detail", Static).update("")
            return
        table = self.query_one(RunTable)
        p = run.progress or {}
        bits = [run.id]
        if p.get("total") and run.status in st.ACTIVE:
            bits.append(f"{p.get('desc', '')} {p.get('done')}/{p.get('total')}".strip())
            if (eta := self.gapp.rates.eta(run, table.now)) is not None:
                bits.append(f"{fmt_duration(eta)} left in this phase")
        if run.job_id:
            bits.append(f"{run.executor} job {run.job_id}")
        elif run.executor != "local":
            bits.append(f"{run.executor}, not submitted yet")
        if run.parents:
            bits.append("after " + ", ".join(run.parents))
        if run.exit_reason:
            bits.append(run.exit_reason)
        self.query_one("#detail", Static).update(" · ".join(bits))

    # ------------------------------------------------------------------ commands
    def _run(self) -> st.Run | None:
        return self.query_one(RunTable).selected_run

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        run = self._run()
        needs = {"cancel": CANCELLABLE, "retry": st.RETRYABLE, "pause_run": PAUSABLE,
                 "priority": (st.QUEUED, st.BLOCKED, st.PAUSED)}
        if action in needs:
            return run is not None and run.status in needs[action] or None
        if action == "experiment":
            return run is not None and run.experiment is not None or None
        return True

    def action_cancel(self) -> None:
        if (run := self._run()) is not None:
            self.cancel_run(run)

    def action_retry(self) -> None:
        if (run := self._run()) is not None:
            self.retry_run(run)

    def action_pause_run(self) -> None:
        if (run := self._run()) is not None:
            self.gapp.act(actions.toggle_pause, run.id, read_only=self.gapp.read_only)

    def action_priority(self, delta: int) -> None:
        if (run := self._run()) is not None:
            self.gapp.act(actions.shift_priority, run.id, delta, read_only=self.gapp.read_only)

    def action_experiment(self) -> None:
        if (run := self._run()) is not None and run.experiment is not None:
            self.app.push_screen(ExperimentActions(run.experiment, run.label),
                                 lambda choice: choice is not None and self._on_experiment(run.experiment, *choice))

    def _on_experiment(self, experiment: str, action: str, label: str | None) -> None:
        """Do ``action`` on the experiment (``label`` None) or one label; a cancel asks first."""
        if action == "cancel":
            self._ask_cancel(experiment, label)
        else:
            self.gapp.act(actions.act_on_experiment, experiment, label, action, read_only=self.gapp.read_only)

    @work(thread=True, exclusive=True, group="queue-ask")
    def _ask_cancel(self, experiment: str, label: str | None) -> None:
        """The runs the engine's cancel would take (``engine.workspace.experiment_runs``: the experiment's own
        links, the shared ones left alone), read before the confirmation counts them."""
        from engine.workspace import CANCELLABLE, experiment_runs

        try:
            with reads.open_reader(self.gapp.workspace) as store:
                chosen = experiment_runs(store, experiment, label, "cancel")
        except InputError as exc:
            self.post_message(ActionDone(str(exc), ok=False))
            return
        todo = [r for r in chosen.runs if r.status in CANCELLABLE]
        self.post_message(Loaded("queue-cancel", (experiment, label, todo, chosen.kept)))

    def on_loaded(self, message: Loaded) -> None:
        if message.topic != "queue-cancel":
            return
        experiment, label, todo, kept = message.data

        def cancel() -> None:
            self.gapp.act(actions.act_on_experiment, experiment, label, "cancel", read_only=self.gapp.read_only)

        if not todo:
            cancel()  # nothing to confirm: the engine's own line says why nothing is cancelled
            return
        what = f"experiment {experiment}" + (f", label {label}" if label else "")
        running = sum(1 for r in todo if r.status in st.ACTIVE)
        body = (f"Cancels {len(todo)} waiting or running run(s) of {what} ({running} running now: they checkpoint "
                f"and stop; a retry later resumes them from that checkpoint). {len(kept)} run(s) it shares with "
                "other labels or experiments (GANs, pools) go on.")
        self.app.push_screen(Confirm(f"Cancel {what}?", body, yes="Cancel them", no="Keep them"),
                             lambda yes: yes and cancel())

    def action_engine(self) -> None:
        snap = self.gapp.snapshot
        if snap is not None and snap.engine is not None:
            pid = snap.engine.get("pid")
            running = sum(1 for r in snap.runs if r.status in st.ACTIVE and r.engine_pid == pid)
            body = (f"The engine (pid {pid}) stops gracefully: its {running} running run(s) checkpoint and end "
                    "interrupted; the next engine start resumes them. Foreground runs (`ganaug run`) go on.")
            self.app.push_screen(Confirm("Stop the engine?", body, yes="Stop engine", no="Keep it running"),
                                 lambda yes: yes and self.gapp.act(actions.stop_engine, read_only=self.gapp.read_only))
        else:
            self.notify("starting the engine…")
            self.gapp.act(actions.start_engine, read_only=self.gapp.read_only)

    def action_filters(self) -> None:
        self.query_one("#f-state", Select).focus()

    def action_focus_table(self) -> None:
        self.query_one(RunTable).focus()
