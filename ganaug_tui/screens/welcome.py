"""A workspace that does not exist yet: say so, offer to create it, write nothing until the user says yes."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from engine.errors import InputError
from ganaug_tui import actions
from ganaug_tui.reads import display_path, has_store


class CreateWorkspaceScreen(Screen[bool]):
    """Dismissed with True once the store exists, False when the user leaves without creating it."""

    BINDINGS = [
        Binding("y", "create", "Create it", id="workspace.create", tooltip="Create the run store here"),
        Binding("q,n,escape", "leave", "Quit", id="workspace.leave", tooltip="Leave; nothing was written"),
    ]
    DEFAULT_CSS = """
    CreateWorkspaceScreen { align: center middle; }
    CreateWorkspaceScreen > Vertical { width: 76; max-width: 95%; height: auto; border: round $primary;
                                       padding: 1 2; }
    CreateWorkspaceScreen Horizontal { height: auto; margin-top: 1; }
    CreateWorkspaceScreen Button { margin-right: 2; }
    CreateWorkspaceScreen #error { color: $error; }
    """

    def __init__(self, workspace: Path) -> None:
        super().__init__()
        self.workspace = workspace

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content.from_markup(
                "[b]No run store at $short[/b]\n\n$full\nhas no ganaug.db yet. Create an empty run store there? "
                "Runs you queue will live in it (one folder per run).\nNothing is written until you say so.",
                short=display_path(self.workspace), full=str(self.workspace)))
            yield Static("", id="error")
            with Horizontal():
                yield Button("Create it (y)", id="create", variant="primary")
                yield Button("Quit (q)", id="leave")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._appeared)

    @work(thread=True, exclusive=True, group="appeared")
    def _appeared(self) -> None:
        """Another command (``ganaug demo``, ``ganaug run``) made the store meanwhile: nothing left to ask."""
        if has_store(self.workspace):
            self.app.call_from_thread(self.dismiss, True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.run_action("create" if event.button.id == "create" else "leave")

    def action_leave(self) -> None:
        self.dismiss(False)

    @work(thread=True, exclusive=True)
    def action_create(self) -> None:
        try:
            text = actions.create_workspace(self.workspace)
        except InputError as exc:
            self.app.call_from_thread(self.query_one("#error", Static).update, str(exc))
            return
        self.app.call_from_thread(self.app.notify, text)
        self.app.call_from_thread(self.dismiss, True)
