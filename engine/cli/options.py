"""Options every area of the CLI shares, declared once so they read and behave the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.errors import InputError
from engine.executors import ExecutorSpec
from engine.store import WORKSPACE_ENV

if TYPE_CHECKING:
    from engine.executors.slurm import SlurmSettings

Workspace = Annotated[Path | None, typer.Option(
    "--workspace", "-w", envvar=WORKSPACE_ENV, show_default="./runs",
    help="Run store folder (env GANAUG_WORKSPACE).")]
Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]

# Where runs execute (engine.executors): `ganaug run KIND` declares these, and so may any command that enqueues.
ExecutorName = Annotated[str, typer.Option(
    "--executor", help="Where the run executes: local (the engine's slots, or here) or slurm (a cluster job via "
                       "submitit; options from [executor.slurm] of experiments.toml and the flags below).")]
ExperimentsFile = Annotated[Path | None, typer.Option(
    "--file", help="The experiments file: an experiment's, and where [executor.slurm] is read (default "
                   "./experiments.toml, else the shipped one).")]
Cluster = Annotated[str | None, typer.Option(
    "--cluster", help="slurm, or local: submitit's LocalExecutor (jobs as local processes; tests and demos).")]
Partition = Annotated[str | None, typer.Option("--partition", help="Slurm partition.")]
TimeLimit = Annotated[str | None, typer.Option(
    "--time", help="Job time limit: minutes, MM:SS, HH:MM:SS or D-HH:MM:SS.")]
Gpus = Annotated[int | None, typer.Option("--gpus", help="GPUs per job (the run's device is cuda when > 0).")]
Cpus = Annotated[int | None, typer.Option("--cpus", help="CPUs per job (also the run's thread count).")]
Mem = Annotated[str | None, typer.Option("--mem", help="Memory per job, as Slurm's --mem (e.g. 32G).")]
Sbatch = Annotated[list[str] | None, typer.Option(
    "--sbatch", help="Another sbatch option KEY=VALUE (repeat), e.g. --sbatch account=derm --sbatch qos=long.")]


def executor_from_options(executor: str, file: Path | None, *, settings: SlurmSettings | None = None,
                          cluster: str | None = None, partition: str | None = None, time: str | None = None,
                          gpus: int | None = None, cpus: int | None = None, mem: str | None = None,
                          sbatch: list[str] | None = None) -> ExecutorSpec:
    """The ``ExecutorSpec`` the executor flags above describe (slurm: the file's table with the flags on top).
    ``settings``: ``[executor.slurm]`` as already read with the experiments file (an experiment's ``--file``,
    ``--set`` applied) instead of reading ``file``."""
    import json

    from engine.executors import executor_spec
    from engine.executors.slurm import slurm_settings, with_flags

    extra: dict[str, object] = {}
    for item in sbatch or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--sbatch {item!r}: expected KEY=VALUE (e.g. account=derm)")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        extra[key.strip()] = value if isinstance(value, str | int | float | bool) else raw
    flags = {"cluster": cluster, "partition": partition, "time": time, "gpus": gpus, "cpus": cpus, "mem": mem,
             "sbatch": extra or None}
    given = [f"--{k}" for k, v in flags.items() if v is not None]
    if executor != "slurm":
        if given or (file is not None and settings is None):
            raise InputError(f"{(given or ['--file'])[0]} applies to --executor slurm only")
        return executor_spec(executor)
    if settings is not None:
        return executor_spec("slurm", with_flags(settings, flags))
    return executor_spec("slurm", slurm_settings(file, flags))

def existing_path(path: str, flag: str) -> str:
    """``path`` resolved; InputError naming ``flag`` when nothing is there."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{flag}: {path}: no such file or directory")
    return str(p.resolve())


def data_keys(data: str | None, fmt: str | None, split_seed: int | None, split_file: str | None, *,
              required: bool = False, split_data: str | None = None) -> dict[str, Any] | None:
    """``--data ROOT --format F [--split-seed K | --split-file F]`` as a run config's ``data`` (the keys of a
    classify run's ``data``, which gan-train, gan-import, select and the audit share); None when neither
    ``--data`` nor ``--format`` is given and they are not ``required``."""
    if data is None and fmt is None:
        if required:
            raise InputError("--data and --format: the real training data are required")
        return None
    if data is None or fmt is None:
        raise InputError("--data and --format go together")
    if split_seed is not None and split_file is not None:
        raise InputError("--split-seed and --split-file exclude each other")
    out: dict[str, Any] = {"format": fmt, "root": existing_path(data, "--data")}
    if split_seed is not None:
        out["split_seed"] = split_seed
    if split_file is not None:
        out["split_file"] = existing_path(split_file, "--split-file")
    if split_data is not None:
        out["split_data"] = existing_path(split_data, "--split-data")
    return out
