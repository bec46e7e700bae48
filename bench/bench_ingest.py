"""Run folder ingestion figures (printed, not asserted), side by side in one process:

1. the worker's metrics-writing cost: ``ctx.metrics({5 names}, step)`` per step through the same ``WorkerContext``
   (buffered, flushed every 5,000 points) into the run folder (this issue's path: one append per flush) against the
   sink the worker had before, one SQLite transaction per flush into the store (``Store.write_metrics``);
2. the head's ingest overhead per 10,000 metric rows (read the appended bytes, parse, one transaction);
3. the head's ingest overhead per finished run (its outcome, last metrics, progress and heartbeat read; the run
   settled and its ``run.json`` rewritten), and the cost of an idle pass per active run (nothing new to read).

Usage: python bench/bench_ingest.py [--rows 200000] [--runs 300] [--device cpu]
(``--device`` is accepted like every benchmark's; ingestion itself runs on the CPU and the file system.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from engine import store as st
from engine.runner.worker import RunSpec, WorkerContext, run_logger
from engine.store.ingest import Ingestor
from engine.store.runfolder import FolderWriter, MetricRow

NAMES = ("train_loss", "val_loss", "val_auc", "lr", "images_per_s")


def _running(store: st.Store, n: int = 1) -> list[str]:
    ids = store.create_runs([st.NewRun("count", {"seed": i}) for i in range(n)])
    for rid in ids:
        store.claim(rid, slot="cpu0", engine_pid=None, pid=os.getpid())
    return ids


class _StoreSink(FolderWriter):
    """The worker's sink before this issue: each flushed buffer one transaction into the store."""

    def __init__(self, run_dir: Path, store: st.Store, run_id: str) -> None:
        super().__init__(run_dir, {})
        self.store, self.run_id = store, run_id

    def append_metrics(self, rows: Sequence[MetricRow], *, sync: bool = False) -> None:
        self.store.write_metrics(self.run_id, rows)


def _write(ctx: WorkerContext, steps: int) -> float:
    t0 = time.perf_counter()
    for step in range(steps):
        ctx.metrics({n: 1.0 / (step + 1) for n in NAMES}, step)
    ctx.flush()
    return time.perf_counter() - t0


def bench_worker(root: Path, rows: int, repeats: int = 3) -> None:
    """The same ``WorkerContext`` (buffer, lock, flush every 5,000 points) with either sink."""
    steps = rows // len(NAMES)
    new, old = [], []
    for k in range(repeats):
        with st.open_store(root / f"worker-{k}") as store:
            for rid, sink in zip(_running(store, 2), ("folder", "store"), strict=True):
                run_dir = store.run_dir(rid)
                writer = FolderWriter(run_dir, {"run_id": rid, "attempt": 1, "resumes": 0, "job_id": None}) \
                    if sink == "folder" else _StoreSink(run_dir, store, rid)
                ctx = WorkerContext(RunSpec.read(run_dir), run_dir, device="cpu", log=run_logger(run_dir, rid),
                                    writer=writer)
                (new if sink == "folder" else old).append(_write(ctx, steps))
            assert len(store.metrics(rid)) == steps * len(NAMES)
    n = steps * len(NAMES)
    t_new, t_old = statistics.median(new), statistics.median(old)
    print(f"worker metrics, {n:,} points ({len(NAMES)} per step), median of {repeats}: run folder "
          f"{t_new / n * 1e6:.2f} us/point ({n / t_new:,.0f}/s) vs store transactions (before) "
          f"{t_old / n * 1e6:.2f} us/point ({n / t_old:,.0f}/s): {t_new / t_old:.2f}x the time")


def bench_ingest_rows(root: Path, rows: int) -> None:
    with st.open_store(root / "rows") as store:
        rid = _running(store)[0]
        run = store.get_run(rid)
        writer = FolderWriter(store.run_dir(rid), {"run_id": rid, "attempt": 1, "resumes": 0, "job_id": None})
        ingestor = Ingestor(store)
        per_10k = []
        for start in range(0, rows, 10_000):
            writer.append_metrics([("loss", s, 1.0 / (s + 1), 0.0) for s in range(start, start + 10_000)])
            t0 = time.perf_counter()
            ingestor.ingest([run])
            per_10k.append(time.perf_counter() - t0)
        assert len(store.metrics(rid)) == rows // 10_000 * 10_000
    print(f"ingest per 10,000 metric rows (read + parse + one transaction, {len(per_10k)} passes): median "
          f"{statistics.median(per_10k) * 1e3:.1f} ms ({statistics.median(per_10k) / 10_000 * 1e6:.2f} us/row), "
          f"max {max(per_10k) * 1e3:.1f} ms")


def bench_finished_runs(root: Path, n: int) -> None:
    with st.open_store(root / "runs") as store:
        ids = _running(store, n)
        runs = [store.get_run(r) for r in ids]
        ingestor = Ingestor(store)
        for run in runs:  # what each worker left: 20 metric points, progress, heartbeat, outcome
            w = FolderWriter(store.run_dir(run.id), {"run_id": run.id, "attempt": 1, "resumes": 0, "job_id": None})
            w.start()
            w.append_metrics([("loss", s, 1.0, 0.0) for s in range(20)])
            w.progress(20, 20, "done")
        t0 = time.perf_counter()
        ingestor.ingest(runs)  # first pass: metrics, progress, heartbeats
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        ingestor.ingest(runs)
        idle = time.perf_counter() - t0
        for run in runs:
            FolderWriter(store.run_dir(run.id), {"run_id": run.id, "attempt": 1, "resumes": 0,
                                                 "job_id": None}).done("succeeded", None)
        t0 = time.perf_counter()
        settled = ingestor.ingest(runs)
        finish = time.perf_counter() - t0
        assert len(settled) == n and store.counts().get(st.SUCCEEDED) == n
    print(f"ingest per finished run ({n} runs in one pass: outcome read, run settled, run.json rewritten): "
          f"{finish / n * 1e3:.2f} ms; first pass per running run (20 points, progress, heartbeat): "
          f"{first / n * 1e3:.2f} ms; idle pass per running run (nothing new): {idle / n * 1e6:.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; ingestion does not use it")
    args = ap.parse_args()
    print(f"bench_ingest: {os.cpu_count()} CPU(s), python {sys.version.split()[0]}, device {args.device} (unused), "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="ganaug-bench-") as tmp:
        root = Path(tmp)
        bench_worker(root, args.rows)
        bench_ingest_rows(root, args.rows)
        bench_finished_runs(root, args.runs)


if __name__ == "__main__":
    main()
