"""Run store and engine figures (printed, not asserted):

1. enqueue 10,000 runs in one batch, then list them (API and ``ganaug runs list --json``), in ms;
2. metric insert rate (rows/s) of a writer process alone and with a concurrent reader process polling
   ``list_runs`` + ``metrics`` (side by side, same machine, same store layout);
3. engine overhead per run: 20 ``sleep 0`` runs through the detached daemon (one CPU slot).

Usage: python bench/bench_store.py [--runs 10000] [--rows 200000] [--engine-runs 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine import store as st
from engine.runner.daemon import start_engine, stop_engine

GANAUG = str(Path(sys.executable).parent / "ganaug")


def bench_enqueue_and_list(root: Path, n: int) -> None:
    ws = root / "enqueue"
    with st.open_store(ws) as s:
        t0 = time.perf_counter()
        s.create_runs([st.NewRun("classify", {"ratio": "1:1/2", "replicate": i % 10, "seed": i},
                                 label=f"1:1/2 sgn r{i % 10}") for i in range(n)])
        enqueue = time.perf_counter() - t0
        t0 = time.perf_counter()
        runs = s.list_runs()
        listing = time.perf_counter() - t0
        t0 = time.perf_counter()
        s.list_runs(status="queued", kind="classify")
        filtered = time.perf_counter() - t0
    assert len(runs) == n
    t0 = time.perf_counter()
    subprocess.run([GANAUG, "runs", "list", "--json", "--workspace", str(ws)], check=True,
                   stdout=subprocess.DEVNULL)
    cli_json = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([GANAUG, "runs", "list", "--workspace", str(ws)], check=True, stdout=subprocess.DEVNULL)
    cli_table = time.perf_counter() - t0
    print(f"enqueue {n} runs (one transaction + {n} run folders/run.json): {enqueue * 1e3:.0f} ms "
          f"({enqueue / n * 1e6:.0f} us/run)")
    print(f"list {n} runs: Store.list_runs {listing * 1e3:.0f} ms, filtered {filtered * 1e3:.0f} ms; "
          f"`ganaug runs list --json` {cli_json * 1e3:.0f} ms, table {cli_table * 1e3:.0f} ms (process incl.)")


def _writer(ws: str, run_id: str, rows: int, batch: int, out: mp.Queue) -> None:
    with st.open_store(ws) as s:
        t0 = time.perf_counter()
        for start in range(0, rows, batch):
            s.write_metrics(run_id, [("loss", k, 1.0 / (k + 1), time.time()) for k in range(start, start + batch)])
        out.put(time.perf_counter() - t0)


def _reader(ws: str, run_id: str, stop: mp.Event, out: mp.Queue) -> None:
    polls = errors = 0
    with st.open_store(ws, readonly=True) as s:
        while not stop.is_set():
            try:
                s.list_runs()
                s.get_run(run_id)
                polls += 1
            except Exception:  # counted: the figure is "readers never error"
                errors += 1
    out.put((polls, errors))


def bench_metrics(root: Path, rows: int, batch: int = 1000) -> None:
    ctx = mp.get_context("spawn")
    for with_reader in (False, True):
        ws = root / f"metrics-{int(with_reader)}"
        with st.open_store(ws) as s:
            s.create_runs([st.NewRun("sleep", {}) for _ in range(1000)])
            run_id = s.create_run("count", {})
        out, stop = ctx.Queue(), ctx.Event()
        reader = ctx.Process(target=_reader, args=(str(ws), run_id, stop, out)) if with_reader else None
        if reader:
            reader.start()
            time.sleep(0.5)
        writer = ctx.Process(target=_writer, args=(str(ws), run_id, rows, batch, out))
        writer.start()
        writer.join()
        elapsed = out.get()
        extra = ""
        if reader:
            stop.set()
            reader.join()
            polls, errors = out.get()
            extra = f"; reader polled list_runs(1,001 runs) {polls} times, {errors} errors"
        print(f"metric inserts ({batch}-row transactions){' with a concurrent reader' if reader else ''}: "
              f"{rows / elapsed:,.0f} rows/s{extra}")


def bench_engine(root: Path, n: int) -> None:
    ws = root / "engine"
    with st.open_store(ws) as s:
        s.set_queue_paused(True)
        ids = s.create_runs([st.NewRun("sleep", {"seconds": 0}) for _ in range(n)])
    start_engine(ws, cpu_slots=1, use_gpus=False)
    try:
        t0 = time.perf_counter()
        with st.open_store(ws) as s:
            s.set_queue_paused(False)
            while any(r.status not in st.TERMINAL for r in s.list_runs()):
                time.sleep(0.02)
            wall = time.perf_counter() - t0
            runs = [s.get_run(r) for r in ids]
    finally:
        stop_engine(ws)
    assert all(r.status == st.SUCCEEDED for r in runs)
    inside = [r.ended - r.started for r in runs]  # claim -> worker process start, kind, outcome recorded
    gaps = [b.started - a.ended for a, b in zip(runs, runs[1:], strict=False)]  # previous end -> next claim
    print(f"engine: {n} `sleep 0` runs in {wall:.2f} s = {wall / n * 1e3:.0f} ms/run; per run: worker "
          f"process start->outcome {statistics.median(inside) * 1e3:.0f} ms (median), scheduling gap "
          f"{statistics.median(gaps) * 1e3:.0f} ms (median)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--engine-runs", type=int, default=20)
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; the store and the engine use no device")
    args = ap.parse_args()
    print(f"bench_store: {os.cpu_count()} CPU(s), python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="ganaug-bench-") as tmp:
        root = Path(tmp)
        bench_enqueue_and_list(root, args.runs)
        bench_metrics(root, args.rows)
        bench_engine(root, args.engine_runs)


if __name__ == "__main__":
    main()
