"""``ganaug run`` in the foreground (no daemon), the runs/queue commands, JSON output, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_engine import FAST_ENV, GANAUG, cli, default_sigint

from engine import store as st
from engine.runner.daemon import engine_info
from engine.store.ids import slugify


def one_json(proc: subprocess.CompletedProcess[str]) -> object:
    """stdout must be exactly one JSON document."""
    return json.loads(proc.stdout)


def test_foreground_run_needs_no_engine(tmp_path):
    ws = tmp_path / "ws"
    proc = cli(ws, "run", "count", "--set", "n=15", "--set", "interval=0", "--label", "fg 1:1/2", "--json")
    doc = one_json(proc)
    assert doc["status"] == "succeeded" and doc["run_id"].endswith("-count-fg-1-1_2")
    run_dir = Path(doc["run_dir"])
    assert json.loads((run_dir / "result.json").read_text()) == {"n": 15, "resumed_from": 0}
    assert json.loads((run_dir / "run.json").read_text())["status"] == "succeeded"
    assert "succeeded" in (run_dir / "log.txt").read_text()
    assert engine_info(ws) is None
    with st.open_store(ws) as s:
        assert s.metrics(doc["run_id"])["step"].tolist() == list(range(15))
        assert s.get_run(doc["run_id"]).slot == "foreground"


def test_foreground_failure_exits_1_with_the_outcome(tmp_path):
    proc = cli(tmp_path, "run", "fail", "--json", check=False)
    assert proc.returncode == 1
    doc = one_json(proc)
    assert doc["status"] == "failed" and "this run fails on purpose" in doc["exit_reason"]


def test_config_file_and_set_overrides_are_recorded(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"seconds": 0, "opt": {"lr": 0.1}}))
    rid = cli(tmp_path / "ws", "run", "sleep", "-c", str(cfg), "--set", "opt.momentum=0.9", "--set", "seed=3",
              "--set", "name=abc", "--detach").stdout.strip()
    run = json.loads((tmp_path / "ws" / rid / "run.json").read_text())
    assert run["config"] == {"seconds": 0, "opt": {"lr": 0.1, "momentum": 0.9}, "seed": 3, "name": "abc"}
    assert run["seed"] == 3 and run["status"] == "queued"


def test_listing_show_logs_retry_rm_and_queue_commands(tmp_path):
    ws = tmp_path / "ws"
    a = cli(ws, "run", "sleep", "--set", "seconds=0", "--json").stdout
    a = json.loads(a)["run_id"]
    b = cli(ws, "run", "sleep", "--detach", "--priority", "3", "--after", a).stdout.strip()
    rows = one_json(cli(ws, "runs", "list", "--json"))
    assert [(r["id"], r["status"]) for r in rows] == [(a, "succeeded"), (b, "queued")]
    assert [r["id"] for r in one_json(cli(ws, "runs", "list", "--status", "queued", "--json"))] == [b]
    assert one_json(cli(ws, "runs", "list", "--kind", "count", "--json")) == []
    shown = one_json(cli(ws, "runs", "show", b, "--json"))
    assert shown["parents"] == [a] and shown["priority"] == 3 and shown["events"][0]["kind"] == "created"
    assert a in cli(ws, "runs", "list").stdout
    assert "succeeded" in cli(ws, "runs", "logs", a, "-f").stdout
    cli(ws, "runs", "cancel", b)
    cli(ws, "runs", "retry", b)
    assert one_json(cli(ws, "runs", "show", b, "--json"))["attempt"] == 2
    cli(ws, "queue", "pause")
    status = one_json(cli(ws, "engine", "status", "--json"))
    assert status["running"] is False and status["queue_paused"] is True and status["queued"] == 1
    assert cli(ws, "runs", "rm", a, check=False).returncode == 2  # b still depends on it
    cli(ws, "runs", "rm", a, b)
    assert one_json(cli(ws, "runs", "list", "--json")) == [] and not (ws / a).exists()


def test_wait_times_out_with_exit_1(tmp_path):
    ws = tmp_path / "ws"
    rid = cli(ws, "run", "sleep", "--detach").stdout.strip()
    proc = cli(ws, "runs", "wait", rid, "--timeout", "0.3", check=False)
    assert proc.returncode == 1 and "timed out" in proc.stderr


def test_invalid_json_config_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  oops\n}')
    proc = cli(tmp_path / "ws", "run", "sleep", "--config", str(bad), check=False)
    assert proc.returncode == 2 and f"{bad}: line 3" in proc.stderr


def test_store_from_a_newer_ganaug_is_refused(tmp_path):
    st.open_store(tmp_path).close()
    with sqlite3.connect(tmp_path / st.DB_NAME) as conn:
        conn.execute("PRAGMA user_version = 42")
    for args in (["runs", "list"], ["engine", "start"], ["run", "sleep"]):
        proc = cli(tmp_path, *args, check=False)
        assert proc.returncode == 2 and "schema version 42, newer" in proc.stderr, args


def test_read_only_workspace(tmp_path):
    ws = tmp_path / "ws"
    rid = cli(ws, "run", "sleep", "--set", "seconds=0", "--json").stdout
    rid = json.loads(rid)["run_id"]
    env = os.environ | FAST_ENV | {"GANAUG_WORKSPACE": str(ws)}
    if os.geteuid() != 0:
        ws.chmod(0o555)
        prefix: list[str] = []
    elif shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        # root writes through file modes: make a private read-only bind mount instead
        prefix = ["unshare", "-m", "sh", "-c", f'mount --bind "{ws}" "{ws}" && mount -o remount,ro,bind "{ws}"'
                  ' && exec "$@"', "sh"]
    else:
        pytest.skip("running as root without mount namespaces: cannot make a read-only workspace")
    try:
        write = subprocess.run([*prefix, GANAUG, "run", "sleep", "--detach"], env=env, capture_output=True,
                               text=True, timeout=60)
        read = subprocess.run([*prefix, GANAUG, "runs", "list", "--json"], env=env, capture_output=True,
                              text=True, timeout=60)
    finally:
        ws.chmod(0o755)
    assert write.returncode == 2 and "is read-only" in write.stderr and write.stderr.count("\n") == 1
    assert read.returncode == 0 and [r["id"] for r in json.loads(read.stdout)] == [rid]


def test_listing_does_not_import_heavy_libraries(tmp_path):
    st.open_store(tmp_path).close()
    code = ("import sys; sys.argv = ['ganaug', 'runs', 'list', '--workspace', sys.argv[1]]\n"
            "from engine.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'textual', 'pandas', 'timm') if m in sys.modules], file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_ctrl_c_while_waiting_for_parents_leaves_the_run_interrupted_not_waiting(tmp_path):
    import signal
    import time

    ws = tmp_path / "ws"
    with st.open_store(ws) as s:
        parent = s.create_run("sleep", {"seconds": 0})  # no engine: it stays queued
    env = os.environ | FAST_ENV | {"GANAUG_WORKSPACE": str(ws)}
    err = tmp_path / "stderr.txt"
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or `&`: children inherit "ignore"
    try:
        with open(err, "w") as err_fh:
            fg = subprocess.Popen([GANAUG, "run", "sleep", "--after", parent, "--label", "child"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=err_fh, preexec_fn=default_sigint)
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        deadline = time.monotonic() + 30
        while "waiting for its parent runs" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        with st.open_store(ws) as s:
            (child,) = s.list_runs(status=st.BLOCKED)
        fg.send_signal(signal.SIGINT)
        fg.wait(timeout=30)
    finally:
        fg.kill()
    with st.open_store(ws) as s:
        run = s.get_run(child.id)
    assert run.status == st.INTERRUPTED and run.foreground_pid is None  # `runs retry` hands it to the engine


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_of_a_dead_foreground_owner_can_be_cancelled_retried_and_removed_without_an_engine(tmp_path):
    ws = tmp_path / "ws"
    with st.open_store(ws) as s:
        ids = []
        for _ in range(3):  # each as a `ganaug run` killed with -9 leaves it: running, owned by a dead process
            pid = _dead_pid()
            rid = s.create_run("count", {"n": 5}, foreground_pid=pid)
            s.claim(rid, slot="foreground", engine_pid=None, pid=pid, foreground_pid=pid)
            ids.append(rid)
    assert engine_info(ws) is None
    assert "cancelled" in cli(ws, "runs", "cancel", ids[0]).stderr
    assert cli(ws, "runs", "retry", ids[1]).stderr.strip().endswith("queued")
    cli(ws, "runs", "rm", ids[2])
    with st.open_store(ws) as s:
        assert [(r.id, r.status, r.attempt) for r in s.list_runs()] == [(ids[0], st.CANCELLED, 1),
                                                                        (ids[1], st.QUEUED, 2)]
    assert not (ws / ids[2]).exists()


def test_waiting_for_a_run_whose_owner_died_ends_instead_of_hanging(tmp_path):
    ws = tmp_path / "ws"
    pid = _dead_pid()
    with st.open_store(ws) as s:
        rid = s.create_run("count", {}, foreground_pid=pid)
        s.claim(rid, slot="foreground", engine_pid=None, pid=pid, foreground_pid=pid)
    proc = cli(ws, "runs", "wait", rid, "--timeout", "20", "--json", check=False)
    assert proc.returncode == 1 and one_json(proc)[0]["status"] == st.INTERRUPTED


def test_json_outcomes_carry_the_aucs_of_result_json(tmp_path):
    ws = tmp_path / "ws"
    doc = one_json(cli(ws, "run", "count", "--set", "n=2", "--set", "interval=0", "--json"))
    assert doc["auc"] is None and doc["val_auc"] is None and doc["resumes"] == 0  # a kind without scores
    run_dir = Path(doc["run_dir"])
    (run_dir / "result.json").write_text(json.dumps({"auc": {"isic19": 0.81, "dermofit": 0.66}, "val_auc": 0.79}))
    shown = one_json(cli(ws, "runs", "show", doc["run_id"], "--json"))
    assert shown["auc"] == {"isic19": 0.81, "dermofit": 0.66} and shown["val_auc"] == 0.79
    assert one_json(cli(ws, "runs", "wait", doc["run_id"], "--json"))[0]["auc"]["isic19"] == 0.81
    assert "auc isic19" in cli(ws, "runs", "show", doc["run_id"]).stdout


def test_log_lines_are_never_cut_when_stderr_is_no_terminal(tmp_path):
    label = "a label long enough that the log line about this run is far wider than eighty columns"
    proc = cli(tmp_path / "ws", "run", "count", "--set", "n=2", "--set", "interval=0", "--label", label)
    lines = [ln for ln in proc.stderr.splitlines() if "attempt 1" in ln]
    assert len(lines) == 1 and slugify(label) in lines[0] and "pid" in lines[0] and len(lines[0]) > 120
    assert "\x1b[" not in proc.stderr  # plain lines, no terminal control codes


def test_a_damaged_store_is_one_line_from_every_command_and_never_written(tmp_path):
    from test_store_safety import damaged_workspace

    ws = tmp_path / "ws"
    digest = damaged_workspace(ws)
    for args in (["runs", "list"], ["runs", "show", "x"], ["run", "sleep"], ["engine", "start"],
                 ["engine", "status"], ["queue", "pause"], ["runs", "cancel", "x"]):
        proc = cli(ws, *args, check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (args, proc.stderr)
        assert "is damaged" in proc.stderr and ".recover" in proc.stderr, (args, proc.stderr)
    assert hashlib.sha256((ws / st.DB_NAME).read_bytes()).hexdigest() == digest
    assert engine_info(ws) is None
