"""``ganaug train``: one fine-tune of the target classifier, as a run."""

from __future__ import annotations

import typer


def install(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
