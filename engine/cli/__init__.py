"""``ganaug``: the headless command line. Sub-apps live one per area in this package.

Exit codes: 0 ok, 1 a run failed, 2 usage or input error (one line on stderr).
JSON goes to stdout, messages to stderr. Heavy imports (torch, timm) happen inside commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from engine.cli import cache as _cache
from engine.cli import data as _data
from engine.cli import experiments as _experiments
from engine.cli import gan as _gan
from engine.cli import results as _results
from engine.cli import runs as _runs
from engine.cli import synth as _synth
from engine.cli import train as _train
from engine.cli import tui as _tui
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
app.add_typer(_cache.app, name="cache")
app.add_typer(_gan.app, name="gan")
_runs.install(app)
_train.install(app)
_experiments.install(app)
_results.install(app)
_tui.install(app)
_synth.install(app)


@app.command()
def demo(
    workspace: Workspace = None,
    data: Path = typer.Option(None, "--data", help="Demo data folder (default: <workspace>/demo-data for the "
                                                      "default parameters, <workspace>/demo-data-seed<S>-res<R>-"
                                                      "n<N> otherwise); a demo already there is used as it is."),
    seed: int = typer.Option(0, "--seed", help="Seed of the procedural data."),
    res: int = typer.Option(None, "--res", help="Image side of the demo data in pixels (default: 64)."),
    n_train: int = typer.Option(None, "--n-train", help="Training images of the demo data (default: 1200)."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum fine-tuning epochs (default: the demo "
                                                      "experiment's)."),
    data_only: bool = typer.Option(False, "--data-only", help="Only generate and check the demo data."),
    file: Path = typer.Option(None, "--file", help="The experiments file whose `demo` experiment runs (default "
                                                   "./experiments.toml, else the shipped one)."),
    sets: list[str] = typer.Option(None, "--set", help="Override a key of the experiments file (repeat), e.g. "
                                                       "experiment.demo.replicates=2."),
    json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """The whole paper on the embedded demo data: procedural data -> baseline -> StyleGAN2 -> pool -> selections
    -> fine-tunes x 3 replicates on five test sets -> paired statistics and box-plots."""
    from engine.cli.progress import progress_reporter
    from engine.demo import run_demo
    from engine.store import resolve_workspace

    ws = resolve_workspace(workspace)
    with progress_reporter("rendering demo images") as progress:
        result = run_demo(ws, data, seed=seed, res=res, n_train=n_train, epochs=epochs, data_only=data_only,
                          file=file, sets=sets or [], say=lambda line: print(line, file=sys.stderr, flush=True),
                          progress=progress)
    if json_out:
        print(json.dumps(result.to_json()))
    elif not data_only:
        _show_demo(result, ws)
    if not result.ok:
        raise typer.Exit(EXIT_RUN_FAILED)


def _show_demo(result: object, ws: Path) -> None:
    """The results tables, the box-plots of one in- and one out-of-distribution test set, the stage times."""
    import shutil

    from engine.analysis.plots import terminal_boxplot
    from engine.cli.results import show
    from engine.demo import PLOTTED, DemoResult, budget_lines, gan_lines

    assert isinstance(result, DemoResult)
    res = result.results
    if res is not None:
        show(res, plot=False)
        width = min(shutil.get_terminal_size((140, 40)).columns, 140)
        for ts in PLOTTED:
            if ts in res.test_sets:
                print(f"\n{ts} (AUC; red dot: mean)")
                print(terminal_boxplot(res.aucs, res.experiment, ts, width=width, color=sys.stdout.isatty()))
    if result.gans:
        print("", file=sys.stderr)
        for line in gan_lines(result.gans):
            print(line, file=sys.stderr)
    print("\nwall time per stage (budget: a quiet 2-core CPU)", file=sys.stderr)
    for line in budget_lines(result.stages):
        print("  " + line, file=sys.stderr)
    if result.files:
        print(f"plots and table: {result.files[0].parent} ({', '.join(f.name for f in result.files[1:3])}, ...)",
              file=sys.stderr)
    print(f"browse the runs, curves, samples and results: ganaug-tui --workspace {ws}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None, typer_app: typer.Typer = app, prog: str = "ganaug") -> None:
    """Console-script entry (``ganaug``; ``ganaug-tui`` passes its own app and name): every error is one stderr
    line with its exit code (engine errors, and typer's own usage errors: an unknown option, a bad choice, a
    missing argument, which it would print as a box)."""
    import click

    try:
        code = typer_app(args=argv, prog_name=prog, standalone_mode=False)
    except (typer.TyperException, click.ClickException) as exc:  # typer vendors its own click
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path.removeprefix(prog).strip() if ctx is not None else ""
        command = f"{prog} {where}".strip()
        usage = f" (see '{command} --help')" if ctx is not None else ""
        print(f"{prog}: error: {where + ': ' if where else ''}{_one_line(exc.format_message())}{usage}",
              file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, click.Abort):
        print(f"{prog}: aborted", file=sys.stderr)
        sys.exit(130)
    except InputError as exc:
        print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except RunFailed as exc:
        print(f"{prog}: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
