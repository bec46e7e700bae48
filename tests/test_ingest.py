"""The run folder contract: what a worker writes (engine.store.runfolder) and how the head ingests it into the store
(engine.store.ingest): incremental, idempotent across head crashes and between two heads, never reading a line
still being written, telling this execution's files from those an earlier one left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine import store as st
from engine.store.ingest import Ingestor
from engine.store.runfolder import DONE, METRICS, FolderWriter, cut_partial_line, read_metrics


@pytest.fixture
def store(tmp_path: Path):
    with st.open_store(tmp_path / "ws") as s:
        yield s


def running(store: st.Store, kind: str = "count") -> st.Run:
    rid = store.create_run(kind, {})
    assert store.claim(rid, slot="cpu0", engine_pid=None, pid=os.getpid())
    return store.get_run(rid)


def writer_for(store: st.Store, run: st.Run, **identity: object) -> FolderWriter:
    ident = {"run_id": run.id, "attempt": run.attempt, "resumes": run.resumes, "job_id": None} | identity
    w = FolderWriter(store.run_dir(run.id), ident)
    w.start()
    return w


def steps(store: st.Store, run_id: str, name: str = "loss") -> list[tuple[int, float]]:
    m = store.metrics(run_id, name)
    return list(zip(m["step"].tolist(), m["value"].tolist(), strict=True))


def test_metrics_are_ingested_incrementally_and_only_as_complete_lines(store):
    run = running(store)
    w = writer_for(store, run)
    ing = Ingestor(store)
    w.append_metrics([("loss", s, float(s), 0.0) for s in range(3)])
    ing.ingest([run])
    assert steps(store, run.id) == [(0, 0.0), (1, 1.0), (2, 2.0)]
    path = store.run_dir(run.id) / METRICS
    with open(path, "ab") as fh:  # a batch caught mid-append: its last line has no newline yet
        fh.write(b'["loss", 3, 3.0, 0.0]\n["loss", 4, 4')
    ing.ingest([run])
    assert [s for s, _ in steps(store, run.id)] == [0, 1, 2, 3]
    offset = store.ingest_offsets([run.id])[run.id]
    assert offset == path.read_bytes().rfind(b"\n") + 1  # committed up to the last whole line, not beyond
    with open(path, "ab") as fh:
        fh.write(b'.0, 0.0]\n')
    ing.ingest([run])
    assert [s for s, _ in steps(store, run.id)] == [0, 1, 2, 3, 4]


def test_a_head_that_crashed_before_committing_reads_the_same_rows_again_without_duplicates(store):
    run = running(store)
    w = writer_for(store, run)
    w.append_metrics([("loss", s, 1.0, 0.0) for s in range(100)])
    Ingestor(store).ingest([run])
    w.append_metrics([("loss", s, 2.0, 0.0) for s in range(100, 150)])
    # a head that read the new range but crashed before its transaction: the store never saw it
    rows, end, _bad = read_metrics(store.run_dir(run.id) / METRICS, store.ingest_offsets([run.id])[run.id])
    assert len(rows) == 50
    # the next head starts from the committed offset: every row once
    Ingestor(store).ingest([run])
    got = steps(store, run.id)
    assert [s for s, _ in got] == list(range(150)) and store.ingest_offsets([run.id])[run.id] == end
    # offsets lost altogether (re-ingest from byte 0): still one row per (name, step), the last value wins
    with store._tx() as conn:
        conn.execute("DELETE FROM ingest")
    w.append_metrics([("loss", 7, 9.0, 0.0)])  # a resumed run rewriting a step after its checkpoint
    Ingestor(store).ingest([run])
    got = dict(steps(store, run.id))
    assert len(got) == 150 and got[7] == 9.0 and got[120] == 2.0


def test_two_heads_never_apply_one_range_twice_or_out_of_order(store):
    run = running(store)
    w = writer_for(store, run)
    a, b = Ingestor(store), Ingestor(store)
    w.append_metrics([("loss", 1, 1.0, 0.0)])
    a._offsets.update(store.ingest_offsets([run.id]))
    late, _done = a._read(run)  # head a read the first value ... and is slow to commit it
    w.append_metrics([("loss", 1, 5.0, 0.0)])  # the same step rewritten (a resume)
    b.ingest([run])  # head b reads both lines in order and commits first
    assert dict(steps(store, run.id)) == {1: 5.0}
    assert store.apply_updates([late]) == [run.id]  # a's range no longer starts at the stored offset: refused
    assert dict(steps(store, run.id)) == {1: 5.0}  # the older value never overwrites the newer one
    w.append_metrics([("loss", 2, 2.0, 0.0)])
    a.ingest([run])
    a.ingest([run])  # a resynchronises from the stored offset and reads on
    assert dict(steps(store, run.id)) == {1: 5.0, 2: 2.0}


def test_a_killed_writers_partial_line_is_cut_before_the_next_execution_appends(tmp_path):
    path = tmp_path / METRICS
    path.write_bytes(b'["a", 0, 1.0, 0.0]\n["a", 1, 1')
    cut_partial_line(path)
    assert path.read_bytes() == b'["a", 0, 1.0, 0.0]\n'
    cut_partial_line(path)  # nothing to cut
    assert path.read_bytes() == b'["a", 0, 1.0, 0.0]\n'
    path.write_bytes(b"no newline at all")
    cut_partial_line(path)
    assert path.read_bytes() == b""


def test_a_damaged_line_is_skipped_and_counted_the_rest_is_read(tmp_path):
    path = tmp_path / METRICS
    path.write_bytes(b'["a", 0, 1.0, 0.0]\n\x00\x00garbage\n["a", 1, NaN, 0.0]\n[1, 2, 3, 4]\n')
    rows, end, bad = read_metrics(path, 0)
    assert [r[:2] for r in rows] == [("a", 0), ("a", 1)] and bad == 2 and end == path.stat().st_size


def test_progress_heartbeat_and_outcome_settle_the_run(store):
    run = running(store)
    w = writer_for(store, run, job_id=None)
    ing = Ingestor(store)
    w.progress(3, 10, "counting")
    w.append_metrics([("loss", 0, 0.5, 0.0)])
    ing.ingest([run])
    row = store.get_run(run.id)
    assert row.progress["done"] == 3 and row.progress["desc"] == "counting" and row.status == st.RUNNING
    assert row.heartbeat >= run.heartbeat
    w.done("succeeded", None)
    assert ing.ingest([store.get_run(run.id)]) == [(run.id, "succeeded")]
    assert store.get_run(run.id).status == st.SUCCEEDED and steps(store, run.id) == [(0, 0.5)]
    assert ing.ingest([store.get_run(run.id)]) == []  # read once: a second pass changes nothing


def test_an_outcome_an_earlier_execution_left_is_not_this_executions(store):
    run = running(store)
    w = writer_for(store, run)
    w.done("failed", "an old failure")  # attempt 1 failed ...
    store.finish(run.id, st.FAILED, "an old failure")
    store.retry(run.id)  # ... the user retried: attempt 2
    assert store.claim(run.id, slot="cpu0", engine_pid=None, pid=os.getpid())
    again = store.get_run(run.id)
    assert Ingestor(store).ingest([again]) == [] and store.get_run(run.id).status == st.RUNNING
    writer_for(store, again).done("succeeded", None)
    assert Ingestor(store).ingest([store.get_run(run.id)]) == [(run.id, "succeeded")]


def test_a_stopped_run_ends_interrupted_or_cancelled_when_a_cancel_was_asked(store):
    run = running(store)
    writer_for(store, run).done("interrupted", "stopped by SIGTERM")
    Ingestor(store).ingest([run])
    assert store.get_run(run.id).status == st.INTERRUPTED
    other = running(store)
    store.cancel_runs([other.id])
    writer_for(store, other).done("interrupted", "stopped by SIGTERM")
    Ingestor(store).ingest([store.get_run(other.id)])
    got = store.get_run(other.id)
    assert got.status == st.CANCELLED and got.exit_reason.startswith("cancelled by user")


def test_a_job_requeued_in_place_counts_a_resume_and_stays_running(store):
    run = running(store)
    store.set_job(run.id, "77")
    run = store.get_run(run.id)
    writer_for(store, run, job_id="77").done("interrupted", "time limit", requeued=True)
    Ingestor(store).ingest([run])
    got = store.get_run(run.id)
    assert (got.status, got.attempt, got.resumes) == (st.RUNNING, 1, 1)
    assert any(e["kind"] == "resume" and "requeued" in e["message"] for e in store.events(run.id))
    # the requeued job wrote its outcome before the head looked (it overwrote the requeue marker): still applied
    second = running(store)
    store.set_job(second.id, "78")
    writer_for(store, second, job_id="78", resumes=2).done("succeeded", None)
    Ingestor(store).ingest([store.get_run(second.id)])
    got = store.get_run(second.id)
    assert (got.status, got.resumes) == (st.SUCCEEDED, 2)


def test_files_of_another_job_of_the_run_are_not_its_current_executions(store):
    """Slurm may restart a job on its own after the head resubmitted the run as another job: the old job's
    heartbeat and outcome must not speak for the new one."""
    from engine.runner.worker import RunSpec, superseded

    run = running(store)
    store.set_job(run.id, "91")
    writer_for(store, store.get_run(run.id), job_id="90").done("interrupted", "stopped by SIGTERM")
    assert Ingestor(store).ingest([store.get_run(run.id)]) == [] and store.get_run(run.id).status == st.RUNNING
    mine = RunSpec.read(store.run_dir(run.id))
    assert superseded(store.run_dir(run.id), mine) is None
    old_job = RunSpec(**{**mine.__dict__, "job_id": "90"})
    assert "job 91 runs it now" in superseded(store.run_dir(run.id), old_job)
    store.finish(run.id, st.INTERRUPTED, "node failure")
    store.retry(run.id, resume=True)  # re-queued: the execution that was running no longer owns it
    assert "queued" in superseded(store.run_dir(run.id), mine)
    assert store.claim(run.id, slot="cpu0", engine_pid=None, pid=os.getpid())
    assert "restarted" in superseded(store.run_dir(run.id), mine)  # attempt 1, resume 1 now


def test_a_worker_reads_its_run_from_run_json_and_writes_only_its_folder(store, monkeypatch):
    from engine.runner.worker import execute

    monkeypatch.setattr("engine.runner.worker.METRIC_FLUSH_S", 0.0)
    rid = store.create_run("count", {"n": 4, "interval": 0})
    assert store.claim(rid, slot="cpu0", engine_pid=None, pid=os.getpid())
    db = store.db_path
    before = db.stat().st_mtime_ns, (db.with_name(db.name + "-wal")).stat().st_size
    outcome = execute(store.run_dir(rid), device="cpu", install_signals=False)
    assert outcome.status == "succeeded"
    assert (db.stat().st_mtime_ns, db.with_name(db.name + "-wal").stat().st_size) == before  # never opened it
    assert store.metrics(rid).empty and store.get_run(rid).status == st.RUNNING  # nothing until ingested
    done = json.loads((store.run_dir(rid) / DONE).read_text())
    assert (done["status"], done["attempt"], done["resumes"]) == ("succeeded", 1, 0)
    Ingestor(store).ingest([store.get_run(rid)])
    assert steps(store, rid, "count") == [(s, float(s * s)) for s in range(4)]
    assert store.get_run(rid).status == st.SUCCEEDED


def test_metric_values_survive_the_file_bit_for_bit(tmp_path):
    import math

    w = FolderWriter(tmp_path, {"run_id": "r", "attempt": 1, "resumes": 0, "job_id": None})
    values = [0.1, 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, 123456789.123456789, math.nan, math.inf, -math.inf]
    w.append_metrics([(f"m/{i}", i, v, 1795692850.8307135) for i, v in enumerate(values)])
    rows, _end, bad = read_metrics(tmp_path / METRICS, 0)
    assert bad == 0 and [r[0] for r in rows] == [f"m/{i}" for i in range(len(values))]
    for (_n, _s, got, wall), want in zip(rows, values, strict=True):
        same_sign = math.copysign(1, got) == math.copysign(1, want)
        assert (math.isnan(got) and math.isnan(want)) or (got == want and same_sign)
        assert wall == 1795692850.8307135
