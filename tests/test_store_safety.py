"""Run store safety: dead owners (pid + start time), attempts vs resumes, damaged files, opening without creating,
read-only copies with an unmerged WAL, multi-id commands that change nothing when one id is bad."""

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

from engine import procs
from engine import store as st
from engine.errors import DamagedStore, InputError
from engine.store.schema import MIGRATIONS


@pytest.fixture
def store(tmp_path):
    with st.open_store(tmp_path / "ws") as s:
        yield s


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running_in_foreground(store: st.Store, pid: int, **config) -> str:
    """A run claimed by a foreground process ``pid`` (as `ganaug run` does), now running."""
    rid = store.create_run("count", config, foreground_pid=pid)
    assert store.claim(rid, slot="foreground", engine_pid=None, pid=pid, foreground_pid=pid)
    return rid


# ------------------------------------------------------------------------------------------ dead owners
def test_a_run_whose_foreground_owner_died_is_settled_by_any_store_command(store):
    rid = running_in_foreground(store, dead_pid())
    mine = running_in_foreground(store, os.getpid())  # alive: untouched
    assert store.reap_dead_owners() == [rid]
    run = store.get_run(rid)
    assert run.status == st.INTERRUPTED and "foreground process" in run.exit_reason and run.foreground_pid is None
    assert store.get_run(mine).status == st.RUNNING
    assert store.retry(rid) == st.QUEUED and store.get_run(rid).attempt == 2  # the user asked: a new attempt


def test_a_reused_pid_is_not_mistaken_for_the_owner(store):
    rid = running_in_foreground(store, os.getpid())
    assert store.get_run(rid).foreground_started == pytest.approx(procs.started(), abs=0.5)
    with store._tx() as conn:  # as if the owner had died and the pid now belonged to this (younger) process
        conn.execute("UPDATE runs SET foreground_started = foreground_started - 3600 WHERE id = ?", (rid,))
    assert store.reap_dead_owners() == [rid]
    assert store.get_run(rid).status == st.INTERRUPTED


def test_a_requested_cancel_wins_over_resume(store):
    rid = running_in_foreground(store, dead_pid())
    assert store.request_cancel(rid) == st.RUNNING  # flagged; its owner is gone and will never see it
    store.reap_dead_owners()
    run = store.get_run(rid)
    assert run.status == st.CANCELLED and run.exit_reason.startswith("cancelled by user")
    other = running_in_foreground(store, os.getpid())
    store.request_cancel(other)
    store.finish(other, st.INTERRUPTED, "engine stopped")  # a stop after the cancel was asked is still a cancel
    assert store.get_run(other).status == st.CANCELLED


def test_a_paused_run_stays_paused_when_its_owner_dies(store):
    rid = running_in_foreground(store, dead_pid())
    store.set_paused(rid, True)
    assert store.reap_dead_owners() == [rid]
    run = store.get_run(rid)
    assert run.status == st.PAUSED and run.pid is None and (run.attempt, run.resumes) == (1, 1)
    assert store.set_paused(rid, False) == st.QUEUED  # released: the engine resumes it from its checkpoint


def test_runs_of_a_dead_engine_are_orphans_and_a_live_engines_are_not(store, tmp_path):
    rid = store.create_run("count", {})
    assert store.claim(rid, slot="cpu0", engine_pid=dead_pid())
    store.set_pid(rid, dead_pid())
    assert store.reap_dead_owners() == [rid]  # no engine holds the lock
    assert "engine" in store.get_run(rid).exit_reason and "died" in store.get_run(rid).exit_reason


def test_attempt_counts_what_the_user_caused_and_resumes_what_a_crash_caused(store):
    rid = running_in_foreground(store, os.getpid())
    store.finish(rid, st.INTERRUPTED, "engine stopped")
    assert store.retry(rid, resume=True) == st.QUEUED  # the engine's policy
    assert (store.get_run(rid).attempt, store.get_run(rid).resumes) == (1, 1)
    store.request_cancel(rid)
    store.retry(rid)  # the user's
    doc = json.loads((store.run_dir(rid) / "run.json").read_text())
    assert (doc["attempt"], doc["resumes"]) == (2, 1)


def test_git_commit_is_read_when_a_run_is_created_and_when_it_starts(store, monkeypatch):
    commits = iter(["aaa", "bbb"])
    monkeypatch.setattr("engine.store.core.git_commit", lambda: next(commits))
    rid = store.create_run("count", {})
    assert store.get_run(rid).git_commit == "aaa"
    store.claim(rid, slot="cpu0", engine_pid=None)  # a long-lived engine starts it after a checkout
    assert json.loads((store.run_dir(rid) / "run.json").read_text())["git_commit"] == "bbb"


def test_the_commit_is_read_from_the_checkout_even_in_a_git_worktree():
    from engine.store.provenance import git_commit

    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert git_commit() == head.stdout.strip()


def test_migration_from_version_1_keeps_runs_and_adds_the_new_columns(tmp_path):
    with sqlite3.connect(tmp_path / st.DB_NAME) as conn:
        for stmt in MIGRATIONS[0]:
            conn.execute(stmt)
        conn.execute("INSERT INTO runs(id, kind, config, config_hash, seed, status, created, attempt)"
                     " VALUES ('r1', 'count', '{}', 'h', 0, 'failed', 0, 3)")
        conn.execute("PRAGMA user_version = 1")
    with st.open_store(tmp_path) as s:
        run = s.get_run("r1")
        assert (run.attempt, run.resumes, run.git_commit, run.foreground_started) == (3, 0, None, None)


# ------------------------------------------------------------------------------------------ multi-id commands
def test_a_multi_id_command_with_one_bad_id_changes_nothing(store):
    a = store.create_run("count", {}, label="first")
    store.create_run("count", {}, label="twin")
    store.create_run("count", {}, label="twin")
    done = store.create_run("count", {}, label="done")
    store.finish(done, st.SUCCEEDED)
    before = [(r.id, r.status, r.attempt) for r in store.list_runs()]
    for call in (lambda: store.cancel_runs([a, "twin"]), lambda: store.cancel_runs([a, done]),
                 lambda: store.pause_runs([a, "nope"], True), lambda: store.pause_runs([a, done], True),
                 lambda: store.retry_runs([done, "nope"]), lambda: store.remove([a, "nope"])):
        with pytest.raises(InputError):
            call()
    assert [(r.id, r.status, r.attempt) for r in store.list_runs()] == before
    with pytest.raises(InputError) as exc:
        store.get_runs(["nope", "twin"])
    assert "unknown run id 'nope'" in str(exc.value) and "ambiguous" in str(exc.value)  # every bad id, one line
    assert "\n" not in str(exc.value)
    assert store.get_runs(["first", a]) == [store.get_run(a)]  # any unambiguous part of an id; each run once


# ------------------------------------------------------------------------------------------ opening
def test_a_read_never_creates_a_workspace(tmp_path):
    missing = tmp_path / "typo" / "ws"
    with pytest.raises(InputError, match="no workspace at"):
        st.open_store(missing, readonly=True, create=False)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no workspace at"):
        st.open_store(tmp_path / "empty", create=False)
    assert list((tmp_path / "empty").iterdir()) == []


def _corrupt_runs_table(ws: Path) -> str:
    """Overwrite the page holding the runs table with junk; returns the file's hash afterwards."""
    db = ws / st.DB_NAME
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    assert not (ws / f"{st.DB_NAME}-wal").exists() or (ws / f"{st.DB_NAME}-wal").stat().st_size == 0
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xa5" * page_size)
    return hashlib.sha256(db.read_bytes()).hexdigest()


def damaged_workspace(ws: Path) -> str:
    with st.open_store(ws) as s:
        for i in range(5):
            s.create_run("count", {"n": i})
    return _corrupt_runs_table(ws)


def test_a_damaged_store_is_one_line_and_is_never_written(tmp_path):
    ws = tmp_path / "ws"
    digest = damaged_workspace(ws)
    with pytest.raises(DamagedStore) as exc:
        st.open_store(ws)
    msg = str(exc.value)
    assert "\n" not in msg and str(ws / st.DB_NAME) in msg and ".recover" in msg
    with st.open_store(ws, readonly=True, create=False) as reader, pytest.raises(DamagedStore):
        reader.list_runs()  # a reader finds out at its first query, the same way
    assert hashlib.sha256((ws / st.DB_NAME).read_bytes()).hexdigest() == digest


def test_a_read_only_copy_with_an_unmerged_wal_shows_the_last_writes(tmp_path, monkeypatch):
    ws, copy = tmp_path / "ws", tmp_path / "copy"
    with st.open_store(ws) as writer:
        ids = [writer.create_run("count", {"n": i}) for i in range(2)]  # checkpointed into the file at close
    with st.open_store(ws) as writer:
        ids.append(writer.create_run("count", {"n": 2}))
        assert (ws / f"{st.DB_NAME}-wal").stat().st_size > 0  # the writer is alive: its last write sits in the WAL
        shutil.copytree(ws, copy)  # a runs/ folder copied off a workstation mid-run
    files = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    with sqlite3.connect(f"file:{copy / st.DB_NAME}?immutable=1", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2  # `immutable=1` alone misses it

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.W_OK and str(p).startswith(
        str(copy)) else real_access(p, mode, **kw))  # read-only media (works as root too)
    with st.open_store(copy, readonly=True, create=False) as s:
        assert [r.id for r in s.list_runs()] == ids
        assert not s.writable and s.reap_dead_owners() == []
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == files  # the copy is untouched


def test_runs_referencing_a_folder(store, tmp_path):
    data = tmp_path / "data"
    a = store.create_run("classify", {"data": {"format": "isic2019", "root": str(data / "isic2019")}})
    b = store.create_run("classify", {"tests": [{"format": "csv", "root": str(data)}]})
    store.create_run("classify", {"data": {"format": "csv", "root": str(tmp_path / "data2")}})
    assert store.runs_referencing(data) == [a, b]
