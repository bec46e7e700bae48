"""``ganaug demo``: the whole paper on the embedded procedural data, on a CPU, in minutes.

Steps, each timed against a budget: render the demo collection (reused when it exists; each parameter set in its
own folder, so a demo never replaces data a run uses) and read every data set back through the real adapters,
checking the counts against the manifest; then the ``demo`` experiment of ``experiments.toml`` through the
experiment grid, in the foreground: the ``1:0`` baseline's replicate 0 (its features choose the GAN's checkpoint,
its errors rank the best sampler), a ``demo``-preset StyleGAN2, its pool, the selections (random, diverse, best)
and the fine-tunes of every configuration x 3 replicates, scored on all five test sets; then the results with
paired statistics. A second demo reuses every run and prints the results in seconds.

What the demo cuts against the paper lives in the ``demo`` experiment (the same for every configuration) and is
listed in the README; this module only points the experiment at the demo data it rendered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from engine.analysis import Results

DEMO_EXPERIMENT = "demo"
# Data set in the demo manifest -> name of the test set it provides (isic19 is the training split's test part).
DEMO_TEST_SETS = ("isic2020", "derm7pt-derm", "derm7pt-clinic", "dermofit")
_TEST_ORDER = {name: i for i, name in enumerate(("isic19", "isic20", "derm7pt-derm", "derm7pt-clinic", "dermofit"))}
# The test sets the demo draws as box-plots: one in-distribution, one out-of-distribution (clinical photographs).
PLOTTED = ("isic19", "derm7pt-clinic")
# Wall-time budget per stage on a quiet 2-core CPU, seconds (10 minutes in all); the demo prints it beside what
# each stage took.
BUDGET: dict[str, float] = {"data": 45, "GAN": 200, "pool": 20, "selection": 30, "fine-tunes": 250, "analysis": 25,
                            "planning": 30}
_STAGE_OF_KIND = {"gan-train": "GAN", "gan-import": "GAN", "gan-pool": "pool", "select": "selection",
                  "classify": "fine-tunes"}
# Experiment keys that point the demo experiment at a demo folder: toml key -> data set of the manifest.
_DATA_KEYS = {"data.train.root": "isic2019", "data.tests.isic20.root": "isic2020",
              "data.tests.derm7pt-derm.root": "derm7pt-derm", "data.tests.derm7pt-clinic.root": "derm7pt-clinic",
              "data.tests.dermofit.root": "dermofit", "data.masks.root": "isic2018-masks"}


def demo_protocol() -> dict[str, Any]:
    """The classify keys of the shipped ``demo`` experiment (small model, short training, fewer TTA replicas):
    the one place the demo's classifier is defined (the TUI Builder's demo protocol, the benchmarks)."""
    from engine.config import EXPERIMENTS_FILE, find_experiment, parse_experiments, shipped_experiments_text

    shipped = parse_experiments(shipped_experiments_text(), Path(f"<shipped {EXPERIMENTS_FILE}>"))
    return find_experiment(shipped, DEMO_EXPERIMENT).protocol


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
    """The demo experiment's ``1:0`` classify config on a demo folder, every other data set a test set (the
    Builder's demo data, the benchmarks)."""
    sets = manifest["datasets"]
    protocol = demo_protocol()
    config: dict[str, Any] = {
        **protocol,
        "data": {"format": "isic2019", "root": str(data_dir / sets["isic2019"]["root"])},
        "tests": [{"format": sets[n]["format"], "root": str(data_dir / sets[n]["root"])} for n in DEMO_TEST_SETS],
        "real_fraction": "1",
    }
    if epochs is not None:
        config["optim"] = {**config.get("optim", {}), "max_epochs": epochs}
    return config


def experiment_sets(data_dir: Path, manifest: dict[str, Any], epochs: int | None = None) -> list[str]:
    """``--set`` overrides that point the ``demo`` experiment at the demo folder ``data_dir`` (and cut its epochs)."""
    import json

    roots = {key: data_dir / manifest["datasets"][name]["root"] for key, name in _DATA_KEYS.items()}
    out = [f"experiment.{DEMO_EXPERIMENT}.{key}={json.dumps(str(root))}" for key, root in roots.items()]
    if epochs is not None:
        out.append(f"experiment.{DEMO_EXPERIMENT}.protocol.optim.max_epochs={epochs}")
    return out


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


@dataclass
class DemoResult:
    """What ``ganaug demo`` did: the data, the experiment's runs and their states, wall seconds per stage, the
    results (None with ``data_only`` or when a run failed before any result) and the files written."""

    data_dir: Path
    datasets: list[dict[str, Any]]
    runs: dict[str, str] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    results: Results | None = None
    files: list[Path] = field(default_factory=list)
    reused: int = 0
    gans: list[dict[str, Any]] = field(default_factory=list)  # gan_summaries: the checkpoint each GAN chose, and why

    @property
    def ok(self) -> bool:
        return all(s == "succeeded" for s in self.runs.values())

    def to_json(self) -> dict[str, Any]:
        from engine.analysis import tables

        return {"data_dir": str(self.data_dir), "datasets": self.datasets, "experiment": DEMO_EXPERIMENT,
                "runs": self.runs, "reused": self.reused, "stages": self.stages, "budget": BUDGET,
                "results": None if self.results is None else tables.records(self.results.table),
                "gans": self.gans, "files": [str(f) for f in self.files]}


def run_demo(
    workspace: Path,
    data_dir: Path | None = None,
    *,
    seed: int = 0,
    res: int | None = None,
    n_train: int | None = None,
    epochs: int | None = None,
    data_only: bool = False,
    file: Path | None = None,
    sets: Sequence[str] = (),
    say: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Run the demo (every option is checked before any work).

    Without ``data_dir`` the data lives in the workspace's folder for its parameters (``demo_data_dir``); a folder
    the user names is used as it is when it holds a demo, else rendered there if it is missing or empty.
    ``progress(done, total)`` hears of the rendering. The ``demo`` experiment comes from ``file`` (default
    ``./experiments.toml``, else the shipped one), pointed at the demo folder; ``sets`` override its keys
    (``experiment.demo.gans.sgn.preset=tiny``)."""
    from engine.data.demo_data import DEMO_DEFAULTS, check_params, generate_demo, read_manifest

    params = {"seed": seed, "res": res or DEMO_DEFAULTS["res"], "n_train": n_train or DEMO_DEFAULTS["n_train"]}
    check_params(**params)
    if epochs is not None and epochs < 1:
        raise InputError(f"demo --epochs {epochs}: must be at least 1")
    t0 = time.perf_counter()
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
    result = DemoResult(data_dir, rows, stages={"data": time.perf_counter() - t0})
    if data_only:
        return result
    _run_experiment(workspace, [*experiment_sets(data_dir, manifest, epochs), *sets], file, result, say)
    return result


def _run_experiment(workspace: Path, sets: list[str], file: Path | None, result: DemoResult,
                    say: Callable[[str], None]) -> None:
    """Plan and run the demo experiment in the foreground, then its results; fills ``result``."""
    from engine import grid
    from engine import store as st
    from engine.analysis import analyse, write_files
    from engine.config import find_experiment, read_experiments
    from engine.runner.dag import launch_experiment

    t0 = time.perf_counter()
    experiment = find_experiment(read_experiments(file, workspace=workspace, sets=sets), DEMO_EXPERIMENT)
    with st.open_store(workspace) as store:
        store.reap_dead_owners()
        planned = grid.plan(experiment, workspace, store=store)
        result.reused = len(planned.runs) - len(planned.new)
        say(f"experiment {DEMO_EXPERIMENT}: {len(planned.runs)} runs, {len(planned.new)} to create, "
            f"{result.reused} already in the store ("
            + ", ".join(f"{k} {v['runs']}" for k, v in planned.summary().items()) + ")")
        result.stages["planning"] = time.perf_counter() - t0
        sub, outcome = launch_experiment(store, planned)
        assert outcome is not None
        kinds = {r.id: r.kind for r in store.get_runs(sub.run_ids)}
        for stage in ("GAN", "pool", "selection", "fine-tunes"):
            result.stages[stage] = sum(s for rid, s in outcome.executed.items() if _STAGE_OF_KIND[kinds[rid]] == stage)
        result.runs = outcome.status
        result.gans = gan_summaries(store, sub.run_ids)
        t1 = time.perf_counter()
        if any(s == "succeeded" for rid, s in outcome.status.items() if kinds[rid] == "classify"):
            result.results = analyse(store, DEMO_EXPERIMENT)
            result.files = write_files(result.results, workspace / "results" / DEMO_EXPERIMENT)
        result.stages["analysis"] = time.perf_counter() - t1


def gan_summaries(store: Any, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Per finished GAN run among ``run_ids``: the checkpoint the rule selected, the rule in words, the metrics of
    every checkpoint (FID, precision, recall on its feature space) and the selected checkpoint's sample grid: what
    the pool was drawn from, shown at the end of the demo."""
    import json

    out = []
    for run in store.get_runs(list(run_ids)):
        if run.kind not in ("gan-train", "gan-import") or run.status != "succeeded":
            continue
        try:
            doc = json.loads((store.run_dir(run.id) / "result.json").read_text())
        except (OSError, ValueError):
            continue
        selected = doc["selected"]
        chosen = next(c for c in doc["checkpoints"] if c["kimg"] == selected["kimg"])
        out.append({"run_id": run.id, "kimg": selected["kimg"], "rule": selected["rule"],
                    "grid": str(store.run_dir(run.id) / chosen["grid"]) if chosen.get("grid") else None,
                    "checkpoints": [{k: v for k, v in c.items() if k == "kimg" or k.startswith(_SCORES)}
                                    for c in doc["checkpoints"]]})
    return out


_SCORES = ("fid", "precision", "recall")


def gan_lines(gans: Sequence[dict[str, Any]]) -> list[str]:
    """``gan_summaries`` as text: the selected checkpoint, the rule, the curve, the sample grid."""
    lines = []
    for g in gans:
        names = [k for k in g["checkpoints"][0] if k != "kimg"] if g["checkpoints"] else []
        lines.append(f"GAN {g['run_id']}: checkpoint kimg {g['kimg']} selected ({g['rule']})")
        lines.append("  " + "  ".join([f"{'kimg':>5}", *(f"{n:>16}" for n in names)]))
        for c in g["checkpoints"]:
            mark = "  <- selected" if c["kimg"] == g["kimg"] else ""
            lines.append("  " + "  ".join([f"{c['kimg']:>5}", *(f"{c[n]:>16.3f}" for n in names)]) + mark)
        if g["grid"]:
            lines.append(f"  its samples: {g['grid']}")
    return lines


def budget_lines(stages: dict[str, float]) -> list[str]:
    """The per-stage wall times beside the budget (quiet 2-core CPU), for the end of the demo."""
    lines = [f"{'stage':<11} {'took':>7} {'budget':>7}"]
    for stage, budget in BUDGET.items():
        took = stages.get(stage, 0.0)
        lines.append(f"{stage:<11} {took:>6.0f}s {budget:>6.0f}s" + ("  over budget" if took > budget else ""))
    lines.append(f"{'total':<11} {sum(stages.values()):>6.0f}s {sum(BUDGET.values()):>6.0f}s")
    return lines
