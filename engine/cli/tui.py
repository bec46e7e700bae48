"""``ganaug tui`` / ``ganaug-tui``: open the terminal UI. The options are declared here, once, for both entry
points; the UI itself (textual) is imported only when the command runs, so ``engine`` stays headless."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.options import Workspace


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
    from ganaug_tui.cli import open_tui

    open_tui(workspace, read_only=read_only, poll_s=poll, experiments_file=file)


def install(app: typer.Typer) -> None:
    app.command("tui")(tui_command)
