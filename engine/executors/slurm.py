"""The ``slurm`` executor: one Slurm job per run, submitted through submitit.

The job runs the one worker code path (``engine.runner.worker.execute``) on the run's folder, on the shared file
system; the head (the engine, or ``ganaug run`` in the foreground) ingests that folder and owns the store.

- Submission: a run is submitted once its parents succeeded (the store's DAG; no ``afterok``: a job that exits 0
  may hold a failed run, so only the head's ingested outcome may release a child). Options come from
  ``[executor.slurm]`` of ``experiments.toml`` (with per-kind tables) and flags, and are stored with the run.
- Time limit and preemption: Slurm signals USR2 ``signal_delay`` seconds before the limit (``--signal``); the worker
  stops gracefully (the kind checkpoints) and submitit's checkpointing hook (``JobTask.checkpoint``) requeues the
  same job, which resumes from the checkpoint: a resume, not a new attempt. A job that ends without an outcome
  (killed, preempted, node failure, timed out anyway) is judged by its state: resubmitted as a new job that resumes
  (up to ``max_resubmits`` times), failed, or cancelled.
- Cancel: ``scancel`` (Slurm sends SIGTERM, the worker stops gracefully, SIGKILL after its KillWait). Pause and
  resume: ``scancel --signal=STOP|CONT``.
- ``cluster = "local"``: the same code with submitit's LocalExecutor instead of its SlurmExecutor: jobs are local
  processes (tests and demos without a cluster; cancel is SIGINT to submitit's controller, as submitit does).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import procs
from engine import store as st
from engine.errors import InputError
from engine.executors import Ended
from engine.store.runfolder import HEARTBEAT, read_json

if TYPE_CHECKING:
    import submitit

CLUSTERS = ("slurm", "local")
SUBMITIT_DIR = "slurm"  # <run folder>/slurm/: submitit's pickles and the job's own stdout / stderr
STATE_POLL_S = float(os.environ.get("GANAUG_JOB_POLL", "30"))  # sacct at most this often
# A job that ended may have written its outcome a moment before: a network file system can take this long to show
# it to the head (attribute and lookup caches).
END_GRACE_S = float(os.environ.get("GANAUG_JOB_END_GRACE", "30"))
_KEYS = ("cluster", "partition", "time", "gpus", "cpus", "mem", "sbatch", "setup", "python", "signal_delay",
         "max_resubmits")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")
# Slurm job states (sacct), grouped by what the head does about a job that ended without writing its outcome.
_STILL_ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
                 "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "UNKNOWN", ""}
_FAILED = {"FAILED", "OUT_OF_MEMORY", "COMPLETED", "SPECIAL_EXIT", "DEADLINE"}


# ------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class SlurmOptions:
    """One run's job: what ``sbatch`` gets (or submitit's LocalExecutor, with ``cluster = "local"``)."""

    cluster: str = "slurm"
    partition: str | None = None
    time_min: float = 60.0  # the job's time limit, minutes
    gpus: int = 0  # GPUs per node (the run's device is cuda when > 0)
    cpus: int | None = None  # CPUs per task (also the run's OpenMP threads)
    mem: str | None = None  # Slurm's --mem, e.g. "32G"
    sbatch: dict[str, Any] = field(default_factory=dict)  # more sbatch options: account, qos, constraint ...
    setup: tuple[str, ...] = ()  # shell lines run before the job's python (module load, environment activation)
    python: str | None = None  # the python command on the nodes (default: this interpreter)
    signal_delay: int = 90  # seconds between USR2 (checkpoint, requeue) and the time limit
    max_resubmits: int = 10  # times a run is requeued or resubmitted before it stays interrupted

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["setup"] = list(self.setup)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> SlurmOptions:
        d = dict(d or {})
        d["setup"] = tuple(d.get("setup", ()))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"


@dataclass(frozen=True)
class SlurmSettings:
    """``[executor.slurm]``: options for every run, and per-kind overrides (``[executor.slurm.kind.gan-train]``)."""

    base: SlurmOptions = SlurmOptions()
    kinds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # kind -> checked overrides

    def for_kind(self, kind: str) -> SlurmOptions:
        return replace(self.base, **self.kinds.get(kind, {}))


def parse_time(value: Any, where: str) -> float:
    """A Slurm time limit (minutes as a number, or ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``) in minutes."""
    if isinstance(value, bool):
        raise InputError(f"{where}: expected a time limit, got {value!r}")
    if isinstance(value, int | float):
        minutes = float(value)
    else:
        m = _TIME.match(str(value).strip())
        if not m:
            raise InputError(f"{where}: {value!r} is not a Slurm time (minutes, MM:SS, HH:MM:SS or D-HH:MM:SS)")
        a, b, c = (None if m[k] is None else int(m[k]) for k in "abc")
        if m["d"] is not None:  # D-HH[:MM[:SS]]
            minutes = int(m["d"]) * 1440 + a * 60 + (b or 0) + (c or 0) / 60
        elif c is not None:  # HH:MM:SS
            minutes = a * 60 + b + c / 60
        elif b is not None:  # MM:SS
            minutes = a + b / 60
        else:
            minutes = float(a)
    if not minutes > 0 or not math.isfinite(minutes):
        raise InputError(f"{where}: the time limit must be positive, got {value!r}")
    return minutes


def _check(table: Mapping[str, Any], where: str, *, allow_kind: bool) -> dict[str, Any]:
    """The ``SlurmOptions`` fields a table sets, checked; one InputError line naming ``where.key`` otherwise."""
    out: dict[str, Any] = {}
    known = (*_KEYS, "kind") if allow_kind else _KEYS
    for key, value in table.items():
        at = f"{where}.{key}"
        if key not in known:
            raise InputError(f"{at}: unknown key (known: {', '.join(known)})")
        if key == "kind":
            continue
        if key == "cluster":
            if value not in CLUSTERS:
                raise InputError(f"{at}: expected one of {', '.join(CLUSTERS)}, got {value!r}")
            out["cluster"] = value
        elif key in ("partition", "python"):
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{at}: must be a non-empty string, got {value!r}")
            out[key] = value
        elif key == "time":
            out["time_min"] = parse_time(value, at)
        elif key in ("gpus", "cpus", "signal_delay", "max_resubmits"):
            low = 1 if key == "cpus" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{at}: must be an integer >= {low}, got {value!r}")
            out[key] = value
        elif key == "mem":
            text = f"{value}G" if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(text, str) or not _MEM.match(text):
                raise InputError(f"{at}: expected Slurm's --mem (e.g. 32G, 500M) or a number of GB, got {value!r}")
            out["mem"] = text.upper()
        elif key == "sbatch":
            if not isinstance(value, dict):
                raise InputError(f"{at}: must be a table of sbatch options (e.g. account = \"lab\")")
            for k, v in value.items():
                if not isinstance(v, str | int | float | bool):
                    raise InputError(f"{at}.{k}: must be a string, number or true, got {v!r}")
            out["sbatch"] = dict(value)
        elif key == "setup":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{at}: must be a list of shell lines")
            out["setup"] = tuple(value)
    return out


def parse_settings(table: Any, source: str) -> SlurmSettings:
    """``[executor.slurm]`` of the file ``source`` (``table``: its parsed TOML, or None when absent)."""
    if table is None:
        return SlurmSettings()
    where = f"{source}: executor.slurm"
    if not isinstance(table, dict):
        raise InputError(f"{where}: must be a table")
    base = SlurmOptions(**_check(table, where, allow_kind=True))
    kinds_table = table.get("kind", {})
    if not isinstance(kinds_table, dict):
        raise InputError(f"{where}.kind: must be a table of run kinds")
    kinds = {}
    for kind, overrides in kinds_table.items():
        if not isinstance(overrides, dict):
            raise InputError(f"{where}.kind.{kind}: must be a table")
        kinds[kind] = _check(overrides, f"{where}.kind.{kind}", allow_kind=False)
    return SlurmSettings(base, kinds)


def check_executor_table(doc: Mapping[str, Any], source: str) -> SlurmSettings:
    """``[executor]`` of a parsed experiments file: only ``slurm`` is a table there (``local`` takes no options)."""
    table = doc.get("executor")
    if table is None:
        return SlurmSettings()
    if not isinstance(table, dict):
        raise InputError(f"{source}: executor: must be a table")
    for name in table:
        if name != "slurm":
            raise InputError(f"{source}: executor.{name}: unknown executor table (known: slurm)")
    return parse_settings(table.get("slurm"), source)


def slurm_settings(file: Path | None = None, flags: Mapping[str, Any] | None = None) -> SlurmSettings:
    """``[executor.slurm]`` of the experiments file ``file`` (else ``./experiments.toml``, else the shipped file, as
    ``engine.config.read_experiments`` finds it), with ``flags`` (``--partition`` ... as table keys) on top."""
    from engine.config import EXPERIMENTS_FILE, shipped_experiments_text

    if file is None and (Path.cwd() / EXPERIMENTS_FILE).is_file():
        file = Path.cwd() / EXPERIMENTS_FILE
    if file is None:
        text, source = shipped_experiments_text(), f"<shipped {EXPERIMENTS_FILE}>"
    else:
        try:
            text, source = Path(file).read_text(encoding="utf-8"), str(file)
        except OSError as exc:
            raise InputError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None
    return with_flags(check_executor_table(doc, source), flags)


def with_flags(settings: SlurmSettings, flags: Mapping[str, Any] | None) -> SlurmSettings:
    """``settings`` with ``flags`` (``--partition`` ... as table keys; None: not given) on top, for every kind."""
    given = _check({k: v for k, v in (flags or {}).items() if v is not None}, "flags", allow_kind=False)
    if not given:
        return settings
    if "sbatch" in given:  # --sbatch adds to the file's sbatch options
        given["sbatch"] = {**settings.base.sbatch, **given["sbatch"]}
    # a flag wins over the file, for every kind
    kinds = {kind: {k: v for k, v in over.items() if k not in given} for kind, over in settings.kinds.items()}
    return SlurmSettings(replace(settings.base, **given), kinds)


# ------------------------------------------------------------------------------------------ the job
# ------------------------------------------------------------------------------------------ the head's side
def _submitit_executor(opts: SlurmOptions, folder: Path, run_id: str) -> submitit.Executor:
    """submitit's SlurmExecutor (or LocalExecutor for ``cluster = "local"``) set up with the run's options."""
    import submitit

    if opts.cluster == "local":
        ex: submitit.Executor = submitit.LocalExecutor(folder, max_num_timeout=opts.max_resubmits, python=opts.python)
        ex.update_parameters(timeout_min=opts.time_min, gpus_per_node=opts.gpus, signal_delay_s=opts.signal_delay,
                             setup=list(opts.setup))
        return ex
    try:
        ex = submitit.SlurmExecutor(folder, max_num_timeout=opts.max_resubmits, python=opts.python)
    except RuntimeError as exc:  # no srun here
        raise InputError(f"executor slurm: {exc} (run the head on a Slurm login node; cluster = \"local\" runs "
                         "jobs as local processes)") from None
    params: dict[str, Any] = {
        "job_name": f"ganaug-{run_id}"[:120], "time": max(1, math.ceil(opts.time_min)),
        "signal_delay_s": opts.signal_delay, "partition": opts.partition, "gpus_per_node": opts.gpus or None,
        "cpus_per_task": opts.cpus, "mem": opts.mem, "setup": list(opts.setup) or None,
        "additional_parameters": dict(opts.sbatch) or None}
    try:
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    except ValueError as exc:
        raise InputError(f"executor slurm: {' '.join(str(exc).split())}") from None
    return ex


def job_logs(run_dir: Path, job_id: str | None) -> list[Path]:
    """The job's own stdout / stderr files (what Slurm and submitit printed outside the run's log.txt)."""
    if not job_id:
        return []
    from submitit.core.utils import JobPaths

    paths = JobPaths(run_dir / SUBMITIT_DIR, job_id=job_id, task_id=0)
    return [p for p in (paths.stdout, paths.stderr) if p.is_file() and p.stat().st_size > 0]


def _job_pid(job_id: str) -> int | None:
    """The pid of submitit's local controller that is ``job_id`` (cluster = "local"), while it runs."""
    with contextlib.suppress(ValueError):
        pid = int(job_id)
        if procs.alive(pid, needle="submitit.local._local"):
            return pid
    return None


def cancel_job(run: st.Run) -> None:
    """``scancel`` the run's job (cluster = "local": SIGINT to submitit's controller, which is what its cancel
    does); nothing when it has none or it has ended."""
    if not run.job_id:
        return
    if SlurmOptions.from_json(run.executor_opts).cluster == "local":
        if (pid := _job_pid(run.job_id)) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        return
    _scancel(run.job_id)


def signal_job(run: st.Run, run_dir: Path, sig: int) -> None:
    """Send ``sig`` (SIGSTOP / SIGCONT: pause and resume) to the worker of the run's job: ``scancel --signal``
    (cluster = "local": the worker process its heartbeat names, when it is that process on this machine)."""
    if not run.job_id:
        return
    if SlurmOptions.from_json(run.executor_opts).cluster == "slurm":
        _scancel(run.job_id, f"--signal={signal.Signals(sig).name.removeprefix('SIG')}")
        return
    beat = read_json(run_dir / HEARTBEAT) or {}
    if beat.get("host") == socket.gethostname() and beat.get("job_id") == run.job_id and \
            procs.alive(beat.get("pid"), beat.get("started")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(beat["pid"]), sig)


def _scancel(job_id: str, *flags: str) -> None:
    try:
        subprocess.run(["scancel", *flags, job_id], check=True, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise InputError(f"scancel not found: cannot reach Slurm job {job_id} from this machine") from None
    except subprocess.CalledProcessError as exc:
        raise InputError(f"scancel {' '.join(flags)} {job_id}: {' '.join((exc.stderr or '').split())}") from None
    except subprocess.TimeoutExpired:
        raise InputError(f"scancel {job_id}: no answer from Slurm within 60 s") from None


class SlurmExecutor:
    """The head's side: submits claimed runs, watches their jobs, and judges those that end without an outcome."""

    def __init__(self, store: st.Store, say: Callable[[str], None], *, state_poll_s: float = STATE_POLL_S,
                 end_grace_s: float = END_GRACE_S) -> None:
        self.store, self.say, self.state_poll_s, self.end_grace_s = store, say, state_poll_s, end_grace_s
        self.jobs: dict[str, submitit.Job[Any]] = {}  # run id -> the job this process submitted or adopted
        self._ended_at: dict[str, float] = {}  # run id -> when its job was first seen ended without an outcome
        self._cancelled: set[tuple[str, str]] = set()  # (run, job) this head already scancel'ed
        self._last_sacct = float("-inf")

    def start(self, run_id: str, *, engine_pid: int | None = None, foreground_pid: int | None = None) -> bool:
        """Claim a queued run and submit its job; False if another process claimed it first. A submission Slurm
        refuses (a bad partition, an account it does not know) fails the run with sbatch's message."""
        import submitit

        from engine.executors.slurm_job import JobTask

        store = self.store
        if not store.claim(run_id, slot="slurm", engine_pid=engine_pid, foreground_pid=foreground_pid):
            return False
        run = store.get_run(run_id)
        opts = SlurmOptions.from_json(run.executor_opts)
        run_dir = store.run_dir(run_id)
        try:
            ex = _submitit_executor(opts, run_dir / SUBMITIT_DIR, run_id)
            job = ex.submit(JobTask(str(run_dir), opts.device, opts.cpus, run.resumes, opts.max_resubmits))
        except (InputError, submitit.core.utils.FailedJobError, OSError, subprocess.SubprocessError) as exc:
            reason = " ".join(str(exc).split())[:500]
            store.finish(run_id, st.FAILED, f"could not submit the job: {reason}")
            self.say(f"run {run_id} failed: could not submit the job: {reason}")
            return True
        self.jobs[run_id] = job
        store.set_job(run_id, job.job_id)
        self.say(f"run {run_id} submitted as {opts.cluster} job {job.job_id}")
        return True

    def forget(self, run_id: str) -> None:
        """The run left the active states: drop its job (a local cluster's controller is then reaped by Python)."""
        self.jobs.pop(run_id, None)
        self._ended_at.pop(run_id, None)
        self._cancelled = {c for c in self._cancelled if c[0] != run_id}

    def judge(self, runs: Sequence[st.Run]) -> list[Ended]:
        """Of these active runs (each with a job, whose folder was just ingested), those whose job ended without
        this execution's outcome, with what to record: a job is given ``END_GRACE_S`` to show its outcome first."""
        self._refresh_states(runs)
        out = []
        now = time.monotonic()
        for run in runs:
            state = self._state(run)
            if state in _STILL_ACTIVE:
                self._ended_at.pop(run.id, None)
                continue
            first = self._ended_at.setdefault(run.id, now)
            if now - first < (0.0 if SlurmOptions.from_json(run.executor_opts).cluster == "local"
                              else self.end_grace_s):
                folder = self.store.run_dir(run.id)
                with contextlib.suppress(OSError):  # a network file system looks again at a changed folder
                    folder.chmod(folder.stat().st_mode)
                continue
            del self._ended_at[run.id]
            self.jobs.pop(run.id, None)
            out.append((run.id, *_judgement(run, state)))
        return out

    def _refresh_states(self, runs: Sequence[st.Run]) -> None:
        import submitit

        slurm_runs = [r for r in runs if SlurmOptions.from_json(r.executor_opts).cluster == "slurm"]
        for run in slurm_runs:
            if run.id not in self.jobs or self.jobs[run.id].job_id != run.job_id:
                self.jobs[run.id] = submitit.SlurmJob(self.store.run_dir(run.id) / SUBMITIT_DIR, run.job_id)
        if slurm_runs and time.monotonic() - self._last_sacct >= self.state_poll_s:
            self._last_sacct = time.monotonic()
            submitit.SlurmJob.watcher.update()  # one sacct call for every job this process watches

    def _state(self, run: st.Run) -> str:
        """The job's state in Slurm's words (sacct); for cluster = "local": RUNNING, or how it ended."""
        import submitit
        from submitit.core.utils import JobPaths

        opts = SlurmOptions.from_json(run.executor_opts)
        job = self.jobs.get(run.id)
        if opts.cluster == "slurm":
            assert job is not None
            return (submitit.SlurmJob.watcher.get_state(job.job_id, mode="cache") or "UNKNOWN").split()[0]
        if isinstance(job, submitit.LocalJob) and job.job_id == run.job_id:  # submitted here: submitit polls it
            running = job.state == "RUNNING"
        else:  # adopted after a head restart: submitit's controller process is the job
            running = _job_pid(run.job_id or "") is not None
        if running:
            return "RUNNING"
        paths = JobPaths(self.store.run_dir(run.id) / SUBMITIT_DIR, job_id=run.job_id, task_id=0)
        return "COMPLETED" if paths.result_pickle.exists() else "KILLED"

    def cancel(self, runs: Sequence[st.Run]) -> None:
        """Forward requested cancels to the jobs (once per job): the CLI did already; this covers a cancel asked
        while the job was being submitted, or by a client that could not reach Slurm."""
        for run in runs:
            if run.job_id and (run.id, run.job_id) not in self._cancelled:
                self._cancelled.add((run.id, run.job_id))
                try:
                    cancel_job(run)
                except InputError as exc:
                    self.say(f"run {run.id}: {exc}")


def _judgement(run: st.Run, state: str) -> tuple[str, str]:
    """What to record for a run whose job ended in ``state`` without writing this execution's outcome."""
    job = f"{'local ' if SlurmOptions.from_json(run.executor_opts).cluster == 'local' else ''}job {run.job_id}"
    if run.cancel_requested:
        return st.CANCELLED, f"cancelled by user ({job} {state})"
    if state == "CANCELLED":
        return st.CANCELLED, f"{job} was cancelled outside ganaug (scancel)"
    if state in _FAILED:
        return st.FAILED, f"{job} ended {state} without an outcome (see `ganaug runs logs {run.id}`)"
    return st.INTERRUPTED, f"{job} ended {state} without an outcome"
