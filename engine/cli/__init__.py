"""``ganaug``: the headless command line. Sub-apps live one per area in this package.

Exit codes: 0 ok, 1 a run failed, 2 usage or input error (one line on stderr).
JSON goes to stdout, messages to stderr. Heavy imports (torch, timm) happen inside commands.
"""

from __future__ import annotations

import sys

import typer

from engine.cli import data as _data
from engine.cli import runs as _runs
from engine.cli import train as _train
from engine.errors import InputError, RunFailed

app = typer.Typer(
    name="ganaug",
    help="GAN-based augmentation and anonymization experiments for skin-lesion classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(_data.app, name="data")
_runs.install(app)
_train.install(app)


def main() -> None:
    """Console-script entry: maps engine errors to one stderr line and their exit code."""
    try:
        app()
    except InputError as exc:
        print(f"ganaug: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except RunFailed as exc:
        print(f"ganaug: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
