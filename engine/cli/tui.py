"""``ganaug tui ...``: the terminal UI is a program of its own (``ganaug-tui``, package ``ganaug_tui``); this
command hands the process over to it with the same arguments, so the engine never imports the UI."""

from __future__ import annotations

import importlib.util
import os
import sys

import typer

from engine.errors import InputError


def tui_command(ctx: typer.Context) -> None:
    """Open the terminal UI: the same program and options as ganaug-tui (ganaug tui --help lists them)."""
    if importlib.util.find_spec("ganaug_tui") is None:
        raise InputError("the terminal UI is not installed here (package ganaug_tui, the ganaug-tui command)")
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: the current folder does not shadow the installed package
    os.execv(sys.executable, [sys.executable, "-P", "-m", "ganaug_tui", *ctx.args])


def install(app: typer.Typer) -> None:
    app.command("tui", add_help_option=False,  # --help too goes to ganaug-tui
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(tui_command)
