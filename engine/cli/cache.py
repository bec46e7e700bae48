"""``ganaug cache ...``: the workspace's decoded-image cache (``<workspace>/cache/images``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from engine import store as st
from engine.cli.options import Json, Workspace
from engine.errors import InputError

app = typer.Typer(help="The decoded-image cache of a workspace.", no_args_is_help=True)


def data_sets(config: Any) -> Iterator[tuple[str, str]]:
    """(format, root) of every data set a run config names, at any depth: each ``{"format", "root"}`` object
    (the classifier's ``data`` and ``tests``, a GAN's training data) and a ``synthetic`` CSV (format csv)."""
    from engine.data import FORMATS

    if isinstance(config, dict):
        if config.get("format") in FORMATS and isinstance(config.get("root"), str):
            yield config["format"], config["root"]
        for key, value in config.items():
            if key == "synthetic" and isinstance(value, str):
                yield "csv", value
            else:
                yield from data_sets(value)
    elif isinstance(config, list):
        for value in config:
            yield from data_sets(value)


def referenced(runs: list[st.Run]) -> tuple[set[str], set[str], list[dict[str, str]]]:
    """What the runs reference: the image and mask files of every data set their configs name, every path
    their configs name (a folder covers everything inside it), and the data sets that could not be read."""
    from engine.data import load_dataset

    files: set[str] = set()
    prefixes: set[str] = set()
    unreadable: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for run in runs:
        prefixes.update(st.config_paths(run.config))
        for fmt, root in data_sets(run.config):
            if (fmt, root) in seen:
                continue
            seen.add((fmt, root))
            try:
                ds = load_dataset(fmt, root)
            except InputError as exc:  # moved or unmounted: what is cached from under its root stays (prefixes)
                unreadable.append({"run": run.id, "format": fmt, "root": root, "error": str(exc)})
                continue
            for record in ds.records:
                files.add(os.path.realpath(record.image))
                files.update(os.path.realpath(m) for m in record.masks.values())
    return files, prefixes, unreadable


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@app.command("gc")
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be freed.")] = False,
    json_out: Json = False,
    workspace: Workspace = None,
) -> None:
    """Free cached images no run of the workspace references. Kept, at every resolution: the images of every
    data set a run's config names (whatever the run's state: a finished run may be retried) and anything cached
    from a path a config names; every shard holding one of them and every ordered copy (sets/) made only of
    them. Freed: the other shards and copies, and files of writers that died. Refused while runs are running."""
    from engine.data.cache import cache_root, collect_garbage

    ws = st.resolve_workspace(workspace)
    with st.open_store(ws, readonly=dry_run, create=False) as store:
        store.reap_dead_owners()
        active = store.list_runs(status=st.ACTIVE)
        if active and not dry_run:
            names = ", ".join(r.id for r in active[:3])
            raise InputError(f"cache gc: {len(active)} run(s) are running or paused ({names}); run it when they "
                             "are done (or use --dry-run)")
        runs = store.list_runs()
    files, prefixes, unreadable = referenced(runs)

    def keep(path: str) -> bool:
        real = os.path.realpath(path)
        return real in files or any(real == p or real.startswith(p + os.sep) for p in prefixes)

    reports = collect_garbage(cache_root(ws), keep, dry_run=dry_run)
    doc = {"dry_run": dry_run, "cache": str(cache_root(ws)), "runs": len(runs), "unreadable": unreadable,
           "resolutions": [vars(r) for r in reports],
           "kept_bytes": sum(r.kept_bytes for r in reports), "freed_bytes": sum(r.freed_bytes for r in reports)}
    if json_out:
        print(json.dumps(doc))
    for u in unreadable:
        print(f"note: data set {u['format']}={u['root']} (run {u['run']}) is unreadable ({u['error']}); "
              "what is cached from under it is kept", file=sys.stderr)
    if json_out:
        return
    verb = "would free" if dry_run else "freed"
    for r in reports:
        print(f"res{r.res}: kept {r.kept_shards} shards ({r.kept_images} images) and {r.kept_sets} sets, "
              f"{_mb(r.kept_bytes)}; {verb} {r.freed_shards} shards ({r.freed_images} images), {r.freed_sets} sets "
              f"and {r.freed_files} stale files, {_mb(r.freed_bytes)}")
    print(f"total: kept {_mb(doc['kept_bytes'])}, {verb} {_mb(doc['freed_bytes'])}"
          + (" (dry run: nothing deleted)" if dry_run else ""))

