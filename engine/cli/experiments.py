"""``ganaug init [DIR]``: write out the shipped ``experiments.toml`` (the paper's Table 2 and the CPU demo), so a
user who installed with pip has the file to edit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.options import Json, Workspace, executor_from_options
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

    @app.command("prune")
    def prune(
        experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Only the runs of this "
                                                       "experiment (default: the whole workspace).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be freed.")] = False,
        json_out: Json = False,
        workspace: Workspace = None,
    ) -> None:
        """Free what finished runs no longer need: resume checkpoints of succeeded runs, pools no selection uses."""
        from engine import store as st
        from engine.workspace import prune as prune_workspace

        with st.open_store(workspace, create=False) as store:
            store.reap_dead_owners()
            report = prune_workspace(store, experiment, dry_run=dry_run)
        if json_out:
            print(json.dumps(report))
            return
        for item in report["items"]:
            print(f"{item['run_id']}: {item['what']} {_mb(item['bytes'])}", file=sys.stderr)
        verb = "would free" if dry_run else "freed"
        print(f"{verb} {_mb(report['freed_bytes'])} in {len(report['items'])} item(s)", file=sys.stderr)

    @app.command("export")
    def export(
        experiment: Annotated[str, typer.Argument(help="Experiment name (as submitted with `ganaug run`).")],
        out: Annotated[Path, typer.Option("--out", help="A new (or empty) folder for the copy.")],
        json_out: Json = False,
        workspace: Workspace = None,
    ) -> None:
        """A light copy of an experiment for another machine: store, results, predictions, metrics, logs, sample
        grids, selections; no checkpoints or pools. Open it with ganaug-tui --workspace OUT."""
        from engine import store as st
        from engine.workspace import export as export_experiment

        with st.open_store(workspace, readonly=True, create=False) as store:
            report = export_experiment(store, experiment, out)
        if json_out:
            print(json.dumps(report))
            return
        print(f"exported {experiment}: {report['runs']} runs, {report['files']} files, {_mb(report['bytes'])} into "
              f"{report['out']}; open it with: ganaug-tui --workspace {report['out']}", file=sys.stderr)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _pair(text: str | None, flag: str, minimum: int) -> tuple[int, int] | None:
    """``BENIGN:MELANOMA`` -> two integers >= ``minimum``; one InputError line otherwise."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        pair = (int(parts[0]), int(parts[1])) if len(parts) == 2 else None
    except ValueError:
        pair = None
    if pair is None or min(pair) < minimum:
        raise InputError(f"{flag} {text!r}: expected BENIGN:MELANOMA, two integers >= {minimum} (e.g. 11684:3121)")
    return pair


def run_experiment(name: str, *, file: Path | None, sets: list[str], only: list[str] | None, replicates: int | None,
                   dry_run: bool, class_sizes: str | None, mask_sizes: str | None, detach: bool, json_out: bool,
                   priority: int, workspace: Path | None, executor: str = "local",
                   executor_flags: dict[str, Any] | None = None) -> None:
    """``ganaug run EXPERIMENT``: plan the experiment's DAG; print it (``--dry-run``), queue it for the engine
    (``--detach``) or run it here; exit 1 when a run did not succeed. ``executor`` (``--executor``) and
    ``executor_flags`` (``--partition`` ...) say where its runs go, on top of the file's ``[executor.slurm]``."""
    from engine import grid
    from engine import store as st
    from engine.config import find_experiment, read_experiments
    from engine.runner.kinds import kind_names

    ws = st.resolve_workspace(workspace)
    sizes = _pair(class_sizes, "--class-sizes", 1)
    masks = _pair(mask_sizes, "--mask-sizes", 0)
    if (sizes or masks) and not dry_run:
        raise InputError(f"{'--class-sizes' if sizes else '--mask-sizes'} plans against sizes other than the data's: "
                         "it goes with --dry-run")
    if masks and not sizes:
        raise InputError("--mask-sizes goes with --class-sizes")
    if dry_run and detach:
        raise InputError("--dry-run creates nothing; --detach queues: give one")
    experiments = read_experiments(file, workspace=ws, sets=sets)
    if name not in [e.name for e in experiments]:
        raise InputError(f"unknown run kind or experiment {name!r} (run kinds: {', '.join(kind_names())}; "
                         f"experiments in {experiments[0].source}: {', '.join(e.name for e in experiments)})")
    experiment = find_experiment(experiments, name)
    spec = executor_from_options(executor, file, settings=experiment.slurm, **(executor_flags or {}))
    if dry_run:
        if sizes is not None:
            planned = grid.plan(experiment, ws, only=only, replicates=replicates,
                                sizes=grid.Sizes(*sizes, masks=masks))
        else:
            planned = grid.preview(ws, experiment, only=only, replicates=replicates, executor=spec)
        if json_out:
            print(json.dumps(planned.to_json()))
        else:
            show_plan(planned)
        return
    from engine.errors import EXIT_RUN_FAILED
    from engine.runner.dag import launch_experiment

    with st.open_store(ws) as store:
        store.reap_dead_owners()
        planned = grid.plan(experiment, ws, store=store, only=only, replicates=replicates, executor=spec)
        counts = planned.summary()
        where = "" if planned.executor.name == "local" else f" on {planned.executor.name}"
        print(f"{name}: {len(planned.runs)} runs{where} ("
              + ", ".join(f"{k} {v['runs']}: {v['new']} new" for k, v in counts.items()) + ")",
              file=sys.stderr)
        try:
            sub, outcome = launch_experiment(store, planned, detach=detach, priority=priority)
        except KeyboardInterrupt:
            print(f"{name}: interrupted; its unfinished runs are interrupted, and `ganaug run {name}` again resumes "
                  "them", file=sys.stderr)
            raise
        status = {r.id: r.status for r in store.get_runs(sub.run_ids)}
        if detach:
            from engine.runner.daemon import engine_info

            print(f"{name}: queued {len(sub.created)} new run(s), re-queued {len(sub.requeued)}, reused "
                  f"{len(sub.reused) - len(sub.requeued)}", file=sys.stderr)
            if engine_info(store.workspace) is None and any(s in (st.QUEUED, st.BLOCKED) for s in status.values()):
                print(f"note: no engine serves {store.workspace}; start one with `ganaug engine start`",
                      file=sys.stderr)
    if json_out:
        runs = [r.to_json() | {"run_id": rid, "status": status[rid]}
                for r, rid in zip(planned.runs, sub.run_ids, strict=True)]
        print(json.dumps({"experiment": name, "runs": runs}))
    if outcome is not None:
        bad = [rid for rid, s in outcome.status.items() if s != st.SUCCEEDED]
        print(f"{name}: {len(outcome.status) - len(bad)} of {len(outcome.status)} runs succeeded"
              + (f"; not succeeded: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}" if bad else "")
              + f"; results: ganaug results {name}", file=sys.stderr)
        if bad:
            raise typer.Exit(EXIT_RUN_FAILED)


def show_plan(planned: Any) -> None:
    """The plan as a table on stdout: every run once, what it trains on, whether the store has it already."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(f"{planned.experiment.name}: {len(planned.runs)} runs, {len(planned.new)} new"),
              title_justify="left")
    for col in ("#", "kind", "labels", "rep", "store", "parents", "real b+m", "synthetic b+m"):
        t.add_column(col, justify="right" if col in ("#", "rep") else "left")
    for r in planned.runs:
        c = r.counts
        t.add_row(str(r.index), r.kind, escape(", ".join(r.labels)), "" if r.replicate is None else str(r.replicate),
                  f"reused ({r.status})" if r.reused else "new", " ".join(map(str, r.parents)),
                  f"{c['real']['benign']} + {c['real']['melanoma']}" if c else "",
                  f"{c['synthetic']['benign']} + {c['synthetic']['melanoma']}" if c else "")
    Console(width=200 if not sys.stdout.isatty() else None, highlight=False).print(t)
