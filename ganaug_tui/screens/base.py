"""What every one of the five screens has: the tabs, the status line, its body, and the footer of its keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from engine import store as st
from ganaug_tui import actions
from ganaug_tui.reads import Snapshot, display_path, fmt_duration
from ganaug_tui.screens.modals import Confirm
from ganaug_tui.widgets.chrome import ScreenTabs, StatusLine

if TYPE_CHECKING:
    from ganaug_tui.app import GanaugApp


class GanaugScreen(Screen[None]):
    """A screen of the app: subclasses set ``MODE`` and yield their widgets from ``compose_body``."""

    MODE = ""
    HELP = ""

    @property
    def gapp(self) -> GanaugApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield ScreenTabs(self.MODE)
        yield StatusLine(display_path(self.gapp.workspace), self.gapp.read_only)
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._snapshot_changed)

    def _snapshot_changed(self, snap: Snapshot | None) -> None:
        self.query_one(StatusLine).show(snap)
        if snap is not None:
            self.snapshot_changed(snap)

    def snapshot_changed(self, snap: Snapshot) -> None:
        """A new snapshot of the store arrived (every poll): screens refresh what they show of it."""

    # ------------------------------------------------------------------ commands on one run (Queue and Live)
    def cancel_run(self, run: st.Run) -> None:
        """Ask first (it may be hours of training), then cancel through the store."""
        if run.status in st.ACTIVE:
            p = run.progress or {}
            where = f", at {p['desc']} ({p.get('done')}/{p.get('total')})" if p.get("desc") else ""
            now = self.gapp.snapshot.time if self.gapp.snapshot else self.gapp.clock()
            body = (f"{run.id}\n{run.kind} {run.label or ''} has been running for "
                    f"{fmt_duration(now - (run.started or now))}{where}.\n"
                    "It checkpoints and stops; a retry later resumes it from that checkpoint.")
        else:
            body = f"{run.id}\n{run.kind} {run.label or ''} is {run.status}; it will not start."
        self.app.push_screen(Confirm("Cancel this run?", body, yes="Cancel run", no="Keep it"),
                             lambda yes: yes and self.gapp.act(actions.cancel, run.id, read_only=self.gapp.read_only))

    def retry_run(self, run: st.Run) -> None:
        self.gapp.act(actions.retry, run.id, read_only=self.gapp.read_only)
