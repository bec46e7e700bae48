"""Options every area of the CLI shares, declared once so they read and behave the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.store import WORKSPACE_ENV

Workspace = Annotated[Path | None, typer.Option(
    "--workspace", "-w", envvar=WORKSPACE_ENV, show_default="./runs",
    help="Run store folder (env GANAUG_WORKSPACE).")]
Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
