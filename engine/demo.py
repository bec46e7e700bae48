"""``ganaug demo``: the whole product on the embedded procedural data, on a CPU, in minutes.

Steps: render the demo collection (reused when it already exists; each parameter set in its own folder, so a
demo never replaces data a run uses), read every data set back through the
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


def demo_data_dir(workspace: Path, seed: int, res: int, n_train: int) -> Path:
    """Where ``ganaug demo`` keeps the data of these parameters: ``<workspace>/demo-data`` for the defaults,
    ``<workspace>/demo-data-seed<S>-res<R>-n<N>`` otherwise. One folder per parameter set, so rendering a demo
    never replaces the data another demo's runs train on."""
    from engine.data.demo_data import DEMO_DEFAULTS

    params = {"seed": seed, "res": res, "n_train": n_train}
    if params == DEMO_DEFAULTS:
        return workspace / "demo-data"
    return workspace / f"demo-data-seed{seed}-res{res}-n{n_train}"


def runs_using(workspace: Path, folder: Path) -> list[str]:
    """Runs of the workspace's store (if it has one) whose config names ``folder`` or a path inside it."""
    from engine import store as st

    if not st.db_path(workspace).is_file():
        return []
    with st.open_store(workspace, readonly=True, create=False) as store:
        return store.runs_referencing(folder)


def _managed_data(workspace: Path, data_dir: Path, params: dict[str, int], say: Callable[[str], None],
                  progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """The workspace's own demo folder for ``params``: reused when it holds that demo; rendered when it is
    missing or empty; replaced only while no run of the store uses it (an older ganaug's demo, another
    version), else refused in one line."""
    from engine.data.demo_data import VERSION, generate_demo, read_manifest

    old = read_manifest(data_dir)
    same = old is not None and old.get("version") == VERSION and all(old.get(k) == v for k, v in params.items())
    replace = old is not None and not same
    if replace:
        users = runs_using(workspace, data_dir)
        if users:
            raise InputError(
                f"{data_dir}: holds a demo with other parameters (seed={old.get('seed')}, res={old.get('res')}, "
                f"n_train={old.get('n_train')}, version={old.get('version')}) that {len(users)} run(s) use "
                f"({', '.join(users[:3])}); it is left as it is: pass --data DIR to render this demo elsewhere")
        say(f"replacing the unused demo in {data_dir} (seed={old.get('seed')}, version={old.get('version')})")
    if not same:
        say(f"rendering the demo data into {data_dir} (seed={params['seed']}, res={params['res']}, "
            f"n_train={params['n_train']})")
    else:
        say(f"demo data in {data_dir} (rendered before; reused)")
    return generate_demo(data_dir, **params, overwrite=replace, progress=progress)


def run_demo(
    workspace: Path,
    data_dir: Path | None = None,
    *,
    seed: int = 0,
    res: int | None = None,
    n_train: int | None = None,
    epochs: int | None = None,
    data_only: bool = False,
    say: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the demo; returns ``{"data_dir", "datasets": [...], "run": outcome | None}``.

    Every option is checked before any work. Without ``data_dir`` the data lives in the workspace's folder
    for its parameters (``demo_data_dir``); a folder the user names is used as it is when it holds a demo,
    else rendered there if it is missing or empty. ``progress(done, total)`` hears of the rendering."""
    from engine.data.demo_data import DEMO_DEFAULTS, check_params, generate_demo, read_manifest
    from engine.runner.launch import run_here

    params = {"seed": seed, "res": res or DEMO_DEFAULTS["res"], "n_train": n_train or DEMO_DEFAULTS["n_train"]}
    check_params(**params)
    if epochs is not None and epochs < 1:
        raise InputError(f"demo --epochs {epochs}: must be at least 1")
    if data_dir is None:
        data_dir = demo_data_dir(workspace, **params).absolute()
        manifest = _managed_data(workspace, data_dir, params, say, progress)
    else:
        data_dir = data_dir.absolute()
        old = read_manifest(data_dir)
        if old is not None:
            params = {k: old[k] for k in ("seed", "res", "n_train")}
            say(f"demo data in {data_dir} used as it is (seed={params['seed']}, res={params['res']}, "
                f"n_train={params['n_train']})")
        else:
            say(f"rendering the demo data into {data_dir}")
        manifest = generate_demo(data_dir, **params, progress=progress)
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
