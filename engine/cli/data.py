"""``ganaug data ...``: demo data generation and data-set checks."""

from __future__ import annotations

import typer

app = typer.Typer(help="Data sets: generate the procedural demo data, check a data set.", no_args_is_help=True)
