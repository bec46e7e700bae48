"""``ganaug runs|queue|engine|run``: the run store, the queue and the background engine."""

from __future__ import annotations

import typer


def install(app: typer.Typer) -> None:
    """Add this area's commands and sub-apps to the root app."""
