"""Results of a 10,000-run experiment (printed, not asserted): the time to compute ``ganaug results``' table.

Fixture: one experiment of LABELS configurations in groups of 5 (each group's first label is its real-only
baseline) x REPLICATES replicates = 10,000 succeeded classify runs by default, each with ``auc/<test set>`` metrics
on 5 test sets at step 0 (as the classify kind records them), written through the store API. Then, timed:
loading (two store queries -> the AUC frame), descriptive statistics, paired comparisons (bootstrap CI with N_BOOT
resamples + Wilcoxon + Holm per comparison), all of ``engine.analysis.analyse``, and the ``ganaug results``
process end to end (csv to /dev/null; with --out, PNG+SVG too).

Usage: python bench/bench_results.py [--labels 100] [--replicates 100] [--n-boot 10000] [--device cpu]
(the analysis runs on the CPU whatever --device says; the flag is accepted like every bench's)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine import store as st
from engine.analysis import analyse
from engine.analysis.load import load_aucs, stored_experiment
from engine.analysis.stats import compare, describe
from engine.config import parse_experiments

GANAUG = str(Path(sys.executable).parent / "ganaug")
TEST_SETS = ("isic20", "derm7pt-derm", "derm7pt-clinic", "dermofit")


def build(ws: Path, n_labels: int, replicates: int) -> str:
    """Write the fixture experiment; returns its name."""
    labels = [f"1/{g + 2}:{i}/8" if i else f"1/{g + 2}:0" for g in range(n_labels // 5) for i in range(5)]
    groups = "\n".join(f'g{g} = [{", ".join(repr(x).replace(chr(39), chr(34)) for x in labels[5 * g:5 * g + 5])}]'
                       for g in range(n_labels // 5))
    tests = "".join(f'[data.tests.{t}]\nformat = "dermofit"\nroot = "/d/{t}"\n' for t in TEST_SETS)
    text = (f'[data.train]\nformat = "isic2019"\nroot = "/d/train"\n{tests}[gans.sgn]\nfamily = "stylegan2"\n'
            f'[[experiment]]\nname = "big"\nbaseline = "1/2:0"\nreplicates = {replicates}\n'
            f'[experiment.groups]\n{groups}\n')
    exp = parse_experiments(text, Path("bench.toml"))[0]
    rng = np.random.default_rng(0)
    with st.open_store(ws) as s:
        s.set_experiment(exp.name, exp.to_spec())
        keys = [(lab, k) for lab in exp.labels for k in range(replicates)]
        ids = s.create_runs([st.NewRun("classify", {"replicate": k}, label=lab, experiment=exp.name)
                             for lab, k in keys])
        now = time.time()
        for run_id in ids:
            s.write_metrics(run_id, [(f"auc/{t}", 0, float(0.75 + 0.03 * rng.standard_normal()), now)
                                     for t in exp.test_sets] + [("auc/val", 0, 0.8, now)])
            s.finish(run_id, st.SUCCEEDED)
    return exp.name


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=100)
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--n-boot", type=int, default=10_000)
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; the analysis is CPU work")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        ws = Path(tmp) / "ws"
        name, fill = timed(build, ws, args.labels, args.replicates)
        n_runs = args.labels // 5 * 5 * args.replicates
        print(f"fixture: {n_runs} succeeded classify runs x {len(TEST_SETS) + 1} test sets in {fill:.1f} s "
              f"(setup, not part of the figures); device {args.device} (analysis runs on the CPU)")
        with st.open_store(ws, readonly=True) as s:
            exp = stored_experiment(s, name)
            data, t_load = timed(load_aucs, s, exp)
            _, t_desc = timed(describe, data.aucs, exp)
            table, t_cmp = timed(compare, data.aucs, exp, n_boot=args.n_boot)
            res, t_all = timed(analyse, s, name, n_boot=args.n_boot)
        print(f"load (two store queries -> {len(data.aucs)} AUC rows): {t_load * 1e3:.0f} ms")
        print(f"describe ({len(res.summary)} rows): {t_desc * 1e3:.0f} ms")
        print(f"compare ({len(table)} paired comparisons, {args.n_boot} bootstrap resamples each): "
              f"{t_cmp * 1e3:.0f} ms ({t_cmp / max(1, len(table)) * 1e3:.1f} ms per comparison)")
        print(f"analyse() total (load + describe + compare + table): {t_all * 1e3:.0f} ms")
        env = os.environ | {"GANAUG_WORKSPACE": str(ws)}
        for extra, what in (([], "csv"), (["--out", str(Path(tmp) / "out")], "csv + PNG/SVG of every test set")):
            t0 = time.perf_counter()
            subprocess.run([GANAUG, "results", name, "--format", "csv", *extra], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"`ganaug results {name}` ({what}), whole process: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
