"""Executors: where a ready run executes.

- ``local`` (the default): the engine's slots on this machine, or the foreground of ``ganaug run`` (``local.py``).
- ``slurm``: one Slurm job per run through submitit (``slurm.py``); ``cluster = "local"`` runs the very same code
  with submitit's LocalExecutor (local processes: tests and demos without a cluster).

Every executor runs the one worker code path (``engine.runner.worker.execute``); a worker writes only its run
folder and the head process (the engine, or ``ganaug run`` in the foreground) ingests it into the store. A run's
executor and its options are stored with it (``runs.executor``, ``runs.executor_opts``), so the engine dispatches
it as it was enqueued. What code that enqueues runs (the grid, ``launch``) calls::

    spec = executor_spec("slurm", slurm_settings(file, flags))   # [executor.slurm] of experiments.toml + flags
    with spec.targeting(kind):                                    # device checks ask the executor
        config = validate_config(kind, config, workspace)
    NewRun(kind, config, ..., **spec.fields(kind))                # the executor column and its options
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from engine.executors.slurm import SlurmSettings

EXECUTORS = ("local", "slurm")
# An execution that ended without writing its outcome, as an executor reports it: (run id, status to record, why).
Ended = tuple[str, str, str]

# The GPU view of the executor the runs being checked go to: (has CUDA, what to say when it has none).
_TARGET: ContextVar[tuple[bool, str] | None] = ContextVar("ganaug_executor_target", default=None)


@dataclass(frozen=True)
class ExecutorSpec:
    """Where runs go: ``name`` and, for slurm, its settings (``[executor.slurm]`` merged with flags)."""

    name: str = "local"
    slurm: SlurmSettings | None = None

    def options(self, kind: str) -> dict[str, Any] | None:
        """The stored options of a run of ``kind`` (slurm: the file's table with the kind's overrides applied)."""
        return None if self.slurm is None else self.slurm.for_kind(kind).to_json()

    def fields(self, kind: str) -> dict[str, Any]:
        """``NewRun`` / ``Store.create_run`` keyword arguments for a run of ``kind``."""
        return {"executor": self.name, "executor_opts": self.options(kind)}

    @contextmanager
    def targeting(self, kind: str) -> Iterator[None]:
        """While enqueueing runs of ``kind`` here: device checks ask this executor (a Slurm job may get a GPU
        this machine lacks, or none though this machine has one)."""
        if self.slurm is None:
            yield
            return
        opts = self.slurm.for_kind(kind)
        token = _TARGET.set((opts.gpus > 0, f"the slurm executor requests no GPU for {kind} runs (set gpus in "
                                            "[executor.slurm] or pass --gpus)"))
        try:
            yield
        finally:
            _TARGET.reset(token)


def executor_spec(name: str, slurm: SlurmSettings | None = None) -> ExecutorSpec:
    """The spec for ``--executor NAME``; slurm needs its settings (``engine.executors.slurm.slurm_settings``)."""
    if name not in EXECUTORS:
        raise InputError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if name == "slurm":
        if slurm is None:
            raise InputError("--executor slurm: no [executor.slurm] settings given")
        return ExecutorSpec(name, slurm)
    return ExecutorSpec(name)


def cuda_available() -> bool:
    """Whether the runs being checked (or executed here) see a CUDA GPU: the executor they are enqueued to says
    (``ExecutorSpec.targeting``); otherwise this machine does."""
    target = _TARGET.get()
    if target is not None:
        return target[0]
    import torch

    return torch.cuda.is_available()


def check_device(device: str) -> None:
    """InputError when ``device`` is cuda and the runs will see no GPU (asked of their executor; see above)."""
    if device != "cuda" or cuda_available():
        return
    target = _TARGET.get()
    why = target[1] if target is not None else "no CUDA GPU is visible"
    raise InputError(f"device: cuda requested but {why} (use --device cpu)")
