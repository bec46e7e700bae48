"""``ganaug demo``: the whole product on the embedded procedural data, on a CPU, in minutes.

Steps: render the demo collection (reused when it already exists), read every data set back through the
real adapters and check the counts against the manifest, then fine-tune the target classifier on the
ISIC 2019-layout training data (the paper's 1:0 baseline, small model and images) and score it on every
test set with test-time augmentation. Every step goes through the same code a real data set would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import InputError

# Data set in the demo manifest -> name of the test set it provides (isic19 is the training split's test part).
DEMO_TEST_SETS = ("isic2020", "derm7pt-derm", "derm7pt-clinic", "dermofit")
_TEST_ORDER = {name: i for i, name in enumerate(("isic19", "isic20", "derm7pt-derm", "derm7pt-clinic", "dermofit"))}
# Small enough for a 2-core CPU: timm's test_resnet at 48 px trains at ~1,200 img/s there. It starts from random
# weights (nothing may be downloaded), so it gets lr 1e-2 instead of the paper's 1e-3, which is a rate for
# fine-tuning ImageNet weights; every other protocol setting is the paper's.
DEMO_CLASSIFIER: dict[str, Any] = {
    "model": {"name": "test_resnet", "pretrained": False, "res": 48},
    "optim": {"max_epochs": 20, "lr": 1e-2},
    "tta": {"replicas": 50},
}


def check_demo(data_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Read every demo data set through its adapter; each must hold what the manifest says it holds."""
    from engine.data import load_dataset

    rows = []
    for name, info in manifest["datasets"].items():
        ds = load_dataset(info["format"], data_dir / info["root"])
        got = {"n": ds.n, "melanoma": ds.n_melanoma, "benign": ds.n_benign}
        want = {k: info[k] for k in got}
        if got != want:
            raise InputError(f"{data_dir / info['root']}: demo set {name} reads back as {got}, manifest says {want}")
        rows.append({"name": name, "format": info["format"], **got, "dropped": ds.dropped})
    return rows


def classify_config(data_dir: Path, manifest: dict[str, Any], epochs: int | None = None) -> dict[str, Any]:
    """The baseline (1:0) classify config on the demo data, every other data set as a test set."""
    sets = manifest["datasets"]
    config: dict[str, Any] = {
        "data": {"format": "isic2019", "root": str(data_dir / sets["isic2019"]["root"])},
        "tests": [{"format": sets[n]["format"], "root": str(data_dir / sets[n]["root"])} for n in DEMO_TEST_SETS],
        "real_fraction": "1",
        **DEMO_CLASSIFIER,
    }
    if epochs is not None:
        config["optim"] = {**config["optim"], "max_epochs": epochs}
    return config


def run_demo(
    workspace: Path,
    data_dir: Path | None = None,
    *,
    seed: int = 0,
    epochs: int | None = None,
    data_only: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo; returns ``{"data_dir", "datasets": [...], "run": outcome | None}``."""
    from engine.data.demo_data import MANIFEST, generate_demo
    from engine.runner.launch import run_here

    managed = data_dir is None  # the workspace's own demo folder may be re-rendered; a folder the user named may not
    data_dir = (data_dir or workspace / "demo-data").absolute()
    params: dict[str, Any] = {"seed": seed}
    if not managed and (data_dir / MANIFEST).is_file():  # a demo the user pointed to is used as it is
        old = json.loads((data_dir / MANIFEST).read_text())
        params = {k: old[k] for k in ("seed", "res", "n_train")}
    say(f"demo data in {data_dir} (rendered once, then reused)")
    manifest = generate_demo(data_dir, **params, overwrite=managed)
    rows = check_demo(data_dir, manifest)
    for r in rows:
        say(f"  {r['name']:<15} {r['n']:>5} images  {r['melanoma']:>4} melanoma  {r['benign']:>5} benign")
    result: dict[str, Any] = {"data_dir": str(data_dir), "datasets": rows, "run": None}
    if data_only:
        return result
    say("fine-tuning the target classifier (baseline 1:0) and scoring every test set")
    run = run_here("classify", classify_config(data_dir, manifest, epochs), label="demo 1:0", workspace=workspace)
    result["run"] = run
    if run["status"] == "succeeded":
        scores = json.loads((Path(run["run_dir"]) / "result.json").read_text())
        result["auc"] = scores["auc"]
        say(f"AUC (melanoma vs benign, {DEMO_CLASSIFIER['tta']['replicas']}-replica TTA), "
            f"best epoch {scores['best_epoch']} of {scores['epochs']}:")
        for name, auc in sorted(scores["auc"].items(), key=lambda kv: _TEST_ORDER.get(kv[0], 99)):
            say(f"  {name:<15} {auc:.3f}")
    say(f"run {run['run_id']} {run['status']}; everything it made is in {run['run_dir']}")
    return result
