"""``ganaug results EXPERIMENT``: the paired statistics table, terminal box-plots, and files for papers.

Reads only the store (opened read-only; a missing store is an error, never created), so it works offline on a
copied workspace. pandas, scipy and matplotlib are imported inside the command.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.cli.options import Json, Workspace
from engine.errors import InputError

if TYPE_CHECKING:
    from rich.table import Table

    from engine.analysis import Results

FORMATS = ("table", "csv", "json", "latex")
_VERDICT_STYLE = {"better": "bold green", "worse": "bold red", "no evidence": "dim", "baseline": "italic"}
_GROUP_STYLE = ("blue", "")  # the figure's alternating group colours (black = the terminal's text colour)


def install(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("results")
    def results(
        experiment: Annotated[str, typer.Argument(help="Experiment name (as submitted with `ganaug run`).")],
        test_set: Annotated[list[str] | None, typer.Option(
            "--test-set", "-t", help="Only this test set (repeatable; default: every one, in the experiment's "
                                     "order).")] = None,
        plot: Annotated[bool, typer.Option("--plot", help="Terminal box-plots (the paper's Figure 2) after each "
                                                          "table.")] = False,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json | latex.")] = "table",
        out: Annotated[Path | None, typer.Option("--out", help="Also write <experiment>.csv and the box-plots as "
                                                               "PNG and SVG (all test sets, and one per test set) "
                                                               "into this folder.")] = None,
        json_out: Json = False,
        workspace: Workspace = None,
    ) -> None:
        """AUC per configuration and test set, each compared with its group's baseline (paired replicates)."""
        from engine import store as st

        if fmt not in FORMATS:
            raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if json_out:
            if fmt not in ("table", "json"):
                raise InputError(f"--json and --format {fmt} ask for two outputs; give one")
            fmt = "json"
        if plot and fmt != "table":
            raise InputError(f"--plot draws in the terminal; it goes with --format table, not {fmt}")
        ws = st.resolve_workspace(workspace)
        if out is not None and out.exists() and not out.is_dir():
            raise InputError(f"--out {out}: exists and is not a folder")

        from engine.analysis import analyse, write_files

        with st.open_store(ws, readonly=True, create=False) as store:
            res = analyse(store, experiment, test_set or None)
        files = write_files(res, out) if out is not None else []

        from engine.analysis import tables

        if fmt == "csv":
            sys.stdout.write(tables.to_csv(res.table))
        elif fmt == "latex":
            sys.stdout.write(tables.to_latex(res.table))
        elif fmt == "json":
            print(json.dumps({
                "experiment": res.experiment.name, "test_sets": res.test_sets, "replicates": res.experiment.replicates,
                "n_boot": res.n_boot, "seed": res.seed, "rows": tables.records(res.table),
                "missing": tables.records(res.missing), "files": [str(f) for f in files]}))
        else:
            show(res, plot)
        for f in files:
            if fmt != "json":
                print(f"wrote {f}", file=sys.stderr)


def show(res: Results, plot: bool) -> None:
    """Rich tables (one per test set), the missing replicates, and the terminal box-plots when asked."""
    from rich.console import Console
    from rich.markup import escape

    from engine.analysis.plots import terminal_boxplot

    width = shutil.get_terminal_size((160, 40)).columns
    console = Console(width=width if sys.stdout.isatty() else 200, highlight=False)  # a file gets whole rows
    for ts in res.test_sets:
        console.print(rich_table(res, ts))
        if plot:
            sys.stdout.write(terminal_boxplot(res.aucs, res.experiment, ts, width=min(width, 140),
                                              color=sys.stdout.isatty()) + "\n")
    console.print(f"Paired with each group's baseline (replicate k vs k); 95 % CI: bootstrap of the mean ΔAUC "
                  f"({res.n_boot} resamples, seed {res.seed}); Wilcoxon signed-rank from 6 pairs, paired t-test "
                  "below; p Holm-adjusted within each group; better/worse only when the CI excludes 0 and p < 0.05.",
                  style="dim")
    if len(res.missing):
        console.print(f"[bold yellow]{len(res.missing)} missing[/] (their pairs are dropped):")
        for m in res.missing.itertuples():
            where = f" on {m.test_set}" if isinstance(m.test_set, str) else ""
            console.print(escape(f"  {m.label} replicate {m.replicate}{where}: {m.reason}"
                                 + (f" ({m.run_id})" if isinstance(m.run_id, str) else "")))


def rich_table(res: Results, test_set: str) -> Table:
    """One test set's rows: statistics, the comparison with the group's baseline, the verdict."""
    from rich.markup import escape
    from rich.table import Table

    from engine.analysis.tables import DISPLAY_COLUMNS, display_rows

    t = Table(title=escape(f"{res.experiment.name} · {test_set} · AUC"), title_justify="left")
    for _key, title, right in DISPLAY_COLUMNS:
        t.add_column(escape(title), justify="right" if right else "left")
    order = {g: i for i, (g, _) in enumerate(res.experiment.groups)}
    for row in display_rows(res.table, test_set):
        cells = [escape(row[key]) for key, _, _ in DISPLAY_COLUMNS[:-1]]
        t.add_row(*cells, f"[{_VERDICT_STYLE[row['verdict']]}]{row['verdict']}[/]",
                  style=_GROUP_STYLE[order[row['group']] % 2])
    return t
