"""Dialogs, one look for all: a yes/no confirmation for what cannot be undone (cancelling hours of training,
stopping the engine), the Queue's actions on a whole experiment or label, the Results' export folder."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

Answer = TypeVar("Answer")


class Dialog(ModalScreen[Answer]):
    """A box in the middle of the screen: a bold ``.title`` line, some text, a row of buttons."""

    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical { width: 72; max-width: 95%; height: auto; border: thick $primary 60%;
                        background: $surface; padding: 1 2; }
    Dialog .title { text-style: bold; margin-bottom: 1; }
    Dialog Horizontal { height: auto; margin-top: 1; }
    """


class Confirm(Dialog[bool]):
    """``title``, a few lines of what will happen, and two buttons; ``y``/``n`` answer from the keyboard.

    The safe answer has the focus, so a stray Enter never confirms."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Do it"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Leave things as they are"),
    ]
    DEFAULT_CSS = """
    Confirm > Vertical { border: thick $error 60%; }
    Confirm Horizontal { align-horizontal: right; }
    Confirm Button { margin-left: 2; }
    """

    def __init__(self, title: str, body: str, yes: str, no: str = "Keep it") -> None:
        super().__init__()
        self.title_text, self.body, self.yes, self.no = title, body, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="title", markup=False)
            yield Static(self.body, markup=False)
            with Horizontal():
                yield Button(f"{self.no} (n)", id="no", variant="primary")
                yield Button(f"{self.yes} (y)", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ExperimentActions(Dialog[tuple[str, str | None] | None]):
    """What to do with a run's whole experiment or only its label: answers ``(action, label or None)``.

    The scope starts at the label (the smaller one); ``l`` widens it to the whole experiment and back."""

    BINDINGS = [
        Binding("c", "answer('cancel')", "Cancel", id="experiment.cancel", tooltip="Cancel its runs (asks first)"),
        Binding("t", "answer('retry')", "Retry", id="experiment.retry",
                tooltip="Queue its failed, cancelled or interrupted runs again (and what they wait for)"),
        Binding("s", "answer('pause')", "Pause", id="experiment.pause", tooltip="Hold or suspend its runs"),
        Binding("u", "answer('resume')", "Resume", id="experiment.resume",
                tooltip="Let its paused runs (and the paused runs they wait for) go on"),
        Binding("l", "scope", "Label/experiment", id="experiment.scope",
                tooltip="Act on the whole experiment or only the label"),
        Binding("escape,n", "dismiss(None)", "Close", id="experiment.close", tooltip="Do nothing"),
    ]
    DEFAULT_CSS = """
    ExperimentActions Button { margin-right: 1; min-width: 8; }
    """

    def __init__(self, experiment: str, label: str | None) -> None:
        super().__init__()
        self.experiment, self.label = experiment, label
        self.whole = label is None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="scope", classes="title", markup=False)
            yield Static("Cancel and pause leave alone the runs other labels or experiments share (a GAN, a pool); "
                         "retry and resume also reach the runs it waits for. Like `ganaug runs cancel|retry|pause|"
                         "resume --experiment E [--label L]`.", markup=False)
            with Horizontal():
                for action, key in (("cancel", "c"), ("retry", "t"), ("pause", "s"), ("resume", "u")):
                    yield Button(f"{action.capitalize()} ({key})", id=action,
                                 variant="error" if action == "cancel" else "default")
                yield Button("Scope (l)", id="scope-toggle", disabled=self.label is None)

    def on_mount(self) -> None:
        self._show_scope()

    def _show_scope(self) -> None:
        self.query_one("#scope", Static).update(
            f"experiment {self.experiment}" + ("" if self.whole else f" · label {self.label}")
            + ("  (whole experiment; l: only this label)" if self.whole and self.label else
               "" if self.whole else "  (l: the whole experiment)"))

    def action_scope(self) -> None:
        if self.label is not None:
            self.whole = not self.whole
            self._show_scope()

    def action_answer(self, action: str) -> None:
        self.dismiss((action, None if self.whole else self.label))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "scope-toggle":
            self.action_scope()
        elif event.button.id:
            self.action_answer(event.button.id)


class ExportDialog(Dialog[Path | None]):
    """Where to write the CSV and PNG/SVG files: a folder the user confirms (Enter) or changes first."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="export.cancel", tooltip="Write nothing")]
    DEFAULT_CSS = """
    ExportDialog > Vertical { width: 76; }
    ExportDialog Horizontal { align-horizontal: right; }
    ExportDialog Button { margin-left: 2; }
    """

    def __init__(self, experiment: str, folder: Path) -> None:
        super().__init__()
        self.experiment, self.folder = experiment, folder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Export the results of {self.experiment}", classes="title", markup=False)
            yield Static(f"{self.experiment}.csv (every test set) and the box-plots as PNG and SVG (all test sets, "
                         "and one per test set) go into this folder (created if missing; files of the same name "
                         "are replaced):", markup=False)
            yield Input(str(self.folder), id="folder")
            with Horizontal():
                yield Button("Cancel (esc)", id="no")
                yield Button("Export (enter)", id="yes", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._answer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self._answer()
        else:
            self.dismiss(None)

    def _answer(self) -> None:
        text = self.query_one(Input).value.strip()
        self.dismiss(Path(text).expanduser() if text else None)
