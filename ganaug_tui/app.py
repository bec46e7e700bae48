"""The ganaug terminal UI: five screens over one workspace's run store, switched with keys 1-5.

The app holds only what the screens share: the workspace, the latest snapshot of the store (polled by a
thread worker, so the event loop never waits on SQLite or the file system), the run the user is looking at,
and the one helper that runs a store command off the event loop. Quitting never stops a run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive

from engine.errors import InputError, RunFailed
from ganaug_tui import reads
from ganaug_tui.messages import ActionDone, SnapshotLoaded
from ganaug_tui.palette import ScreenCommands
from ganaug_tui.screens.builder import BuilderScreen
from ganaug_tui.screens.live import LiveScreen
from ganaug_tui.screens.preview import PreviewScreen
from ganaug_tui.screens.queue import QueueScreen
from ganaug_tui.screens.results import ResultsScreen
from ganaug_tui.screens.welcome import CreateWorkspaceScreen
from ganaug_tui.widgets.chrome import SCREENS

POLL_S = 2.0


class GanaugApp(App[None]):
    TITLE = "ganaug"
    MODES = {"builder": BuilderScreen, "queue": QueueScreen, "live": LiveScreen, "preview": PreviewScreen,
             "results": ResultsScreen}
    DEFAULT_MODE = "queue"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        *(Binding(str(n), f"switch_mode('{mode}')", title, id=f"screen.{mode}", show=False,
                  tooltip=f"Go to the {title} screen") for n, (mode, title) in enumerate(SCREENS, 1)),
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave the UI; runs and the engine go on"),
        Binding("r", "refresh", "Refresh", id="refresh", show=False,
                tooltip="Read the store now (it is read every few seconds anyway)"),
        Binding("p", "toggle_queue", "Pause queue", id="queue.toggle",
                tooltip="Stop or allow starting new runs; running ones go on"),
    ]

    snapshot: reactive[reads.Snapshot | None] = reactive(None, always_update=True)
    selected_run: reactive[str | None] = reactive(None)

    def __init__(self, workspace: Path, *, read_only: bool = False, poll_s: float = POLL_S,
                 clock: Callable[[], float] = time.time, gpu: bool | None = None,
                 experiments_file: Path | None = None) -> None:
        """``clock`` and ``gpu`` (None = probe for one) exist so tests and snapshots are deterministic;
        ``experiments_file``: the Builder's experiments.toml (None: ./experiments.toml, else the shipped one)."""
        super().__init__()
        self.workspace = workspace
        self.missing = not reads.has_store(workspace)
        self.read_only = read_only or (not self.missing and not reads.writable(workspace))
        self.poll_s = poll_s
        self.clock = clock
        self.gpu = gpu
        self.experiments_file = experiments_file
        self.rates = reads.PhaseRates()  # time left in each running run's phase, from the snapshots seen

    def on_mount(self) -> None:
        self.set_interval(self.poll_s, self.action_refresh)
        if self.missing:
            self.push_screen(CreateWorkspaceScreen(self.workspace), self._workspace_created)
        else:
            self.action_refresh()

    def _workspace_created(self, created: bool | None) -> None:
        if created:
            self.missing = False
            self.action_refresh()
        else:
            self.exit()

    # ------------------------------------------------------------------ the store, off the event loop
    def action_refresh(self) -> None:
        if not self.missing:
            self._load_snapshot()

    @work(thread=True, exclusive=True, group="poll")
    def _load_snapshot(self) -> None:
        try:
            self.post_message(SnapshotLoaded(reads.load_snapshot(self.workspace, self.clock)))
        except InputError as exc:  # e.g. the store was damaged or removed while we watch it
            self.post_message(ActionDone(str(exc), ok=False))

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        if self.snapshot is None:
            self._warm_up()
        self.rates.update(message.snapshot.runs)
        self.snapshot = message.snapshot
        if self.selected_run is None and message.snapshot.runs:
            self.selected_run = _most_interesting(message.snapshot.runs)

    @work(thread=True, group="warm-up")
    def _warm_up(self) -> None:
        """Import what the Results screen's analysis needs (scipy's statistics alone take ~0.4 s) while the user
        looks at the first screen, so opening Results pays for the analysis only."""
        import scipy.stats  # noqa: F401

        import engine.analysis  # noqa: F401
        import engine.train.config  # noqa: F401

    def act(self, fn: Callable[..., str], *args: Any, **kwargs: Any) -> None:
        """Run a store command (``ganaug_tui.actions``) in a thread; its line comes back as a notification."""
        self._act(fn, args, kwargs)

    @work(thread=True, group="actions")
    def _act(self, fn: Callable[..., str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.post_message(ActionDone(fn(self.workspace, *args, **kwargs)))
        except (InputError, RunFailed) as exc:
            self.post_message(ActionDone(str(exc), ok=False))

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error",
                    timeout=4 if message.ok else 8)
        self.action_refresh()

    def action_toggle_queue(self) -> None:
        from ganaug_tui import actions

        self.act(actions.toggle_queue, read_only=self.read_only)


def _most_interesting(runs: list[Any]) -> str:
    """What the Live screen opens on before the user picks a run: the newest running run, else the newest."""
    running = [r for r in runs if r.status == "running"]
    return (running or runs)[-1].id
