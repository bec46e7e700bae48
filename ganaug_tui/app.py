"""The ganaug terminal UI: watch the queue and the runs of a workspace, act on them.

All store access happens in thread workers that post messages back (the event loop never waits on
SQLite or the file system); the UI holds no state the store does not have, so quitting never stops a run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header

from engine import store as st
from engine.errors import InputError
from engine.runner.daemon import engine_info
from ganaug_tui.messages import ActionDone, RunDetail, RunDetailLoaded, RunsLoaded
from ganaug_tui.widgets.run_detail import RunDetailPane
from ganaug_tui.widgets.runs_table import RunsTable

POLL_S = 2.0
LOG_TAIL_LINES = 40


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a run's log without reading a big log whole."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class GanaugApp(App[None]):
    """Runs table on the left, the selected run on the right; polls the store every couple of seconds."""

    TITLE = "ganaug"
    CSS = """
    #runs { width: 3fr; }
    RunDetailPane { width: 2fr; border-left: solid $primary; padding: 0 1; }
    #summary { height: auto; }
    #curves { height: 14; }
    #log { height: 1fr; color: $text-muted; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave the UI; runs and the engine go on"),
        Binding("r", "refresh", "Refresh", id="refresh", tooltip="Reload the store now"),
        Binding("c", "cancel", "Cancel run", id="cancel", tooltip="Cancel the selected run (graceful)"),
        Binding("t", "retry", "Retry run", id="retry", tooltip="Queue the selected run again"),
        Binding("p", "toggle_queue", "Pause/resume queue", id="toggle_queue",
                tooltip="Stop or allow starting new runs; running ones go on"),
    ]

    def __init__(self, workspace: Path, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.workspace = workspace
        self.poll_s = poll_s
        self.queue_paused = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield RunsTable(id="runs")
            yield RunDetailPane()
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.workspace)
        self.query_one(RunsTable).focus()
        self.action_refresh()
        self.set_interval(self.poll_s, self.action_refresh)

    # ------------------------------------------------------------------ workers (off the event loop)
    def _store(self, readonly: bool = True) -> st.Store:
        return st.open_store(self.workspace, readonly=readonly)

    @work(thread=True, exclusive=True, group="poll")
    def action_refresh(self) -> None:
        store = self._store()
        try:
            msg = RunsLoaded(store.list_runs(), engine_info(self.workspace), store.queue_paused())
        finally:
            store.close()
        self.post_message(msg)

    @work(thread=True, exclusive=True, group="detail")
    def load_detail(self, run_id: str) -> None:
        store = self._store()
        try:
            run = store.get_run(run_id)
            frame = store.metrics(run_id)
        except InputError:  # removed meanwhile (e.g. `ganaug runs rm` in another shell): the next refresh drops it
            return
        finally:
            store.close()
        series = {
            str(name): (g["step"].astype(int).tolist(), g["value"].astype(float).tolist())
            for name, g in frame.groupby("name")
        }
        self.post_message(RunDetailLoaded(RunDetail(run, series, _log_tail(store.run_dir(run_id) / "log.txt"))))

    @work(thread=True, group="actions")
    def _store_action(self, verb: str, run_id: str | None) -> None:
        store = self._store(readonly=False)
        try:
            if verb == "cancel" and run_id:
                text = f"{run_id}: {store.request_cancel(run_id)}"
            elif verb == "retry" and run_id:
                text = f"{run_id}: {store.retry(run_id)}"
            elif verb == "queue":
                store.set_queue_paused(not store.queue_paused())
                text = "queue paused" if store.queue_paused() else "queue resumed"
            else:
                return
            self.post_message(ActionDone(text))
        except InputError as exc:
            self.post_message(ActionDone(str(exc), ok=False))
        finally:
            store.close()

    # ------------------------------------------------------------------ message handlers (UI thread)
    def on_runs_loaded(self, message: RunsLoaded) -> None:
        table = self.query_one(RunsTable)
        table.show(message.runs)
        self.queue_paused = message.queue_paused
        counts: dict[str, int] = {}
        for run in message.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        engine = "engine up" if message.engine else "engine down"
        queue = "queue paused" if message.queue_paused else "queue open"
        summary = "  ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        self.title = f"ganaug — {engine}, {queue} — {summary or 'no runs'}"
        if (run_id := table.selected_run_id) is not None:
            self.load_detail(run_id)

    def on_run_detail_loaded(self, message: RunDetailLoaded) -> None:
        if message.detail.run.id == self.query_one(RunsTable).selected_run_id:
            self.query_one(RunDetailPane).show(message.detail)

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")
        self.action_refresh()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.load_detail(str(event.row_key.value))

    # ------------------------------------------------------------------ actions
    def action_cancel(self) -> None:
        self._store_action("cancel", self.query_one(RunsTable).selected_run_id)

    def action_retry(self) -> None:
        self._store_action("retry", self.query_one(RunsTable).selected_run_id)

    def action_toggle_queue(self) -> None:
        self._store_action("queue", None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ganaug-tui", description="Terminal UI over a ganaug workspace.")
    parser.add_argument("--workspace", type=Path, default=None, help="run store (default: $GANAUG_WORKSPACE or ./runs)")
    args = parser.parse_args(argv)
    try:
        workspace = st.resolve_workspace(args.workspace)
        st.open_store(workspace).close()  # fail here, in one line, on a bad, damaged or newer store
    except InputError as exc:
        print(f"ganaug-tui: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    app = GanaugApp(workspace)
    app.run()
    sys.exit(app.return_code or 0)  # an app that crashed must not exit 0
