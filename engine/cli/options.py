"""Options every area of the CLI shares, declared once so they read and behave the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from engine.errors import InputError
from engine.store import WORKSPACE_ENV

Workspace = Annotated[Path | None, typer.Option(
    "--workspace", "-w", envvar=WORKSPACE_ENV, show_default="./runs",
    help="Run store folder (env GANAUG_WORKSPACE).")]
Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def existing_path(path: str, flag: str) -> str:
    """``path`` resolved; InputError naming ``flag`` when nothing is there."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{flag}: {path}: no such file or directory")
    return str(p.resolve())


def data_keys(data: str | None, fmt: str | None, split_seed: int | None, split_file: str | None, *,
              required: bool = False, split_data: str | None = None) -> dict[str, Any] | None:
    """``--data ROOT --format F [--split-seed K | --split-file F]`` as a run config's ``data`` (the keys of a
    classify run's ``data``, which gan-train, gan-import, select and the audit share); None when neither
    ``--data`` nor ``--format`` is given and they are not ``required``."""
    if data is None and fmt is None:
        if required:
            raise InputError("--data and --format: the real training data are required")
        return None
    if data is None or fmt is None:
        raise InputError("--data and --format go together")
    if split_seed is not None and split_file is not None:
        raise InputError("--split-seed and --split-file exclude each other")
    out: dict[str, Any] = {"format": fmt, "root": existing_path(data, "--data")}
    if split_seed is not None:
        out["split_seed"] = split_seed
    if split_file is not None:
        out["split_file"] = existing_path(split_file, "--split-file")
    if split_data is not None:
        out["split_data"] = existing_path(split_data, "--split-data")
    return out
