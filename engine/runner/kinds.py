"""Registry of run kinds: a kind name maps to ``fn(ctx: RunContext) -> None``.

Run kinds are what a worker executes (``classify`` now; ``gan-train``, ``gan-pool`` and ``select``
later). Built-in kinds are imported lazily by name so that ``ganaug runs list`` never pays for
importing torch.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol


class RunContext(Protocol):
    """What a run kind gets from the worker; the only channel between a kind and the store."""

    run_id: str
    label: str | None  # the run's label and experiment, from its store row (never part of the config)
    experiment: str | None
    run_dir: Path  # runs/<run-id>/ : write artefacts here (atomically)
    config: dict[str, Any]  # the full resolved config of the run (also in run.json)
    seed: int
    device: str  # "cuda" when the run's slot has a GPU, else "cpu"
    workspace: Path  # the store's workspace (shared caches live under it)
    log: logging.Logger  # goes to runs/<run-id>/log.txt (and the console in foreground mode)

    def metric(self, name: str, value: float, step: int) -> None:
        """Record one point of a metric series (batched; (name, step) is unique: a rewrite replaces)."""

    def metrics(self, values: dict[str, float], step: int) -> None:
        """Record several metrics at the same step."""

    def progress(self, done: int, total: int, desc: str = "") -> None:
        """Progress inside the current phase (cheap; rate-limited by the context)."""

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically write ``state`` (torch-serialisable) as the run's resume point."""

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint written by this run (from an earlier attempt), or None."""

    def stop_requested(self) -> bool:
        """True once a graceful stop was asked (cancel / engine shutdown): checkpoint and return."""


KindFn = Callable[[RunContext], None]
# Checks (and normalises) a run's config before it is enqueued into the store of a workspace (given: a config may
# name another run's folder), raising InputError: bad input is refused with exit code 2 and nothing created,
# instead of a run that fails later in the engine.
Validator = Callable[[dict[str, Any], Path], dict[str, Any]]

_REGISTRY: dict[str, KindFn] = {}
_VALIDATORS: dict[str, Validator] = {}
# Kinds shipped with ganaug, imported on first use: kind name -> module that registers it.
_BUILTIN: dict[str, str] = {
    "sleep": "engine.runner.testkinds",
    "count": "engine.runner.testkinds",
    "fail": "engine.runner.testkinds",
    "classify": "engine.train.kind",
    "gan-train": "engine.gans.kind",
    "gan-pool": "engine.gans.kind",
    "gan-import": "engine.gans.kind",
    "select": "engine.synth.select",
}


def register_kind(name: str, *, validate: Validator | None = None) -> Callable[[KindFn], KindFn]:
    """Decorator: ``@register_kind("classify", validate=check)`` makes ``fn`` the executor of that kind and
    ``check`` the gate its configs pass before they are enqueued."""

    def deco(fn: KindFn) -> KindFn:
        _REGISTRY[name] = fn
        if validate is not None:
            _VALIDATORS[name] = validate
        return fn

    return deco


def validate_config(name: str, config: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """The config a run of kind ``name`` in ``workspace`` will be given, checked up front (InputError on bad input)."""
    get_kind(name)  # registers a built-in kind (and its validator) on first use
    check = _VALIDATORS.get(name)
    return check(config, workspace) if check is not None else config


# Runs that do not exist yet but will be created in the same batch as the config being validated (their
# ``engine.store.batch_ref`` placeholders): the experiment grid validates a whole DAG before it creates any of it.
_PLANNED: ContextVar[frozenset[str]] = ContextVar("ganaug_planned_runs", default=frozenset())


@contextmanager
def planned_runs(refs: Collection[str]) -> Iterator[None]:
    """Validators called inside accept these run references as runs of the workspace (not finished yet)."""
    token = _PLANNED.set(frozenset(refs))
    try:
        yield
    finally:
        _PLANNED.reset(token)


def run_exists(workspace: Path, run_id: str) -> bool:
    """Whether a config may name ``run_id``: a run folder of the workspace, or a run planned in the same batch.
    A validator checks a referenced run through this (never by its folder alone)."""
    if not run_id or Path(run_id).name != run_id:
        return False
    return run_id in _PLANNED.get() or (Path(workspace) / run_id).is_dir()


def get_kind(name: str) -> KindFn:
    """The executor of ``name``; raises KeyError with the known names if there is none."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown run kind {name!r}; known: {', '.join(kind_names())}") from None


def kind_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))
