"""The run_labels table: a run serves (experiment, label) pairs; its row keeps the first label; results read
every linked run's AUC metrics in one query."""

from __future__ import annotations

import sqlite3
import time

import pandas as pd
import pytest

from engine import store as st
from engine.errors import InputError


@pytest.fixture
def store(tmp_path):
    with st.open_store(tmp_path / "ws") as s:
        yield s


def test_a_run_created_for_an_experiment_is_linked_to_all_its_labels(store):
    rid, other = store.create_runs([
        st.NewRun("classify", {"replicate": 0}, label="1:0", experiment="augmentation", labels=["1:0", "x"]),
        st.NewRun("classify", {"replicate": 1}, label="solo")])  # no experiment: no link
    assert store.run_labels() == [("augmentation", "1:0", rid), ("augmentation", "x", rid)]
    assert store.run_labels(run_id=other) == []


def test_linking_is_idempotent_and_a_run_keeps_its_first_label(store):
    rid = store.create_run("classify", {"replicate": 2}, label="1:0", experiment="augmentation")
    bare = store.create_run("classify", {})
    store.link_runs("anonymization", [(rid, "1:0"), (bare, "1/4:0")])
    store.link_runs("anonymization", [(rid, "1:0")])
    assert sorted(store.run_labels(run_id=rid)) == [("anonymization", "1:0", rid), ("augmentation", "1:0", rid)]
    run, b = store.get_run(rid), store.get_run(bare)
    assert (run.label, run.experiment) == ("1:0", "augmentation")  # first label and experiment stay
    assert (b.label, b.experiment) == ("1/4:0", "anonymization")  # a run without one takes it
    assert {e["name"] for e in store.experiments()} == {"augmentation", "anonymization"}
    with pytest.raises(InputError, match="unknown run id 'nope'"):
        store.link_runs("anonymization", [("nope", "1:0")])
    with pytest.raises(InputError, match="must be non-empty"):
        store.link_runs("anonymization", [(rid, "")])


def test_labelled_runs_and_metrics_read_every_linked_run_once(store):
    a, b, gan = store.create_runs([
        st.NewRun("classify", {"replicate": 3}, label="1:0", experiment="e", labels=["1:1/2"]),
        st.NewRun("classify", {}, label="1:1/2", experiment="e"),
        st.NewRun("gan-train", {}, label="1:1/2", experiment="e")])
    other = store.create_run("classify", {}, label="1:0", experiment="other")
    now = time.time()
    store.write_metrics(a, [("auc/isic19", 0, 0.8, now), ("auc/val", 0, 0.7, now), ("loss", 0, 1.0, now),
                            ("auc/isic19", 5, 0.1, now)])
    store.write_metrics(other, [("auc/isic19", 0, 0.9, now)])
    store.finish(b, st.FAILED, "boom")
    runs = [tuple(None if pd.isna(v) else v for v in r) for r in store.labelled_runs("e").itertuples(index=False)]
    assert sorted(runs) == [("1:0", a, 1, "queued", None, 3), ("1:1/2", a, 1, "queued", None, 3),
                            ("1:1/2", b, 2, "failed", "boom", 0)]  # no gan-train; replicate defaults to 0
    assert len(store.labelled_runs("e", kind="gan-train")) == 1
    metrics = sorted(store.labelled_metrics("e").itertuples(index=False, name=None))
    assert metrics == [(a, "auc/isic19", 0.8), (a, "auc/val", 0.7)]  # once per run, step 0, auc/* only
    assert store.labelled_metrics("nothing").empty and store.labelled_runs("nothing").empty
    many = store.create_runs([st.NewRun("classify", {"replicate": k}) for k in range(1200)])  # > one query's ids
    configs = store.run_configs([a, b, *many, "nope", a])
    assert list(configs) == [a, b, *many]
    assert configs[a] == {"replicate": 3} and configs[many[-1]] == {"replicate": 1199}


def test_removing_a_run_removes_its_links(store):
    rid = store.create_run("classify", {}, label="1:0", experiment="e")
    store.remove([rid])
    assert store.run_labels() == []


def test_an_older_store_gains_the_table_and_one_that_cannot_be_migrated_reads_as_unlinked(tmp_path):
    ws = tmp_path / "ws"
    st.open_store(ws).close()
    with sqlite3.connect(ws / st.DB_NAME) as conn:  # back to schema 2: a store written before this table
        conn.execute("DROP TABLE run_labels")
        conn.execute("DROP TABLE ingest")  # and what schema 4 added
        for column in ("executor", "executor_opts", "job_id"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 2")
    with st.open_store(ws) as s:
        assert s._conn.execute("PRAGMA user_version").fetchone()[0] == len(st.core.MIGRATIONS)
        s.create_run("classify", {}, label="1:0", experiment="e")
        assert len(s.run_labels("e")) == 1
        # An old store on read-only media is opened immutable and never migrated: it has no links, not an error.
        s._conn.execute("DROP TABLE run_labels")
        assert s.labelled_metrics("e").empty and s.labelled_runs("e").empty and s.run_labels() == []
