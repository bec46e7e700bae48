"""``ganaug runs|queue|engine|run``: the run store, the queue and the background engine.

Only the store (sqlite3, json) is imported at module level; torch and friends load inside the worker.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from engine import store as st
from engine.cli.options import (
    Cluster,
    Cpus,
    ExecutorName,
    ExperimentsFile,
    Gpus,
    Json,
    Mem,
    Partition,
    Sbatch,
    TimeLimit,
    Workspace,
    executor_from_options,
)
from engine.errors import EXIT_OK, EXIT_RUN_FAILED, InputError, RunFailed
from engine.runner.control import cancel_runs, pause_runs

# States in which a run will not change again by itself (wait/follow stop there).
_DONE = (*st.TERMINAL, st.INTERRUPTED)
RunIds = Annotated[list[str], typer.Argument(help="Run ids, or any unambiguous part of one (ids start with a "
                                                 "timestamp, so a part is matched anywhere, not only as a prefix).")]
RunId = Annotated[str, typer.Argument(help="A run id, or any unambiguous part of one.")]

runs_app = typer.Typer(help="Inspect and manage runs.", no_args_is_help=True)
queue_app = typer.Typer(help="Pause or resume the whole queue.", no_args_is_help=True)
engine_app = typer.Typer(help="The background engine that executes queued runs.", no_args_is_help=True)


def _store(workspace: Path | None, *, readonly: bool = False, create: bool = False) -> st.Store:
    """The workspace's store; only commands that make runs or settings create one (``create``). Runs whose
    owner died are settled first (a writable store), so no command sees a dead run as running."""
    store = st.open_store(workspace, readonly=readonly, create=create)
    try:
        store.reap_dead_owners()
    except BaseException:
        store.close()
        raise
    return store


def _seconds(value: float | None, flag: str) -> None:
    """Refuse a negative, infinite or NaN duration option in one line."""
    if value is not None and not 0 <= value < float("inf"):
        raise InputError(f"{flag} must be a finite number of seconds >= 0 (got {value})")


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%m-%d %H:%M:%S") if t else "-"


def _progress_text(run: st.Run) -> str:
    p = run.progress
    if not p or not p.get("total"):
        return ""
    return f"{100 * p['done'] / p['total']:.0f}% {p.get('desc', '')}".strip()


# ------------------------------------------------------------------------------------------ runs
def show_doc(store: st.Store, run_id: str) -> dict[str, Any]:
    """What ``runs show --json`` prints for one run (also printed by commands that create a run, e.g. ``gan
    import --json``)."""
    from engine.runner.launch import scores

    run = store.get_run(run_id)
    return run.to_dict() | {"children": store.children(run.id), "run_dir": str(store.run_dir(run.id)),
                            "events": store.events(run.id)[-20:], **scores(store.run_dir(run.id))}


@runs_app.command("list")
def runs_list(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="Only these states (repeat).")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", "-k", help="Only these kinds (repeat).")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e")] = None,
    json_out: Json = False,
    workspace: Workspace = None,
) -> None:
    """List runs in creation order."""
    for s in status or []:
        if s not in st.STATES:
            raise InputError(f"--status {s!r}: expected one of {', '.join(st.STATES)}")
    with _store(workspace, readonly=True) as store:
        runs = store.list_runs(status=status, kind=kind, experiment=experiment)
    if json_out:
        print(json.dumps([r.to_dict() for r in runs]))
        return
    w = max([2, *(len(r.id) for r in runs)])
    k = max([4, *(len(r.kind) for r in runs)])
    lines = [f"{'ID':<{w}} {'KIND':<{k}} {'STATUS':<17} {'PRI':>3} {'SLOT':<10} {'STARTED':<14} PROGRESS"]
    lines += [f"{r.id:<{w}} {r.kind:<{k}} {r.status:<17} {r.priority:>3} {r.slot or '-':<10} "
              f"{_when(r.started):<14} {_progress_text(r)}" for r in runs]
    sys.stdout.write("\n".join(lines) + "\n")


@runs_app.command("show")
def runs_show(run_id: RunId, json_out: Json = False, workspace: Workspace = None) -> None:
    """Everything about one run: row, parents, children, last events, its AUCs once it has them."""
    with _store(workspace, readonly=True) as store:
        run = store.get_run(run_id)
        doc = show_doc(store, run.id)
    if json_out:
        print(json.dumps(doc))
        return
    for key in ("id", "kind", "label", "experiment", "status", "exit_reason", "priority", "attempt", "resumes",
                "executor", "job_id", "slot", "pid", "host", "git_commit", "config_hash", "seed", "parents",
                "children", "run_dir"):
        print(f"{key:<12} {doc[key]}")
    if doc["val_auc"] is not None:
        print(f"{'val_auc':<12} {doc['val_auc']:.4f}")
    for name, auc in (doc["auc"] or {}).items():
        print(f"{'auc ' + name:<12} {auc:.4f}")
    for key in ("created", "started", "ended", "heartbeat"):
        print(f"{key:<12} {_when(doc[key])}")
    print(f"{'progress':<12} {_progress_text(run) or '-'}")
    print(f"{'config':<12} {json.dumps(run.config, sort_keys=True)}")
    for ev in doc["events"]:
        print(f"  {_when(ev['time'])} {ev['kind']} {ev['message']}")


@runs_app.command("logs")
def runs_logs(
    run_id: RunId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    workspace: Workspace = None,
) -> None:
    """Print a run's log.txt (with -f: follow it until the run ends); for a cluster run, then its job's own
    output (what Slurm and submitit printed before and after the run, e.g. a node without the environment)."""
    from engine.executors.slurm import job_logs

    with _store(workspace, readonly=True) as store:
        run = store.get_run(run_id)
        path = store.run_dir(run.id) / "log.txt"
        pos = 0
        while True:
            # Look at the state before reading, so the bytes written just before the end are printed.
            ended = follow and store.get_run(run.id).status in _DONE
            pos = _print_from(path, pos)
            if not follow or ended:
                break
            time.sleep(0.2)
            store.reap_dead_owners()  # a run whose owner dies meanwhile ends: following stops there
        for job_file in job_logs(store.run_dir(run.id), store.get_run(run.id).job_id):
            sys.stdout.write(f"==> job output {job_file} <==\n")
            _print_from(job_file, 0)


def _print_from(path: Path, pos: int) -> int:
    """Print ``path`` from byte ``pos`` (nothing if it is missing); the new position."""
    if path.is_file():
        with open(path, "rb") as fh:
            fh.seek(pos)
            chunk = fh.read()
        pos += len(chunk)
        sys.stdout.write(chunk.decode("utf-8", "replace"))
        sys.stdout.flush()
    return pos


ExperimentOpt = Annotated[str | None, typer.Option("--experiment", "-e", help="Every run of this experiment "
                                                   "instead of ids (cancel, pause and rm: those no other experiment or "
                                                   "label shares; retry, resume and priority: also the runs they wait "
                                                   "for).")]
LabelOpt = Annotated[str | None, typer.Option("--label", "-l", help="With --experiment: only this label's runs.")]
OptionalRunIds = Annotated[list[str] | None, typer.Argument(help="Run ids, or any unambiguous part of one; or "
                                                                 "--experiment NAME [--label L].")]


def _by_experiment(run_ids: list[str] | None, experiment: str | None, label: str | None) -> bool:
    """Whether a command acts on an experiment (``--experiment``) or on ids; one line when both or neither."""
    if label is not None and experiment is None:
        raise InputError("--label goes with --experiment NAME")
    if experiment is not None and run_ids:
        raise InputError("give run ids or --experiment NAME, not both")
    if experiment is None and not run_ids:
        raise InputError("Missing argument 'RUN_IDS...' (or --experiment NAME)")
    return experiment is not None


def _experiment_action(store: st.Store, experiment: str, label: str | None, action: str, **kw: Any) -> None:
    from engine.workspace import act_on_experiment

    done, kept = act_on_experiment(store, experiment, label, action, **kw)
    for rid, what in done:
        _err(f"{rid}: {what}")
    if kept:
        _err(f"left alone: {len(kept)} run(s) that other labels or experiments share "
             f"({', '.join(r.id for r in kept[:3])}{', ...' if len(kept) > 3 else ''})")


@runs_app.command("cancel")
def runs_cancel(run_ids: OptionalRunIds = None, experiment: ExperimentOpt = None, label: LabelOpt = None,
                workspace: Workspace = None) -> None:
    """Cancel runs: waiting ones end now; running ones stop gracefully (checkpoint, then SIGKILL after grace)."""
    by_exp = _by_experiment(run_ids, experiment, label)
    with _store(workspace) as store:
        if by_exp:
            _experiment_action(store, experiment, label, "cancel", cancel=cancel_runs)  # type: ignore[arg-type]
            return
        for run, new in cancel_runs(store, run_ids or []):
            _err(f"{run.id}: {'cancelling' if new in st.ACTIVE else new}")


@runs_app.command("retry")
def runs_retry(
    run_ids: OptionalRunIds = None,
    restart: Annotated[bool, typer.Option("--restart", help="Drop checkpoints: start from scratch.")] = False,
    experiment: ExperimentOpt = None,
    label: LabelOpt = None,
    workspace: Workspace = None,
) -> None:
    """Re-queue failed/cancelled/interrupted/dependency-failed runs (attempt + 1; children wait again)."""
    by_exp = _by_experiment(run_ids, experiment, label)
    with _store(workspace) as store:
        if by_exp:
            _experiment_action(store, experiment, label, "retry", restart=restart)  # type: ignore[arg-type]
            return
        for run, new in store.retry_runs(run_ids or [], restart=restart):
            _err(f"{run.id}: {new}")


@runs_app.command("rm")
def runs_rm(run_ids: OptionalRunIds = None, experiment: ExperimentOpt = None, label: LabelOpt = None,
            workspace: Workspace = None) -> None:
    """Delete runs (row, metrics, events and folder). Refuses running ones. With --experiment, the experiment
    (or label) is forgotten too; runs it shares with others stay."""
    by_exp = _by_experiment(run_ids, experiment, label)
    with _store(workspace) as store:
        if by_exp:
            _experiment_action(store, experiment, label, "rm")  # type: ignore[arg-type]
            return
        for rid in store.remove(run_ids or []):
            _err(f"{rid}: removed")


@runs_app.command("priority")
def runs_priority(
    args: Annotated[list[str], typer.Argument(help="RUN_ID... PRIORITY, or PRIORITY with --experiment.",
                                              metavar="[RUN_ID...] PRIORITY")],
    experiment: ExperimentOpt = None,
    label: LabelOpt = None,
    workspace: Workspace = None,
) -> None:
    """Reorder: higher priority starts first (then first come, first served)."""
    *run_ids, value = args
    try:
        priority = int(value)
    except ValueError:
        raise InputError(f"priority {value!r}: expected an integer (the last argument)") from None
    by_exp = _by_experiment(run_ids, experiment, label)
    with _store(workspace) as store:
        if by_exp:
            _experiment_action(store, experiment, label, "priority", priority=priority)  # type: ignore[arg-type]
            return
        store.set_priorities(run_ids, priority)


@runs_app.command("pause")
def runs_pause(run_ids: OptionalRunIds = None, experiment: ExperimentOpt = None, label: LabelOpt = None,
               workspace: Workspace = None) -> None:
    """Hold waiting runs; suspend running ones (SIGSTOP) until `ganaug runs resume`. With --experiment, the runs
    no other experiment or label shares."""
    by_exp = _by_experiment(run_ids, experiment, label)
    with _store(workspace) as store:
        if by_exp:
            _experiment_action(store, experiment, label, "pause", pause=pause_runs)  # type: ignore[arg-type]
            return
        for run, _new in pause_runs(store, run_ids or [], True):
            _err(f"{run.id}: paused")


@runs_app.command("resume")
def runs_resume(run_ids: OptionalRunIds = None, experiment: ExperimentOpt = None, label: LabelOpt = None,
                workspace: Workspace = None) -> None:
    """Undo `ganaug runs pause`: held runs wait again, suspended ones continue (SIGCONT). With --experiment, also
    the paused runs it waits for."""
    by_exp = _by_experiment(run_ids, experiment, label)
    with _store(workspace) as store:
        if by_exp:
            _experiment_action(store, experiment, label, "resume", pause=pause_runs)  # type: ignore[arg-type]
            return
        for run, new in pause_runs(store, run_ids or [], False):
            _err(f"{run.id}: {new}")


@runs_app.command("wait")
def runs_wait(
    run_ids: RunIds,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Give up after this many seconds.")] = None,
    json_out: Json = False,
    workspace: Workspace = None,
) -> None:
    """Wait until the runs end; exit 1 if any did not succeed (or on timeout)."""
    from engine.runner.launch import outcome

    _seconds(timeout, "--timeout")
    deadline = None if timeout is None else time.monotonic() + timeout
    with _store(workspace, readonly=True) as store:
        ids = [r.id for r in store.get_runs(run_ids)]
        while True:
            runs = [store.get_run(r) for r in ids]
            pending = [r.id for r in runs if r.status not in _DONE]
            if not pending or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(0.2)
            store.reap_dead_owners()  # a run whose owner died ends here instead of being waited for forever
        docs = [outcome(store, r) for r in ids]
    if json_out:
        print(json.dumps(docs))
    if pending:
        raise RunFailed(f"timed out after {timeout} s waiting for {', '.join(pending)}")
    bad = [d for d in docs if d["status"] != st.SUCCEEDED]
    for d in docs:
        _err(f"{d['run_id']}: {d['status']}")
    if bad:
        raise typer.Exit(EXIT_RUN_FAILED)


# ------------------------------------------------------------------------------------------ queue
@queue_app.command("pause")
def queue_pause(workspace: Workspace = None) -> None:
    """No new runs start; running ones go on."""
    with _store(workspace, create=True) as store:
        store.set_queue_paused(True)
    _err("queue paused")


@queue_app.command("resume")
def queue_resume(workspace: Workspace = None) -> None:
    """Let the engine start queued runs again."""
    with _store(workspace, create=True) as store:
        store.set_queue_paused(False)
    _err("queue resumed")


# ------------------------------------------------------------------------------------------ engine
@engine_app.command("start")
def engine_start(
    cpu_slots: Annotated[int, typer.Option("--cpu-slots", help="Parallel runs when no GPU is visible.")] = 1,
    no_gpus: Annotated[bool, typer.Option("--no-gpus", help="Ignore GPUs: CPU slots only.")] = False,
    on_interrupted: Annotated[str, typer.Option(
        "--on-interrupted", help="Interrupted runs at start: resume | restart | leave.")] = "resume",
    grace: Annotated[float, typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL.")] = 30.0,
    json_out: Json = False,
    workspace: Workspace = None,
) -> None:
    """Start the detached engine (exactly one per store; a second start reports the running one)."""
    from engine.runner.daemon import start_engine

    ws = st.resolve_workspace(workspace)
    started, info = start_engine(ws, cpu_slots=cpu_slots, use_gpus=not no_gpus, policy=on_interrupted,
                                 grace=grace)
    if json_out:
        print(json.dumps({"started": started, **info}))
    slots = ", ".join(s["name"] for s in info.get("slots", []))
    _err(f"engine started (pid {info.get('pid')}, slots {slots})" if started
         else f"engine already running (pid {info.get('pid')})")


@engine_app.command("stop")
def engine_stop(
    timeout: Annotated[float | None, typer.Option("--timeout", help="Wait at most this long.")] = None,
    workspace: Workspace = None,
) -> None:
    """Graceful stop: runs checkpoint and end interrupted (re-queued at the next start per its policy)."""
    from engine.runner.daemon import stop_engine

    _seconds(timeout, "--timeout")
    info = stop_engine(st.resolve_workspace(workspace), timeout)
    _err("engine is not running" if info is None else f"engine (pid {info['pid']}) stopped")


@engine_app.command("status")
def engine_status(json_out: Json = False, workspace: Workspace = None) -> None:
    """Whether an engine serves the store, its slots, the queue."""
    from engine.runner.daemon import engine_info

    ws = st.resolve_workspace(workspace)
    info = engine_info(ws)
    with _store(ws, readonly=True) as store:
        counts = store.counts()
        running = store.list_runs(status=st.ACTIVE)
        paused = store.queue_paused()
    by_slot = {r.slot: r.id for r in running if info and r.engine_pid == info.get("pid")}
    doc: dict[str, Any] = {
        "running": info is not None, "pid": info.get("pid") if info else None, "workspace": str(ws),
        "queue_paused": paused, "queued": counts.get(st.QUEUED, 0), "blocked": counts.get(st.BLOCKED, 0),
        "running_runs": [r.id for r in running], "counts": counts,
        "slots": [s | {"run_id": by_slot.get(s["name"])} for s in (info or {}).get("slots", [])],
        "policy": info.get("policy") if info else None,
    }
    if json_out:
        print(json.dumps(doc))
        return
    state = f"running (pid {doc['pid']})" if doc["running"] else "not running"
    print(f"engine: {state}; queue {'paused' if paused else 'active'}; {doc['queued']} queued, "
          f"{doc['blocked']} blocked, {len(doc['running_runs'])} running")
    for s in doc["slots"]:
        print(f"  {s['name']:<8} {s['run_id'] or 'idle'}")


# ------------------------------------------------------------------------------------------ run
def parse_sets(sets: list[str], config: dict[str, Any]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (``engine.config.apply_sets``: JSON values, else strings)."""
    from engine.config import apply_sets

    return apply_sets(config, sets)


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"--config {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--config {path}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise InputError(f"--config {path}: expected a JSON object at the top level")
    return doc


def run_command(
    kind: Annotated[str, typer.Argument(help="Run kind (sleep, count, fail, classify, ...) or an experiment of "
                                             "experiments.toml (augmentation, anonymization, demo, ...).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="JSON file with the run's config.")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Override key.path=value (repeat): a key of the "
                                                   "run's config, or of experiments.toml for an experiment.")] = None,
    label: Annotated[str | None, typer.Option("--label", "-l")] = None,
    after: Annotated[list[str] | None, typer.Option("--after", help="Start only after this run succeeded.")] = None,
    priority: Annotated[int, typer.Option("--priority", "-p")] = 0,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Only enqueue (the engine runs it).")] = False,
    executor: ExecutorName = "local",
    file: ExperimentsFile = None,
    cluster: Cluster = None,
    partition: Partition = None,
    time_limit: TimeLimit = None,
    gpus: Gpus = None,
    cpus: Cpus = None,
    mem: Mem = None,
    sbatch: Sbatch = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Experiment: only this label (repeat); hidden "
                                                   "parents are planned too.")] = None,
    replicates: Annotated[int | None, typer.Option("--replicates", help="Experiment: replicates per configuration "
                                                   "(default: the experiment's).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Experiment: print the plan; create nothing, read no "
                                          "image file.")] = False,
    class_sizes: Annotated[str | None, typer.Option("--class-sizes", help="Experiment, with --dry-run: plan against "
                                                    "BENIGN:MELANOMA training images instead of the data (e.g. the "
                                                    "paper's 11684:3121).")] = None,
    mask_sizes: Annotated[str | None, typer.Option("--mask-sizes", help="With --class-sizes: BENIGN:MELANOMA "
                                                   "training masks of the translation GANs (paper: 1861:485).")
                          ] = None,
    json_out: Json = False,
    workspace: Workspace = None,
) -> None:
    """Run one run of a kind, or a whole experiment (its DAG of GANs, pools, selections and fine-tunes), in the
    foreground; or only enqueue it with --detach. With --executor slurm each run is a cluster job: in the foreground
    this command submits the jobs and watches them to their end."""
    from engine.runner.kinds import kind_names
    from engine.runner.launch import launch

    slurm_flags = {"cluster": cluster, "partition": partition, "time": time_limit, "gpus": gpus, "cpus": cpus,
                   "mem": mem, "sbatch": sbatch}
    if kind not in kind_names():
        from engine.cli.experiments import run_experiment

        for flag, value in (("--config", config), ("--label", label), ("--after", after)):
            if value:
                raise InputError(f"{flag} goes with a run kind; {kind!r} is not one ({', '.join(kind_names())})")
        run_experiment(kind, file=file, sets=sets or [], only=only, replicates=replicates, dry_run=dry_run,
                       class_sizes=class_sizes, mask_sizes=mask_sizes, detach=detach, json_out=json_out,
                       priority=priority, workspace=workspace, executor=executor, executor_flags=slurm_flags)
        return
    for flag, value in (("--only", only), ("--replicates", replicates), ("--dry-run", dry_run),
                        ("--class-sizes", class_sizes), ("--mask-sizes", mask_sizes)):
        if value:
            raise InputError(f"{flag} goes with an experiment; {kind!r} is a run kind")
    spec = executor_from_options(executor, file, **slurm_flags)
    cfg = parse_sets(sets or [], load_config(config))
    code = launch(kind, cfg, label=label, workspace=workspace, detach=detach, json_out=json_out,
                  priority=priority, parents=after or (), executor=spec)
    if code != EXIT_OK:
        raise typer.Exit(code)


def install(app: typer.Typer) -> None:
    """Add this area's commands and sub-apps to the root app."""
    app.add_typer(runs_app, name="runs")
    app.add_typer(queue_app, name="queue")
    app.add_typer(engine_app, name="engine")
    app.command("run")(run_command)
