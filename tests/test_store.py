"""Run store: ids, states and dependency propagation, metrics, run.json, schema versions, bad input."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from engine import store as st
from engine.errors import InputError
from engine.store.ids import slugify, unique_id


@pytest.fixture
def store(tmp_path):
    with st.open_store(tmp_path / "ws") as s:
        yield s


def test_run_ids_are_readable_unique_and_filesystem_safe(store):
    a = store.create_run("classify", {}, label="1:1/2 sgn r3")
    b = store.create_run("classify", {}, label="1:1/2 sgn r3")
    assert a.endswith("-classify-1-1_2-sgn-r3") and b == a + "-2"
    assert slugify("(1:1/2:1) wst") == "1-1_2-1-wst"
    assert unique_id("x", {"x", "x-2"}) == ("x-3", 4)
    for rid in (a, b):
        assert (store.run_dir(rid) / "run.json").is_file() and "/" not in rid and ":" not in rid


def test_run_json_records_config_provenance_and_state(store):
    rid = store.create_run("count", {"n": 3, "seed": 7}, label="L", experiment="exp")
    doc = json.loads((store.run_dir(rid) / "run.json").read_text())
    assert doc["config"] == {"n": 3, "seed": 7} and doc["seed"] == 7 and doc["status"] == "queued"
    assert doc["config_hash"] == st.config_hash({"seed": 7, "n": 3}) and doc["experiment"] == "exp"
    assert "numpy" in doc["packages"] and doc["host"] and doc["created"]
    store.claim(rid, slot="cpu0", engine_pid=None)
    store.finish(rid, st.SUCCEEDED)
    doc = json.loads((store.run_dir(rid) / "run.json").read_text())
    assert doc["status"] == "succeeded" and doc["started"] and doc["ended"] and doc["slot"] == "cpu0"


def test_children_wait_for_parents_and_fail_with_them(store):
    parent = store.create_run("count", {})
    child = store.create_run("count", {}, parents=[parent])
    grandchild = store.create_run("count", {}, parents=[child])
    other = store.create_run("count", {})
    assert store.get_run(child).status == st.BLOCKED and store.get_run(grandchild).parents == (child,)
    store.request_cancel(parent)
    assert [store.get_run(r).status for r in (parent, child, grandchild, other)] == [
        st.CANCELLED, st.DEPENDENCY_FAILED, st.DEPENDENCY_FAILED, st.QUEUED]
    assert parent in store.get_run(child).exit_reason
    # retrying the parent re-blocks the whole subtree; success then releases it level by level
    assert store.retry(parent) == st.QUEUED
    assert store.get_run(parent).attempt == 2
    assert [store.get_run(r).status for r in (child, grandchild)] == [st.BLOCKED, st.BLOCKED]
    assert store.claim(parent, slot="cpu0", engine_pid=None)
    store.finish(parent, st.SUCCEEDED)
    assert [store.get_run(r).status for r in (child, grandchild)] == [st.QUEUED, st.BLOCKED]
    with pytest.raises(InputError, match="only failed"):
        store.retry(parent)


def test_run_created_after_a_failed_parent_is_dependency_failed(store):
    parent = store.create_run("fail", {})
    store.claim(parent, slot="cpu0", engine_pid=None)
    store.finish(parent, st.FAILED, "boom")
    child = store.create_run("count", {}, parents=[parent])
    assert store.get_run(child).status == st.DEPENDENCY_FAILED
    with pytest.raises(InputError, match="retry that first"):
        store.retry(child)


def test_runnable_orders_by_priority_then_fifo_and_skips_foreground(store):
    ids = [store.create_run("sleep", {}, priority=p) for p in (0, 5, 0, 10)]
    store.create_run("sleep", {}, priority=99, foreground_pid=12345)
    store.set_priority(ids[2], 1)
    assert store.runnable(10) == [ids[3], ids[1], ids[2], ids[0]]
    assert store.claim(ids[3], slot="cpu0", engine_pid=1) and not store.claim(ids[3], slot="cpu1", engine_pid=1)


def test_metric_rewrite_replaces_the_point(store):
    rid = store.create_run("count", {})
    store.write_metrics(rid, [("loss", s, float(s), 0.0) for s in range(5)])
    store.write_metrics(rid, [("loss", s, 10.0 * s, 1.0) for s in range(3, 7)])
    df = store.metrics(rid)
    assert df["step"].tolist() == list(range(7))
    assert df["value"].tolist() == [0, 1, 2, 30, 40, 50, 60]
    assert store.metrics(rid, name="nope").empty


def test_remove_refuses_active_runs_and_orphaned_children(store):
    parent = store.create_run("count", {})
    child = store.create_run("count", {}, parents=[parent])
    with pytest.raises(InputError, match="dependent runs"):
        store.remove([parent])
    running = store.create_run("count", {})
    store.claim(running, slot="cpu0", engine_pid=None)
    with pytest.raises(InputError, match="running"):
        store.remove([running])
    store.write_metrics(parent, [("x", 0, 1.0, 0.0)])
    assert sorted(store.remove([child, parent])) == sorted([child, parent])
    assert not store.run_dir(parent).exists()
    assert [r.id for r in store.list_runs()] == [running]


def test_unknown_and_partial_ids(store):
    rid = store.create_run("count", {}, label="unique-label")
    assert store.get_run("unique-label").id == rid
    with pytest.raises(InputError, match="unknown run id 'zzz'"):
        store.get_run("zzz")
    store.create_run("count", {}, label="unique-label")
    with pytest.raises(InputError, match="ambiguous"):
        store.get_run("unique-label")


def test_list_filters(store):
    a = store.create_run("sleep", {}, experiment="e1")
    b = store.create_run("count", {})
    store.request_cancel(b)
    assert [r.id for r in store.list_runs(kind="sleep")] == [a]
    assert [r.id for r in store.list_runs(status=["cancelled", "failed"])] == [b]
    assert [r.id for r in store.list_runs(experiment="e1")] == [a]
    assert store.counts() == {"queued": 1, "cancelled": 1}


def test_newer_schema_is_refused_in_one_line(tmp_path):
    st.open_store(tmp_path).close()
    with sqlite3.connect(tmp_path / st.DB_NAME) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(InputError, match="schema version 99, newer") as exc:
        st.open_store(tmp_path)
    assert "\n" not in str(exc.value)


def test_migrations_bring_an_empty_database_to_the_current_version(tmp_path):
    sqlite3.connect(tmp_path / st.DB_NAME).close()  # version 0
    with st.open_store(tmp_path) as s:
        assert s._conn.execute("PRAGMA user_version").fetchone()[0] == len(st.core.MIGRATIONS)
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_workspace_default_order(tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_WORKSPACE", str(tmp_path / "env"))
    assert st.resolve_workspace(tmp_path / "flag") == tmp_path / "flag"
    assert st.resolve_workspace(None) == tmp_path / "env"
    monkeypatch.delenv("GANAUG_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    assert st.resolve_workspace(None) == tmp_path / "runs"


def test_reader_never_errors_during_heavy_metric_writes(tmp_path):
    ws = tmp_path / "ws"
    with st.open_store(ws) as s:
        ids = [s.create_run("count", {}) for _ in range(50)]
    stop, errors = threading.Event(), []

    def writer() -> None:
        try:
            with st.open_store(ws) as w:
                for batch in range(150):
                    w.write_metrics(ids[batch % 50], [("m", batch * 500 + i, 1.0, 0.0) for i in range(500)])
                    w.set_progress(ids[batch % 50], batch, 150, "writing")
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    with st.open_store(ws, readonly=True) as reader:
        while not stop.is_set():
            assert len(reader.list_runs()) == 50
            reader.metrics(ids[0])
            reads += 1
    thread.join()
    assert not errors and reads > 0
    with st.open_store(ws) as s:
        assert sum(len(s.metrics(r)) for r in ids) == 150 * 500


def test_a_dag_enqueued_in_one_batch_refers_to_earlier_runs_by_index(store):
    gan, pool, cls_a, cls_b = store.create_runs([
        st.NewRun("gan-train", {}, experiment="paper"),
        st.NewRun("gan-pool", {}, parents=[0], experiment="paper"),
        st.NewRun("classify", {"r": 1}, parents=[1], experiment="paper"),
        st.NewRun("classify", {"r": 2}, parents=[1, 0], experiment="paper"),
    ])
    assert [store.get_run(r).status for r in (gan, pool, cls_a, cls_b)] == ["queued", "blocked", "blocked",
                                                                            "blocked"]
    assert set(store.get_run(cls_b).parents) == {pool, gan}
    with pytest.raises(InputError, match="parent index 1 is not an earlier run"):
        store.create_runs([st.NewRun("x", {}, parents=[1]), st.NewRun("y", {})])
    assert len(store.list_runs()) == 4  # the failed batch left nothing behind
    store.set_experiment("paper", {"replicates": 10})
    assert store.experiments() == [{"name": "paper", "created": store.experiments()[0]["created"],
                                    "spec": {"replicates": 10}, "counts": {"queued": 1, "blocked": 3}}]


def test_a_workspace_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(InputError, match="afile/ws") as exc:
        st.open_store(tmp_path / "afile" / "ws")
    assert "\n" not in str(exc.value)


def test_a_held_child_resumed_after_its_parent_failed_fails_its_descendants_too(store):
    parent = store.create_run("sleep", {})
    child = store.create_run("sleep", {}, parents=[parent])
    grandchild = store.create_run("sleep", {}, parents=[child])
    store.set_paused(child, True)
    store.finish(parent, st.FAILED, "boom")
    assert store.get_run(child).status == st.PAUSED  # held: the user decides
    assert store.set_paused(child, False) == st.DEPENDENCY_FAILED
    assert store.get_run(child).ended is not None
    assert store.get_run(grandchild).status == st.DEPENDENCY_FAILED  # never stuck waiting


@pytest.mark.parametrize("seed", ["abc", [1], None])
def test_a_seed_that_is_no_integer_is_refused_and_nothing_is_created(store, seed):
    with pytest.raises(InputError, match="seed"):
        store.create_runs([st.NewRun("sleep", {}), st.NewRun("sleep", {"seed": seed})])
    assert store.list_runs() == [] and [p.name for p in store.workspace.iterdir() if p.is_dir()] == []
