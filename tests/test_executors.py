"""The slurm executor through submitit's real code path: ``cluster = "local"`` runs each job as local processes with
submitit's LocalExecutor (a DAG in dependency order, ingested live; a job requeued in place through submitit's
checkpointing hook and a killed job resubmitted, both resuming from the checkpoint; pause and cancel reaching the
job; a failed parent; a classify run equal to a local one), and the Slurm submission itself against stand-in
``sbatch`` / ``sacct`` / ``scancel`` programs (the sbatch script built from ``[executor.slurm]``; a dead owner
judged by the job's state). Every engine, worker and job is killed in teardown."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import psutil
import pytest
from engine_helpers import (
    FAST_ENV,
    GANAUG,
    cli,
    default_sigint,
    status_of,
    wait_for,
    wait_status,
)

from engine import store as st
from engine.errors import InputError
from engine.executors import ExecutorSpec, executor_spec
from engine.executors.slurm import SlurmOptions, SlurmSettings, parse_time, slurm_settings

LOCAL_CLUSTER = ExecutorSpec("slurm", SlurmSettings(SlurmOptions(cluster="local", time_min=10)))


def worker_pid(ws: Path, run_id: str, resumes: int = 0) -> int:
    """The pid of the worker process running the run (from its heartbeat), once one with ``resumes`` runs."""
    def beat() -> int | None:
        try:
            doc = json.loads((ws / run_id / "heartbeat.json").read_text())
        except (OSError, ValueError):
            return None
        return doc["pid"] if doc["resumes"] == resumes and psutil.pid_exists(doc["pid"]) else None

    return wait_for(beat, what=f"a worker of {run_id} at resume {resumes}")


def ended(pid: int) -> bool:
    """The process is gone (or a zombie its parent has not reaped yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def n_metrics(ws: Path, run_id: str) -> int:
    with st.open_store(ws) as s:
        return len(s.metrics(run_id))


def test_a_dag_runs_as_cluster_jobs_in_dependency_order_ingested_like_local_runs(ws):
    with st.open_store(ws) as s:
        a, c, e, f, g = s.create_runs([
            st.NewRun("count", {"n": 5, "interval": 0.02}, **LOCAL_CLUSTER.fields("count")),
            st.NewRun("sleep", {"seconds": 0}, parents=[0], **LOCAL_CLUSTER.fields("sleep")),
            st.NewRun("fail", {"steps": 2}, **LOCAL_CLUSTER.fields("fail")),
            st.NewRun("sleep", {"seconds": 0}, parents=[2], **LOCAL_CLUSTER.fields("sleep")),
            st.NewRun("sleep", {"seconds": 600}, **LOCAL_CLUSTER.fields("sleep")),
        ])
    # one through the CLI: its flags and --after
    b = cli(ws, "run", "count", "--set", "n=4", "--after", a, "--detach", "--executor", "slurm", "--cluster",
            "local", "--time", "10:00").stdout.strip()
    with st.open_store(ws) as s:
        d = s.create_run("count", {"n": 3}, parents=[b, c], **LOCAL_CLUSTER.fields("count"))
    cli(ws, "engine", "start")
    wait_status(ws, g, (st.RUNNING,))
    worker_pid(ws, g)
    cli(ws, "runs", "cancel", g)
    cli(ws, "runs", "wait", a, b, c, d, e, f, g, "--timeout", "90", check=False)
    with st.open_store(ws) as s:
        runs = {r.id: r for r in s.list_runs()}
        for rid in (a, b, c, d):
            assert runs[rid].status == st.SUCCEEDED, (rid, runs[rid].exit_reason)
        assert runs[e].status == st.FAILED and "fails on purpose" in runs[e].exit_reason
        assert runs[f].status == st.DEPENDENCY_FAILED and runs[f].job_id is None  # never submitted
        assert runs[g].status == st.CANCELLED and runs[g].exit_reason.startswith("cancelled by user")
        for rid in (a, b, c, d, e, g):
            assert (runs[rid].executor, runs[rid].slot) == ("slurm", "slurm") and runs[rid].job_id
            assert f"job {runs[rid].job_id}" in [ev["message"] for ev in s.events(rid)]
        assert runs[b].executor_opts["time_min"] == 10 and runs[b].executor_opts["cluster"] == "local"
        # a child's job starts only after its parents' outcomes were ingested
        assert runs[b].started >= runs[a].ended and runs[c].started >= runs[a].ended
        assert runs[d].started >= max(runs[b].ended, runs[c].ended)
        # metrics came through the run folder into the store, exactly once each
        count = s.metrics(a, "count")
        assert count["step"].tolist() == list(range(5)) and count["value"].tolist() == [k * k for k in range(5)]
        lines = [json.loads(x) for x in (ws / a / "metrics.jsonl").read_text().splitlines()]
        assert [(n, stp, v) for n, stp, v, _ in lines] == [("count", k, float(k * k)) for k in range(5)]
        assert s.metrics(e, "step")["step"].tolist() == [0, 1]
        assert runs[a].progress == {**runs[a].progress, "done": 5, "total": 5}
    job = int(runs[g].job_id)  # the cancelled job's process ends (its outcome may be recorded a moment before)
    wait_for(lambda: ended(job), what=f"job {job} to end")
    listed = {r["id"]: r for r in json.loads(cli(ws, "runs", "list", "--json").stdout)}
    assert listed[d]["executor"] == "slurm" and listed[d]["job_id"] == runs[d].job_id
    logs = cli(ws, "runs", "logs", a).stdout
    assert f"run {a} succeeded" in logs and "==> job output" in logs and "Job completed successfully" in logs


def test_preempted_requeued_and_killed_jobs_resume_from_their_checkpoint_as_resumes(ws):
    n = 40
    with st.open_store(ws) as s:
        rid = s.create_run("count", {"n": n, "interval": 0.05, "checkpoint_every": 4},
                           **LOCAL_CLUSTER.fields("count"))
    cli(ws, "engine", "start")
    first = worker_pid(ws, rid)
    wait_for(lambda: n_metrics(ws, rid) >= 8, what="metrics of the first job")
    # the time-limit / preemption signal: the run checkpoints and submitit's hook requeues the same job
    os.kill(first, signal.SIGUSR2)
    second = worker_pid(ws, rid, resumes=1)
    with st.open_store(ws) as s:
        job = s.get_run(rid).job_id
        wait_for(lambda: s.get_run(rid).resumes == 1, what="the requeue counted as a resume")
        assert s.get_run(rid).status == st.RUNNING and s.get_run(rid).job_id == job  # the same job, in place
    # pause and resume reach the job's worker
    cli(ws, "runs", "pause", rid)
    wait_for(lambda: psutil.Process(second).status() == psutil.STATUS_STOPPED, what="the worker stopped")
    cli(ws, "runs", "resume", rid)
    wait_for(lambda: psutil.Process(second).status() != psutil.STATUS_STOPPED, what="the worker continued")
    wait_for(lambda: n_metrics(ws, rid) >= 20, what="metrics of the requeued job")
    os.kill(second, signal.SIGKILL)  # as a node failure would end it: no outcome written
    assert wait_status(ws, rid, (st.SUCCEEDED, st.FAILED), timeout=60) == st.SUCCEEDED
    with st.open_store(ws) as s:
        run = s.get_run(rid)
        events = s.events(rid)
        assert s.metrics(rid, "count")["step"].tolist() == list(range(n))  # no gap, no duplicate
    assert (run.attempt, run.resumes) == (1, 2) and run.job_id != job  # resubmitted as a new job
    submitted = [ev["message"] for ev in events if ev["kind"] == "submitted"]
    assert submitted == [f"job {job}", f"job {run.job_id}"]
    assert any(ev["kind"] == "resume" and "requeued" in ev["message"] for ev in events)
    assert any(ev["kind"] == "interrupted" and "without an outcome" in ev["message"] for ev in events)
    log = (ws / rid / "log.txt").read_text()
    assert log.count("resuming from step") == 2 and "(requeued)" in log
    assert 0 < json.loads((ws / rid / "result.json").read_text())["resumed_from"] < n


def test_cluster_jobs_outlive_a_killed_engine_and_the_next_one_watches_them(ws):
    from engine.runner.daemon import engine_info

    with st.open_store(ws) as s:
        rid = s.create_run("count", {"n": 30, "interval": 0.05}, **LOCAL_CLUSTER.fields("count"))
    cli(ws, "engine", "start")
    worker = worker_pid(ws, rid)
    wait_for(lambda: n_metrics(ws, rid) >= 5, what="first metrics")
    os.kill(engine_info(ws)["pid"], signal.SIGKILL)
    wait_for(lambda: engine_info(ws) is None, what="the engine to be gone")
    cli(ws, "runs", "list")  # every store command settles dead owners: the job is the owner, alive
    assert status_of(ws, rid) == st.RUNNING and psutil.pid_exists(worker)
    cli(ws, "engine", "start")
    assert wait_status(ws, rid, (st.SUCCEEDED, st.FAILED, st.INTERRUPTED)) == st.SUCCEEDED
    with st.open_store(ws) as s:
        run = s.get_run(rid)
        assert s.metrics(rid, "count")["step"].tolist() == list(range(30))
    assert (run.attempt, run.resumes) == (1, 0)  # never stopped: nothing to resume


def test_ctrl_c_of_a_foreground_cluster_run_cancels_its_job(ws):
    env = os.environ | FAST_ENV | {"GANAUG_WORKSPACE": str(ws)}
    fg = subprocess.Popen([GANAUG, "run", "sleep", "--set", "seconds=600", "--executor", "slurm", "--cluster",
                           "local", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=default_sigint)
    try:
        with st.open_store(ws) as s:
            rid = wait_for(lambda: [r.id for r in s.list_runs(status=st.RUNNING) if r.job_id], what="the job")[0]
        worker = worker_pid(ws, rid)
        fg.send_signal(signal.SIGINT)
        out, err = fg.communicate(timeout=60)
    finally:
        fg.kill()
    doc = json.loads(out)
    assert fg.returncode == 1 and doc["status"] == st.CANCELLED and "cancelling the jobs" in err
    wait_for(lambda: ended(worker), what="the job's worker to end")


@pytest.fixture(scope="module")
def classify_config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from test_train_e2e import write_csv_set

    root = write_csv_set(tmp_path_factory.mktemp("cls") / "train", 64, 1)
    return {"data": {"format": "csv", "root": str(root)}, "device": "cpu", "tta": {"replicas": 2},
            "model": {"name": "test_resnet", "res": 32, "pretrained": False},
            "optim": {"max_epochs": 1, "batch_size": 16, "lr": 0.05}}


def test_a_classify_job_gives_the_results_of_a_local_run(ws, tmp_path, classify_config):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(classify_config))
    env = {"HF_HUB_OFFLINE": "1"}
    here = json.loads(cli(ws, "run", "classify", "-c", str(cfg), "--json", env=env, timeout=300).stdout)
    job = json.loads(cli(ws, "run", "classify", "-c", str(cfg), "--json", "--executor", "slurm", "--cluster", "local",
                         env=env, timeout=300).stdout)
    assert here["status"] == job["status"] == st.SUCCEEDED
    assert job["auc"] == here["auc"] and job["val_auc"] == here["val_auc"]
    assert (Path(job["run_dir"]) / "predictions.csv").read_bytes() == \
        (Path(here["run_dir"]) / "predictions.csv").read_bytes()
    with st.open_store(ws) as s:
        assert s.get_run(job["run_id"]).executor == "slurm" and s.get_run(here["run_id"]).executor == "local"
        series = [s.metrics(r).query("name != 'images_per_s'")[["name", "step", "value"]].values.tolist()
                  for r in (here["run_id"], job["run_id"])]  # every metric but the speed, bit for bit
    assert series[0] == series[1] and len(series[0]) > 3


def test_device_checks_ask_the_executor(classify_config, tmp_path):
    from engine.runner.kinds import validate_config

    cfg = classify_config | {"device": "cuda"}
    gpu = executor_spec("slurm", SlurmSettings(SlurmOptions(gpus=1), {"gan-train": {"gpus": 0}}))
    with gpu.targeting("classify"):  # a GPU job: fine though this machine may have none
        assert validate_config("classify", cfg, tmp_path)["device"] == "cuda"
    with pytest.raises(InputError, match="slurm executor requests no GPU for gan-train runs"), \
            gpu.targeting("gan-train"):
        from engine.executors import check_device

        check_device("cuda")
    cpu = executor_spec("slurm", SlurmSettings(SlurmOptions(gpus=0)))
    with pytest.raises(InputError, match="requests no GPU"), cpu.targeting("classify"):
        validate_config("classify", cfg, tmp_path)


# ------------------------------------------------------------------------------------------ the Slurm side
FAKE_SLURM = {
    "srun": "#!/bin/sh\nexit 0\n",
    "sbatch": """#!/bin/sh
n=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 4242)
echo $((n + 1)) > "$FAKE_SLURM/next"
cp "$1" "$FAKE_SLURM/sbatch-$n.sh"
echo "Submitted batch job $n"
""",
    "sacct": """#!/bin/sh
echo "JobID|State|NodeList"
while [ $# -gt 0 ]; do
  if [ "$1" = "-j" ]; then echo "$2|$(cat "$FAKE_SLURM/state-$2" 2>/dev/null || echo RUNNING)|node7"; shift; fi
  shift
done
""",
    "scancel": "#!/bin/sh\necho \"$@\" >> \"$FAKE_SLURM/scancel.log\"\n",
}


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for Slurm's commands on PATH: sbatch keeps the script and answers a job id, sacct reports the
    state written to ``state-<id>``, scancel logs its arguments. No job runs: the submission is what is tested."""
    home = tmp_path / "fake-slurm"
    home.mkdir()
    for name, text in FAKE_SLURM.items():
        (home / name).write_text(text)
        (home / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{home}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(home))
    return home


EXPERIMENTS = """
[executor.slurm]
partition = "gpu"
time = "1-02:00:00"
gpus = 1
cpus = 6
mem = "48G"
signal_delay = 120
max_resubmits = 1
setup = ["module load cuda/12.4"]
sbatch = { account = "derm-lab", qos = "normal" }

[executor.slurm.kind.sleep]
time = "30"
partition = "debug"
"""


def test_slurm_jobs_are_submitted_with_the_experiment_files_options_and_judged_by_their_state(tmp_path, fake_slurm,
                                                                                             monkeypatch):
    from engine.runner.control import cancel_runs
    from engine.runner.head import Head

    monkeypatch.setattr("engine.runner.head.CLUSTER_INGEST_S", 0.0)

    toml = tmp_path / "experiments.toml"
    toml.write_text(EXPERIMENTS)
    spec = executor_spec("slurm", slurm_settings(toml, {"cpus": 8, "sbatch": {"constraint": "a100"}}))
    with st.open_store(tmp_path / "ws") as s:
        rid = s.create_run("count", {"n": 3}, **spec.fields("count"))
        short = s.create_run("sleep", {}, **spec.fields("sleep"))
        head = Head(s, say=lambda msg: None)
        head.slurm.state_poll_s = head.slurm.end_grace_s = 0.0
        assert head.slurm.start(rid, engine_pid=None) and head.slurm.start(short, engine_pid=None)
        assert (s.get_run(rid).job_id, s.get_run(short).job_id) == ("4242", "4243")
        script = (fake_slurm / "sbatch-4242.sh").read_text()
        for line in ("#SBATCH --partition=gpu", "#SBATCH --time=1560", "#SBATCH --gpus-per-node=1",
                     "#SBATCH --cpus-per-task=8", "#SBATCH --mem=48G", "#SBATCH --account=derm-lab",
                     "#SBATCH --qos=normal", "#SBATCH --constraint=a100", "#SBATCH --signal=USR2@120",
                     f"#SBATCH --job-name=ganaug-{rid}", "module load cuda/12.4"):
            assert line in script.splitlines(), line
        assert "-m submitit.core._submit" in script and f"{s.run_dir(rid)}/slurm" in script
        short_script = (fake_slurm / "sbatch-4243.sh").read_text()
        assert "#SBATCH --partition=debug" in short_script and "#SBATCH --time=30" in short_script
        # the owner of a submitted run is its job: no local process judges it
        assert s.reap_dead_owners() == [] and s.get_run(rid).status == st.RUNNING
        # a node failure: interrupted, then resubmitted (the old job cancelled in case Slurm requeues it itself)
        (fake_slurm / "state-4242").write_text("NODE_FAIL")
        head.watch(s.list_runs(status=st.ACTIVE))
        run = s.get_run(rid)
        assert run.status == st.QUEUED and run.resumes == 1 and "4242" in (fake_slurm / "scancel.log").read_text()
        assert head.slurm.start(rid, engine_pid=None) and s.get_run(rid).job_id == "4244"
        # preempted again: max_resubmits (1) reached, it stays interrupted for the user
        (fake_slurm / "state-4244").write_text("PREEMPTED")
        head.watch(s.list_runs(status=st.ACTIVE))
        run = s.get_run(rid)
        assert run.status == st.INTERRUPTED and "PREEMPTED" in run.exit_reason and run.resumes == 1
        # `runs cancel` forwards to scancel; the job's end then settles the run cancelled
        cancel_runs(s, [short])
        assert "4243" in (fake_slurm / "scancel.log").read_text().split()
        (fake_slurm / "state-4243").write_text("CANCELLED by 1000")
        head.watch(s.list_runs(status=st.ACTIVE))
        assert s.get_run(short).status == st.CANCELLED
        # a job that failed outside the run (a node without the environment): failed, pointing at its logs
        again = s.create_run("count", {"n": 3}, **spec.fields("count"))
        head.slurm.start(again, engine_pid=None)
        (fake_slurm / f"state-{s.get_run(again).job_id}").write_text("FAILED")
        head.watch(s.list_runs(status=st.ACTIVE))
        assert s.get_run(again).status == st.FAILED and "runs logs" in s.get_run(again).exit_reason


def test_executor_settings_are_checked_in_one_line(tmp_path):
    assert parse_time("1-02:00:00", "t") == 1560 and parse_time("90", "t") == 90 and parse_time("0:30", "t") == 0.5
    assert parse_time(45, "t") == 45 and parse_time("02:30:00", "t") == 150
    bad = {'time = "soon"': "executor.slurm.time", "gpus = -1": "executor.slurm.gpus", 'mem = "lots"':
           "executor.slurm.mem", 'colour = "red"': "executor.slurm.colour: unknown key", 'cluster = "pbs"':
           "executor.slurm.cluster", "[executor.slurm.kind.classify]\nkind = 'x'":
           "executor.slurm.kind.classify.kind: unknown key", "[executor.pbs]": "executor.pbs: unknown executor"}
    for text, where in bad.items():
        path = tmp_path / "experiments.toml"
        path.write_text(f"[executor.slurm]\n{text}\n")
        with pytest.raises(InputError, match=where.replace(".", r"\.")):
            slurm_settings(path)
    proc = subprocess.run([GANAUG, "run", "sleep", "--partition", "gpu"], capture_output=True, text=True,
                          env=os.environ | {"GANAUG_WORKSPACE": str(tmp_path / "w")})
    assert proc.returncode == 2 and "--partition applies to --executor slurm only" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_database_can_live_apart_from_the_run_folders(tmp_path):
    ws, local = tmp_path / "shared" / "ws", tmp_path / "head-disk"
    ws.mkdir(parents=True)
    (ws / "workspace.toml").write_text(f'db_path = "{local}/paper.db"\n')
    out = json.loads(cli(ws, "run", "count", "--set", "n=3", "--set", "interval=0", "--json").stdout)
    assert out["status"] == st.SUCCEEDED
    assert (local / "paper.db").is_file() and not (ws / st.DB_NAME).exists()
    assert (ws / out["run_id"] / "metrics.jsonl").is_file()
    with st.open_store(ws) as s:
        assert s.metrics(out["run_id"], "count")["step"].tolist() == [0, 1, 2]
    cli(ws, "engine", "start")
    try:
        assert (local / "paper.db.engine.lock").is_file() and (local / "paper.db.engine.pid").is_file()
        assert json.loads(cli(ws, "engine", "status", "--json").stdout)["running"] is True
    finally:
        cli(ws, "engine", "stop")
    # a read-only snapshot of the database opened elsewhere, with the shared run folders
    snap = tmp_path / "snap.db"
    with sqlite3.connect(local / "paper.db") as src, sqlite3.connect(snap) as dst:
        src.backup(dst)
    listed = json.loads(cli(ws, "runs", "list", "--json", env={"GANAUG_DB": str(snap)}).stdout)
    assert [r["id"] for r in listed] == [out["run_id"]]
    (ws / st.DB_NAME).write_bytes(b"")  # a second database in the workspace: ambiguous, refused
    proc = cli(ws, "runs", "list", check=False)
    assert proc.returncode == 2 and "db_path" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
