"""``ganaug init [DIR]``: write out the shipped ``experiments.toml`` (the paper's Table 2 and the CPU demo), so a
user who installed with pip has the file to edit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.options import Json
from engine.errors import InputError


def install(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("init")
    def init(
        directory: Annotated[Path, typer.Argument(help="Folder to write experiments.toml into.")] = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Replace an existing experiments.toml.")] = False,
        json_out: Json = False,
    ) -> None:
        """Write the shipped experiments.toml (augmentation, anonymization, demo) into DIR."""
        from engine.config import EXPERIMENTS_FILE, shipped_experiments_text
        from engine.fsutil import atomic_write_text

        target = directory / EXPERIMENTS_FILE
        if directory.exists() and not directory.is_dir():
            raise InputError(f"{directory}: not a folder")
        if target.exists() and not force:
            raise InputError(f"{target} exists; --force replaces it")
        try:
            atomic_write_text(target, shipped_experiments_text())
        except OSError as exc:
            raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from None
        if json_out:
            print(json.dumps({"path": str(target.absolute())}))
        else:
            print(f"wrote {target} (edit the data roots, or export the GANAUG_* variables it names)",
                  file=sys.stderr)
