"""``ganaug-tui`` (and ``ganaug tui``, which hands its arguments over to this program): check the workspace, then
paint. A damaged or newer store is one line and exit 2 before anything is drawn; a missing workspace opens a
screen that offers to create it (nothing is written before the user says yes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.options import Workspace
from engine.errors import InputError


def tui_command(
    workspace: Workspace = None,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="Only look: every action that would change the store is refused.")] = False,
    poll: Annotated[float, typer.Option(
        "--poll", min=0.2, help="Seconds between two reads of the store.")] = 2.0,
    file: Annotated[Path | None, typer.Option(
        "--file", help="The experiments.toml the Builder reads and saves into (default: ./experiments.toml, else "
                       "the shipped one; saving then creates ./experiments.toml).")] = None,
) -> None:
    """Open the terminal UI on a workspace: build and queue runs, watch them live, preview images, read results.

    Quitting never stops a run. A missing workspace opens an empty screen that offers to create it.
    """
    open_tui(workspace, read_only=read_only, poll_s=poll, experiments_file=file)


app = typer.Typer(name="ganaug-tui", add_completion=False, pretty_exceptions_enable=False,
                  help="Terminal UI over a ganaug workspace.")
app.command()(tui_command)


def open_tui(workspace: Path | None, *, read_only: bool = False, poll_s: float = 2.0,
             experiments_file: Path | None = None) -> None:
    from engine import store as st
    from ganaug_tui import reads

    ws = st.resolve_workspace(workspace)
    if ws.exists() and not ws.is_dir():
        raise InputError(f"workspace {ws} is not a directory")
    if reads.has_store(ws):
        with reads.open_reader(ws) as store:  # a damaged or newer store fails here, in one line, before painting
            store.check_integrity()
    import ganaug_tui.widgets.picture  # noqa: F401  (asks the terminal about images before Textual owns it)
    from ganaug_tui.app import GanaugApp

    app = GanaugApp(ws, read_only=read_only, poll_s=poll_s, experiments_file=experiments_file)
    app.run()
    if app.return_code:  # an app that crashed must not exit 0
        raise SystemExit(app.return_code)


def main(argv: list[str] | None = None) -> None:
    from engine.cli import main as run_cli

    run_cli(argv, app, "ganaug-tui")
