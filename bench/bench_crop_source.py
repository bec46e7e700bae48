"""Where the resized crop is taken from: the image squashed to the model's resolution R (ganaug's default) or a
copy cached at 1.25 R (closer to the authors, who cropped the original photograph and then resized).

Runs the demo's 1:0 baseline (the demo classifier: test_resnet, 48 px, 20 epochs, 50-replica TTA, scored on
every demo test set) for replicates 0..K-1 both ways, paired (same replicate = same real images, same seeds),
and prints the AUC per test set per way and the paired differences.

Run: ``.venv/bin/python bench/bench_crop_source.py [--device cpu|cuda] [--replicates 3] [--data DIR]``
(DIR: a rendered demo, e.g. from ``ganaug data demo --out DIR``; rendered into a temporary folder when left out).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from engine.data.demo_data import MANIFEST, generate_demo
from engine.demo import classify_config
from engine.runner.launch import run_here

SCALES = (1.0, 1.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's 20")
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "demo"
        manifest = (json.loads((data / MANIFEST).read_text()) if (data / MANIFEST).is_file()
                    else generate_demo(data))
        auc: dict[float, list[dict[str, float]]] = {s: [] for s in SCALES}
        for replicate in range(args.replicates):
            for scale in SCALES:
                config = classify_config(data.absolute(), manifest, args.epochs)
                config.update(replicate=replicate, device=args.device, augment={"source_scale": scale})
                t = time.perf_counter()
                run = run_here("classify", config, workspace=Path(tmp) / "ws")
                if run["status"] != "succeeded":
                    raise SystemExit(f"run failed: {run['exit_reason']}")
                result = json.loads((Path(run["run_dir"]) / "result.json").read_text())
                auc[scale].append({"val": result["val_auc"], **result["auc"]})
                print(f"replicate {replicate} source_scale {scale}: {time.perf_counter() - t:5.0f} s  "
                      + "  ".join(f"{k} {v:.3f}" for k, v in auc[scale][-1].items()), flush=True)
    names = list(auc[SCALES[0]][0])
    print(f"\nAUC, mean ± sd over {args.replicates} replicates ({args.device}); diff = 1.25 R minus R, paired")
    print(f"{'set':<16}" + "".join(f"{f'scale {s}':>18}" for s in SCALES) + f"{'diff':>18}")
    for name in names:
        cols = []
        for s in SCALES:
            xs = [r[name] for r in auc[s]]
            cols.append(f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:.3f}")
        diffs = [b[name] - a[name] for a, b in zip(auc[SCALES[0]], auc[SCALES[1]], strict=True)]
        sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        print(f"{name:<16}" + "".join(f"{c:>18}" for c in cols) + f"{statistics.mean(diffs):+9.3f} ± {sd:.3f}")


if __name__ == "__main__":
    main()
