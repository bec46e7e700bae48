"""``ganaug``: the headless command line. Sub-apps live one per area in this package.

Exit codes: 0 ok, 1 a run failed, 2 usage or input error (one line on stderr).
JSON goes to stdout, messages to stderr. Heavy imports (torch, timm) happen inside commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from engine.cli import data as _data
from engine.cli import gan as _gan
from engine.cli import runs as _runs
from engine.cli import train as _train
from engine.cli.options import Workspace
from engine.errors import EXIT_RUN_FAILED, InputError, RunFailed

app = typer.Typer(
    name="ganaug",
    help="GAN-based augmentation and anonymization experiments for skin-lesion classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(_data.app, name="data")
app.add_typer(_gan.app, name="gan")
_runs.install(app)
_train.install(app)


@app.command()
def demo(
    workspace: Workspace = None,
    data: Path = typer.Option(None, "--data", help="Demo data folder (default: <workspace>/demo-data); "
                                                      "a demo already there is used as it is."),
    seed: int = typer.Option(0, "--seed", help="Seed of the procedural data."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum fine-tuning epochs (default: 20)."),
    data_only: bool = typer.Option(False, "--data-only", help="Only generate and check the demo data."),
    json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """The main job on the embedded demo: procedural data -> checks -> fine-tune -> AUC on every test set."""
    from engine.demo import run_demo
    from engine.store import resolve_workspace

    result = run_demo(resolve_workspace(workspace), data, seed=seed, epochs=epochs, data_only=data_only,
                      say=lambda line: print(line, file=sys.stderr))
    if json_out:
        print(json.dumps(result))
    if result["run"] is not None and result["run"]["status"] != "succeeded":
        raise typer.Exit(EXIT_RUN_FAILED)


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
