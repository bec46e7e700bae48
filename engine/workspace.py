"""Housekeeping at grid scale: acting on every run of an experiment (or of one of its labels), dropping what a
finished experiment no longer needs (``prune``), and a light copy of an experiment for a laptop (``export``).

Which runs an experiment or label names: the store's ``run_labels``. A GAN, pool or selection is linked to every
label that trains on it, and identical configurations are one run set shared by every label (and experiment)
that names them. So cancelling or removing a label acts only on runs no other label needs (the others are kept and
reported), while retrying it or raising its priority also reaches the runs it waits for (its GAN, the baseline
that is its helper), since nothing of the label can finish without them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import store as st
from engine.errors import InputError

ACTIONS = ("cancel", "retry", "rm", "priority", "pause", "resume")
OWN_RUNS_ONLY = ("cancel", "rm", "pause")  # actions that would stop other labels' work on a shared run
CANCELLABLE = (st.QUEUED, st.BLOCKED, st.INTERRUPTED, *st.ACTIVE)
PAUSABLE = (st.QUEUED, st.BLOCKED, st.RUNNING)
# Per-run files an export leaves out: resume and model checkpoints, and the pools' images.
EXPORT_SKIP = ("checkpoints", "pool")


@dataclass
class Chosen:
    """The runs an action on an experiment (or label) applies to, and the runs of it kept because other labels
    or experiments share them."""

    runs: list[st.Run]
    kept: list[st.Run]


def _check_named(store: st.Store, experiment: str, label: str | None) -> list[tuple[str, str, str]]:
    """The experiment's links (of ``label`` only when given); one InputError line for an unknown name."""
    links = store.run_labels(experiment)
    if not links:
        known = ", ".join(e["name"] for e in store.experiments()) or "none"
        raise InputError(f"--experiment {experiment!r}: no runs of that experiment in {store.workspace} "
                         f"(experiments: {known})")
    if label is not None:
        mine = [link for link in links if link[1] == label]
        if not mine:
            labels = ", ".join(dict.fromkeys(link[1] for link in links))
            raise InputError(f"--label {label!r}: experiment {experiment!r} has no runs of it (labels: {labels})")
        return mine
    return links


def experiment_runs(store: st.Store, experiment: str, label: str | None, action: str) -> Chosen:
    """The runs ``action`` (:data:`ACTIONS`) applies to for ``experiment`` / ``label``: for cancel, pause and rm
    those no other label or experiment uses (linked to it, or waited for by a run outside them); for retry, resume
    and priority those named plus every run they wait for."""
    if action not in ACTIONS:
        raise ValueError(action)
    named = {run_id for _e, _l, run_id in _check_named(store, experiment, label)}
    if action in OWN_RUNS_ONLY:
        others = {run_id for e, lab, run_id in store.run_labels()
                  if run_id in named and (e != experiment or (label is not None and lab != label))}
        # A run that a run outside the selection waits for is used there too (the baseline's replicate 0, whose
        # classifier the GAN's FID features and the best/worst samplers of other labels need).
        parents = {r.id: r.parents for r in store.list_runs()}
        while True:
            needed = {p for rid, ps in parents.items() if rid not in named - others for p in ps} & (named - others)
            if not needed:
                break
            others |= needed
        runs = store.get_runs(sorted(named - others))
        return Chosen(sorted(runs, key=lambda r: r.seq), sorted(store.get_runs(sorted(others)), key=lambda r: r.seq))
    ids, frontier = set(named), list(named)
    while frontier:
        for parent in store.get_run(frontier.pop()).parents:
            if parent not in ids:
                ids.add(parent)
                frontier.append(parent)
    return Chosen(sorted(store.get_runs(sorted(ids)), key=lambda r: r.seq), [])


def act_on_experiment(store: st.Store, experiment: str, label: str | None, action: str, *,
                      priority: int = 0, restart: bool = False,
                      cancel: Callable[[st.Store, Sequence[str]], list[tuple[st.Run, str]]] | None = None,
                      pause: Callable[[st.Store, Sequence[str], bool], list[tuple[st.Run, str]]] | None = None,
                      ) -> tuple[list[tuple[str, str]], list[st.Run]]:
    """Do ``action`` on the runs of an experiment or label (:func:`experiment_runs`), all or nothing (one line
    when nothing applies); ``(run id, what happened)`` each, and the shared runs left alone. ``cancel`` and
    ``pause``: the versions that also signal running processes (``engine.runner.control.cancel_runs`` and
    ``pause_runs``; the store's own only record the intent)."""
    chosen = experiment_runs(store, experiment, label, action)
    what = f"experiment {experiment!r}" + (f" label {label!r}" if label else "")
    if action == "cancel":
        todo = [r.id for r in chosen.runs if r.status in CANCELLABLE]
        if not todo:
            raise InputError(f"{what}: nothing to cancel ({len(chosen.runs)} run(s) of its own, none waiting or "
                             f"running; {len(chosen.kept)} shared with other labels are left alone)")
        done = (cancel or (lambda s, ids: s.cancel_runs(ids)))(store, todo)
        return [(run.id, "cancelling" if new in st.ACTIVE else new) for run, new in done], chosen.kept
    if action == "retry":
        todo = [r.id for r in chosen.runs if r.status in st.RETRYABLE]
        if not todo:
            raise InputError(f"{what}: nothing to retry (no run failed, was cancelled or interrupted)")
        return [(run.id, new) for run, new in store.retry_runs(todo, restart=restart)], []
    if action in ("pause", "resume"):
        todo = [r.id for r in chosen.runs if r.status in (PAUSABLE if action == "pause" else (st.PAUSED,))]
        if not todo:
            raise InputError(f"{what}: nothing to {action} (" + ("no run of its own is waiting or running" if
                             action == "pause" else "no run of it, nor any it waits for, is paused") + ")")
        done = (pause or (lambda s, ids, p: s.pause_runs(ids, p)))(store, todo, action == "pause")
        return [(run.id, new) for run, new in done], chosen.kept
    if action == "priority":
        todo = [r.id for r in chosen.runs if r.status not in st.TERMINAL]
        if not todo:
            raise InputError(f"{what}: every run has ended; no priority to change")
        return [(rid, f"priority {priority}") for rid in store.set_priorities(todo, priority)], []
    removed = store.remove([r.id for r in chosen.runs]) if chosen.runs else []
    store.unlink_runs(experiment, label, drop_experiment=label is None)
    return [(rid, "removed") for rid in removed], chosen.kept


# ------------------------------------------------------------------------------------------ prune
def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def prune(store: st.Store, experiment: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
    """Drop what finished runs no longer need: the resume checkpoint (``checkpoints/last.pt``: optimiser,
    scheduler and RNG state; model and generator checkpoints stay) of every succeeded run, and the images of
    succeeded pools that no selection (nor classify run) uses, with their cached pHashes and helper scores.
    ``experiment``: only its runs. Returns ``{"dry_run", "freed_bytes", "items": [{run_id, what, path, bytes}]}``;
    the experiment grid makes a new pool when a later submission needs a dropped one."""
    from engine.runner.worker import CHECKPOINT
    from engine.synth.pool import POOL_DIR

    if experiment is not None:
        scope = {run_id for _e, _l, run_id in _check_named(store, experiment, None)}
    everything = store.list_runs()
    runs = [r for r in everything if r.status == st.SUCCEEDED and (experiment is None or r.id in scope)]
    used = {ref for r in everything for ref in _pool_refs(r)}
    items: list[dict[str, Any]] = []
    for run in runs:
        folder = store.run_dir(run.id)
        resume = folder / "checkpoints" / CHECKPOINT
        if resume.is_file():
            items.append({"run_id": run.id, "what": "resume checkpoint", "path": resume})
        if run.kind == "gan-pool" and run.id not in used and (folder / POOL_DIR).is_dir():
            items.append({"run_id": run.id, "what": "pool images", "path": folder / POOL_DIR})
            derived = store.workspace / "cache" / "synth" / run.id
            if derived.is_dir():
                items.append({"run_id": run.id, "what": "pool pHashes and scores", "path": derived})
    for item in items:
        item["bytes"] = _size(item["path"])
        if not dry_run:
            if item["path"].is_dir():
                shutil.rmtree(item["path"])
            else:
                item["path"].unlink(missing_ok=True)
        item["path"] = str(item["path"])
    return {"dry_run": dry_run, "freed_bytes": sum(i["bytes"] for i in items), "items": items}


def _pool_refs(run: st.Run) -> list[str]:
    """The pool runs a run's config reads: a selection's pools, a classify run's pool sources."""
    cfg = run.config
    if run.kind == "select":
        return [v for v in (cfg.get("pools") or {}).values() if isinstance(v, str)]
    if run.kind == "classify":
        return [s["pool"] for s in cfg.get("synthetic") or [] if isinstance(s, dict) and isinstance(s.get("pool"), str)]
    return []


# ------------------------------------------------------------------------------------------ export
def export(store: st.Store, experiment: str, out: Path) -> dict[str, Any]:
    """A light copy of an experiment in ``out`` (missing or empty): the store with its runs and the runs they
    depend on (rows, metrics, events, labels, the spec), and each run's folder without checkpoints and pool images
    (results, predictions, logs, sample grids, selections, audits); plus the workspace's split files. Opens with
    ``ganaug-tui --workspace OUT`` and ``ganaug results EXPERIMENT --workspace OUT``, also read-only. Built in a
    temporary sibling and renamed into place, so an interrupted export leaves nothing half-written."""
    from engine.fsutil import built_folder

    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: exists and is not an empty folder")
    if store.experiment_spec(experiment) is None:
        known = ", ".join(e["name"] for e in store.experiments()) or "none"
        raise InputError(f"unknown experiment {experiment!r} in {store.workspace} (experiments: {known})")
    runs = experiment_runs(store, experiment, None, "retry").runs  # its runs and every run they depend on
    with built_folder(out) as tmp:  # an interrupted export leaves nothing half-written
        store.copy_subset(tmp / st.DB_NAME, [r.id for r in runs], experiment)
        files = 1
        for run in runs:
            files += _copy_tree(store.run_dir(run.id), tmp / run.id)
        splits = store.workspace / "splits"
        if splits.is_dir():
            files += _copy_tree(splits, tmp / "splits")
    return {"experiment": experiment, "out": str(out), "runs": len(runs), "files": files, "bytes": _size(out)}


def _copy_tree(src: Path, dst: Path) -> int:
    """Copy ``src`` to ``dst`` without the :data:`EXPORT_SKIP` folders at its top; the number of files."""
    n = 0
    if not src.is_dir():
        return 0
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if rel.parts[0] in EXPORT_SKIP or not path.is_file() or path.name.startswith("."):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst / rel)
        n += 1
    dst.mkdir(parents=True, exist_ok=True)
    return n
