"""TUI figures with 10,000 runs in the store (printed, not asserted; target < 1 s each):

1. a real process in a pseudo-terminal, as a user starts it (``python -m ganaug_tui -w WS``), imports included:
   time to the first paint (the screen tabs are drawn), to the first rows of the runs table, and to the
   Results screen's table (the real analysis: ``engine.analysis.analyse``) after pressing 5;
2. in-process (Textual's headless driver), side by side: time to the first paint, to the 10,000 runs in the
   table, to the Results screen's analysed table, to the next test set's; and what filling a ``DataTable`` with
   the same 10,000 rows costs (the table the Queue screen had before).

The store: a submitted experiment of LABELS configurations in groups of 5 x REPLICATES replicates (defaults 40 x
10: the size of the paper's augmentation figure), each a succeeded classify run with ``auc/<test set>`` metrics on
5 test sets (``bench_results.build``), and queued ``count`` runs up to RUNS. ``--device`` is accepted like every
bench script's; the TUI itself never uses a device.

Usage: python bench/bench_tui.py [--runs 10000] [--labels 40] [--replicates 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench_results import build

from engine import store as st


def make_store(ws: Path, n: int, labels: int, replicates: int) -> str:
    """The experiment (its name is returned) and filler runs up to ``n`` runs in all."""
    name = build(ws, labels, replicates)
    with st.open_store(ws) as store:
        store.create_runs([st.NewRun("count", {"n": 10, "seed": i}, label=f"bench {i % 7}")
                           for i in range(n - labels // 5 * 5 * replicates)])
    return name


def in_a_terminal(ws: Path, cols: int = 120, rows: int = 36) -> dict[str, float]:
    """Start the UI in a pseudo-terminal; seconds from the start until each marker appears in its output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the UI, exactly as a user starts it
        os.execv(sys.executable, [sys.executable, "-m", "ganaug_tui", "--workspace", str(ws)])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    t0 = time.perf_counter()
    out, times = b"", {}
    markers = [("first paint", b"Results"), ("runs shown", b"classify"), ("results shown", b"verdict")]
    deadline = t0 + 60
    try:
        while markers and time.perf_counter() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if b"\x1b[c" in chunk or b"\x1b[16t" in chunk or b"\x1b_G" in chunk:  # image-support probes
                    os.write(fd, b"\x1b[?62;22c")  # answer like a terminal without graphics
                out += chunk
            name, marker = markers[0]
            if marker in out:
                times[name] = time.perf_counter() - t0
                markers.pop(0)
                out = b""
                if name == "runs shown":  # pressed at once: the analysis imports are still warming up
                    t_press = time.perf_counter()
                    os.write(fd, b"5")
                    times["(key 5 pressed at)"] = t_press - t0
        os.write(fd, b"q")
        time.sleep(0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)
    return times


async def headless(ws: Path, n: int) -> dict[str, float]:
    from textual.app import App
    from textual.widgets import DataTable

    from ganaug_tui.app import GanaugApp
    from ganaug_tui.screens.results import ResultsTable
    from ganaug_tui.widgets.run_table import RunTable

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    app = GanaugApp(ws, poll_s=60, gpu=False)
    async with app.run_test(size=(120, 36)) as pilot:
        times["first paint"] = time.perf_counter() - t0
        while len(app.screen.query_one(RunTable).rows) < n:
            await pilot.pause(0.005)
        times["10,000 runs in the table"] = time.perf_counter() - t0
        await app.workers.wait_for_complete()  # the analysis imports, warmed while the user reads the queue
        t1 = time.perf_counter()
        await pilot.press("5")
        while not app.screen.query(ResultsTable) or not app.screen.query_one(ResultsTable).rows:
            await pilot.pause(0.005)
        times["Results analysed and shown (5 pressed when idle)"] = time.perf_counter() - t1
        table = app.screen.query_one(ResultsTable)
        first = table.rows
        t1 = time.perf_counter()
        await pilot.press("s")
        while table.rows is first:
            await pilot.pause(0.005)
        times["next test set analysed and shown (s)"] = time.perf_counter() - t1
        snap = app.snapshot
    assert snap is not None

    class Baseline(App[None]):
        def compose(self):
            yield DataTable()

    base = Baseline()
    async with base.run_test(size=(120, 36)) as pilot:
        table = base.query_one(DataTable)
        for c in ("run", "kind", "label", "status", "progress", "try", "elapsed"):
            table.add_column(c, key=c)
        t1 = time.perf_counter()
        for r in snap.runs:
            table.add_row(r.id, r.kind, r.label or "", r.status, "", str(r.attempt), "", key=r.id)
        await pilot.pause()
        times["DataTable.add_row x 10,000 (the old Queue table)"] = time.perf_counter() - t1
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--labels", type=int, default=40, help="configurations of the experiment (groups of 5)")
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; the TUI uses no device")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "runs"
        t0 = time.perf_counter()
        make_store(ws, args.runs, args.labels, args.replicates)
        print(f"store with {args.runs:,} runs made in {time.perf_counter() - t0:.1f} s: an experiment of "
              f"{args.labels // 5 * 5} configurations x {args.replicates} replicates x 5 test sets of AUCs, the rest "
              f"queued filler runs; device {args.device} (the TUI uses none)")
        env_ok = subprocess.run([sys.executable, "-c", "import ganaug_tui.app"], capture_output=True).returncode == 0
        if env_ok:
            print("in a pseudo-terminal, 120x36, from process start (imports included):")
            for name, secs in in_a_terminal(ws).items():
                print(f"  {name:<45} {secs * 1000:8.0f} ms")
        print("in-process (headless driver), 120x36:")
        for name, secs in asyncio.run(headless(ws, args.runs)).items():
            print(f"  {name:<45} {secs * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
