"""The experiment grid: one experiment of ``experiments.toml`` becomes a DAG of runs in the store.

Configurations x replicates become runs of the kinds ``gan-train`` (or ``gan-import``) -> ``gan-pool`` ->
``select`` -> ``classify``, plus two hidden edges: replicate 0 of the ``1:0`` baseline (all real images, the
experiment's protocol) precedes every GAN whose checkpoint FID uses domain features (``features = "baseline"``)
and every best/worst selection whose helper is the baseline. ``--only`` plans those hidden parents too.

What makes a run one run: its kind and its validated config (``engine.store.config_hash``). A GAN, a pool or a
selection that many configurations share is planned once; a selection's config holds only what determines its
content (the synthetic counts per class, not the real fraction: ``(1:1/2:1/2)``, ``1:1/2`` and anonymization's
``1/2:1/2`` draw the same images), so identical configurations are one run set wherever they appear, shown under
every label that names them (the store's ``run_labels``). Submitting again reuses what the store has: a run with
the same config that succeeded (and still has its output), is waiting or running is reused; one that failed,
was cancelled or interrupted is re-queued; only what is missing is created, so ``--replicates 10`` after 3 adds 7
runs per configuration. Configs name their parent runs by id, so a run is reused only when its parents are.

The paper's pairing: replicate k of every configuration trains on the same real subset (the classify kind
draws it from (split, fraction, replicate) alone) and the selection has no replicate, so it is the same for
every replicate.

Every config passes its kind's own validator before anything is created (a run of the same batch is named by its
``engine.store.batch_ref`` placeholder, which validators accept inside ``engine.runner.kinds.planned_runs``), so a
grid is refused whole, in one line, or created whole, in one transaction. Runs compared in an experiment share
one protocol (``engine.train.protocol_diff``): submitting an experiment whose stored runs were made with another
protocol is refused.

Class sizes come from the records of the training split (and of the training masks, for translation GANs); no
image file is read. :class:`Sizes` given by the caller plan against any data set without it (a what-if plan:
configs are not validated and the store is not consulted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import TRANSLATION_GANS, Configuration, Experiment, GanSpec, Ratio
from engine.errors import InputError
from engine.executors import ExecutorSpec

if TYPE_CHECKING:
    from engine.store import Run, Store

CLASS_NAMES = ("benign", "melanoma")
DEFAULT_POOL_PER_CLASS = 100_000  # a noise GAN's pool when the experiment names no size (the paper's)
BASELINE_LABEL = "1:0"  # whose replicate 0 gives the domain features and the best/worst helper
HELPER_SAMPLERS = ("best", "worst")


@dataclass(frozen=True)
class Sizes:
    """Images per class of the FULL real training split, and training masks per class (benign, melanoma) when a
    translation GAN is planned: what the ratio grammar scales and what translation GANs can give."""

    benign: int
    melanoma: int
    masks: tuple[int, int] | None = None


@dataclass
class PlannedRun:
    """One run of the plan: a new one (``ref`` = its batch placeholder) or one the store has (``run_id``).

    ``parents`` are indexes into the plan's runs; ``labels`` every configuration label that names the run, the
    first being the run's label; ``replicate`` None for runs every replicate shares; ``counts`` per class for
    classify runs."""

    index: int
    kind: str
    config: dict[str, Any]
    labels: list[str]
    replicate: int | None
    parents: list[int]
    counts: dict[str, dict[str, int]] | None = None
    run_id: str | None = None
    status: str | None = None  # the existing run's status when planned
    ref: str | None = None
    external: bool = False  # a run the experiment only uses (a helper named by id): never linked to its labels

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def reused(self) -> bool:
        return self.run_id is not None

    def to_json(self) -> dict[str, Any]:
        """One entry of ``ganaug run EXPERIMENT --dry-run --json`` (a contract: exactly these keys)."""
        return {"kind": self.kind, "label": self.label, "labels": list(self.labels), "replicate": self.replicate,
                "reused": self.reused, "parents": list(self.parents), "counts": self.counts}


@dataclass
class Plan:
    """An experiment expanded into runs, in dependency order (every parent before its children)."""

    experiment: Experiment
    runs: list[PlannedRun]
    sizes: Sizes
    replicates: int
    labels: list[str]  # the configurations planned (all, or those of --only)
    new: list[int] = field(default_factory=list)  # indexes of the runs to create, in creation order
    executor: ExecutorSpec = ExecutorSpec()  # where the runs it creates or re-queues execute

    def to_json(self) -> dict[str, Any]:
        """``ganaug run EXPERIMENT --dry-run --json``: ``{"experiment", "runs": [...]}``."""
        return {"experiment": self.experiment.name, "runs": [r.to_json() for r in self.runs]}

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind: runs planned, new, reused."""
        out: dict[str, dict[str, int]] = {}
        for r in self.runs:
            row = out.setdefault(r.kind, {"runs": 0, "new": 0, "reused": 0})
            row["runs"] += 1
            row["reused" if r.reused else "new"] += 1
        return out


# ------------------------------------------------------------------------------------------ sizes
def data_sizes(experiment: Experiment, workspace: Path) -> Sizes:
    """Class sizes of the experiment's training split, and of its training masks when a translation GAN is
    used, from records only (the split the runs will use; nothing is written)."""
    from engine.data import load_dataset
    from engine.data.masks import training_masks
    from engine.data.split import persisted_split
    from engine.synth.select import real_class_sizes
    from engine.train.config import DataConfig

    train = _train(experiment)
    data = DataConfig(**train.classify_data())
    benign, melanoma, _ = real_class_sizes(Path(workspace), data, persist=False)
    masks = None
    if experiment.masks is not None and any(g.translation for g in experiment.gans.values()):
        records = load_dataset(train.format, train.root).records
        split, path = persisted_split(Path(workspace), train.format, records, train.split_seed,
                                      split_file=train.split_file, persist=False)
        kept, _ = training_masks(load_dataset("isic2018-masks", experiment.masks).records, split, str(path))
        n_mel = sum(r.label for r in kept)
        masks = (len(kept) - n_mel, n_mel)
    return Sizes(benign, melanoma, masks)


def _train(experiment: Experiment) -> Any:
    if experiment.train is None:
        raise InputError(f"{experiment.source}: experiment {experiment.name!r} has no training data ([data.train])")
    return experiment.train


# ------------------------------------------------------------------------------------------ planning
def plan(experiment: Experiment, workspace: Path, *, store: Store | None = None, only: list[str] | None = None,
         replicates: int | None = None, sizes: Sizes | None = None, executor: ExecutorSpec | None = None) -> Plan:
    """Expand ``experiment`` into runs (nothing is created). ``store``: the workspace's store, whose runs are
    reused (None: a workspace without one). ``only``: these labels (in the experiment's notation) and their hidden
    parents. ``replicates``: instead of the experiment's. ``sizes``: plan against these class sizes instead of
    the data's (a what-if plan: no data is read, configs are not validated, the store is not consulted).
    ``executor``: where the runs will execute (default local); each config's device check asks it."""
    reps = experiment.replicates if replicates is None else replicates
    if reps < 1:
        raise InputError(f"--replicates {reps}: must be at least 1")
    confs = _selected(experiment, only)
    what_if = sizes is not None
    if not what_if:
        experiment.check_resolved()
        sizes = data_sizes(experiment, workspace)
    assert sizes is not None
    spec = executor or ExecutorSpec()
    planner = _Planner(experiment, Path(workspace), None if what_if else store, sizes, validate=not what_if,
                       executor=spec)
    if store is not None and not what_if:
        check_protocol(store, experiment)
    planner.expand(confs, reps)
    return Plan(experiment, planner.runs, sizes, reps, [c.label for c in confs], planner.new, spec)


def _selected(experiment: Experiment, only: list[str] | None) -> list[Configuration]:
    """The experiment's configurations, or those ``only`` names (each must be one of them), in its order."""
    confs = experiment.configurations
    if not only:
        return confs
    wanted = []
    for text in only:
        try:
            label = Configuration.parse(text).label
        except ValueError as exc:
            raise InputError(f"--only {text!r}: {exc}") from None
        if label not in experiment.labels:
            raise InputError(f"--only {text!r}: not a configuration of experiment {experiment.name!r} "
                             f"(it has: {', '.join(experiment.labels)})")
        wanted.append(label)
    return [c for c in confs if c.label in wanted]


def selection_label(conf: Configuration) -> str:
    """The label a selection is made for, canonical in what determines its images: the synthetic counts per class
    (the real part does not change them), the GAN and the sampler. ``1:1/2``, ``(1:1/2:1/2)`` and ``1/2:1/2``
    give ``1:1/2``; ``(1:1/2:3/4) bst`` gives ``(1:1/2:3/4) bst``."""
    sb, sm = conf.ratio.synth_benign, conf.ratio.synth_melanoma
    text = f"1:{sb}" if sb == sm else f"(1:{sb}:{sm})"
    return Configuration(Ratio(Fraction(1), sb, sm, text), conf.gan, conf.sampler).label


class _Planner:
    """Adds runs in dependency order, merging identical ones and matching each with the store."""

    def __init__(self, experiment: Experiment, workspace: Path, store: Store | None, sizes: Sizes,
                 validate: bool, executor: ExecutorSpec) -> None:
        self.exp, self.workspace, self.store, self.sizes, self.validate = experiment, workspace, store, sizes, validate
        self.executor = executor
        self.runs: list[PlannedRun] = []
        self.new: list[int] = []
        self._by_key: dict[str, int] = {}
        self._checked: dict[str, dict[str, Any]] = {}  # raw config hash -> validated config
        self.base = experiment.classify_base()
        device = experiment.protocol.get("device")
        self.device = {"device": device} if device not in (None, "auto") else {}

    # ------------------------------------------------------------------ the DAG
    def expand(self, confs: list[Configuration], replicates: int) -> None:
        exp = self.exp
        used = [g for g in exp.gans.values() if any(g in exp.gans_of(c) for c in confs)]
        best_worst = any(c.ratio.has_synthetic and c.sampler in HELPER_SAMPLERS for c in confs)
        baseline = None
        if (best_worst and exp.samplers.helper == "baseline") or any(
                g.features == "baseline" and not g.fid_weights for g in used):
            baseline = self.classify(Configuration.parse(BASELINE_LABEL), 0, None)
        helper = self.helper(baseline) if best_worst else None
        pools: dict[str, tuple[int, int]] = {}  # tag -> (gan run, pool run), planned with their first user
        for conf in confs:
            selection = None
            if conf.ratio.has_synthetic:
                gans = exp.gans_of(conf)
                for g in gans:
                    if g.tag not in pools:
                        gan = self.gan(g, baseline, conf.label)
                        pools[g.tag] = (gan, self.pool(g, gan, conf.label))
                    for i in pools[g.tag]:
                        self._name(i, conf.label)
                selection = self.select(conf, {g.family: pools[g.tag][1] for g in gans},
                                        helper if conf.sampler in HELPER_SAMPLERS else None)
            for k in range(replicates):
                self.classify(conf, k, selection)

    def helper(self, baseline: int | None) -> int | str | None:
        """The best/worst helper: the baseline's replicate 0, or the classify run ``[samplers] helper`` names."""
        name = self.exp.samplers.helper
        if name == "baseline":
            return baseline
        if self.store is None:
            return name  # a what-if plan: the id is used as written
        run = self.store.get_run(name)
        if run.kind != "classify":
            raise InputError(f"{self.exp.source}: samplers.helper: run {run.id} is a {run.kind} run, not classify")
        node = PlannedRun(len(self.runs), run.kind, run.config, [run.label or run.id], None, [], run_id=run.id,
                          status=run.status, external=True)
        self.runs.append(node)
        return node.index

    def classify(self, conf: Configuration, replicate: int, selection: int | None) -> int:
        config = {**self.base, "real_fraction": str(conf.ratio.real), "replicate": replicate}
        parents = []
        if selection is not None:
            config["synthetic"] = [{"select": self.ref(selection)}]
            parents.append(selection)
        counts = conf.ratio.counts(self.sizes.benign, self.sizes.melanoma)
        synth = self.synthetic_counts(conf) if conf.ratio.has_synthetic else (0, 0)
        doc = {"real": {"benign": counts.real_benign, "melanoma": counts.real_melanoma},
               "synthetic": {"benign": synth[0], "melanoma": synth[1]}}
        return self.add("classify", config, conf.label, replicate, parents, doc)

    def gan(self, g: GanSpec, baseline: int | None, label: str) -> int:
        train = _train(self.exp)
        data = train.classify_data()
        parents = []
        if g.fid_weights:
            metrics: dict[str, Any] = {"fid_weights": g.fid_weights}
        else:
            assert baseline is not None
            metrics = {"features": self.ref(baseline)}
            parents.append(baseline)
        for key in ("select_margin", "select_relative"):  # the checkpoint rule's knobs, when the file sets them
            if getattr(g, key) is not None:
                metrics[key] = getattr(g, key)
        if g.import_file is not None:
            from engine.gans.external import file_format

            path = Path(g.import_file)
            config = {"source": g.import_file, "format": file_format(path) if path.is_file() else "pickle",
                      "trust": g.trust, "code": g.code, "data": data, "metrics": metrics, **self.device}
            return self.add("gan-import", config, label, None, parents)
        if g.translation:
            if self.exp.masks is None:
                raise InputError(f"{self.exp.source}: [gans.{g.tag}]: {g.family} needs [data.masks] root")
            data = {"format": "isic2018-masks", "root": self.exp.masks, "split_seed": train.split_seed}
            if train.split_file is not None:
                data["split_file"] = train.split_file
            elif train.format == "isic2019":
                data["split_data"] = train.root
            else:
                raise InputError(f"{self.exp.source}: [gans.{g.tag}]: {g.family}'s masks are filtered by the "
                                 f"classifier's ISIC 2019 split; [data.train] is {train.format} without a split_file")
        gan: dict[str, Any] = {}
        if g.kimg is not None:
            gan["kimg"] = int(g.kimg) if float(g.kimg).is_integer() else g.kimg
        if g.snapshot_kimg is not None:
            gan["snapshot_kimg"] = g.snapshot_kimg
        config = {"family": g.family, "preset": g.preset, "gan": gan, "data": data, "metrics": metrics, **self.device}
        return self.add("gan-train", config, label, None, parents)

    def pool(self, g: GanSpec, gan: int, label: str) -> int:
        config = {"gan_run": self.ref(gan), "per_class": None if g.translation else g.pool_per_class, **self.device}
        return self.add("gan-pool", config, label, None, [gan])

    def select(self, conf: Configuration, pools: dict[str, int], helper: int | str | None) -> int:
        exp = self.exp
        self.synthetic_counts(conf)  # refused now when the pools cannot give it
        samplers: dict[str, Any] = {"seed": 0}
        if conf.sampler == "diverse" and exp.samplers.diverse_threshold is not None:
            samplers["diverse_threshold"] = exp.samplers.diverse_threshold
        if conf.gan == "all":
            samplers["all_mode"] = exp.samplers.all_mode
        parents = list(pools.values())
        if helper is not None:
            samplers["helper"] = helper if isinstance(helper, str) else self.ref(helper)
            if not isinstance(helper, str):
                parents.append(helper)
        config = {"label": selection_label(conf), "pools": {f: self.ref(i) for f, i in pools.items()},
                  "data": _train(exp).classify_data(), "samplers": samplers,
                  "cap": exp.cap and conf.gan in TRANSLATION_GANS, **self.device}
        return self.add("select", config, conf.label, None, parents)

    def synthetic_counts(self, conf: Configuration) -> tuple[int, int]:
        """Synthetic images per class the configuration trains on: the ratio's request, each GAN's part
        clipped or refused as its selection will (``engine.synth.select.plan_counts``)."""
        from engine.synth.select import plan_counts

        sizes = self.sizes
        counts = conf.ratio.counts(sizes.benign, sizes.melanoma)
        available: dict[str, tuple[int, int]] = {}
        for g in self.exp.gans_of(conf):
            if g.translation:
                if sizes.masks is None:
                    raise InputError(f"{conf.label!r} uses {g.family}: its capacity is the training masks per class, "
                                     "which are not known here (give the mask sizes)")
                available[g.family] = sizes.masks
            else:
                n = g.pool_per_class or DEFAULT_POOL_PER_CLASS
                available[g.family] = (n, n)
        try:
            parts = plan_counts((counts.synth_benign, counts.synth_melanoma), available,
                                {f for f in available if f in TRANSLATION_GANS}, all_gans=conf.gan == "all",
                                cap=self.exp.cap, all_mode=self.exp.samplers.all_mode)
        except InputError as exc:
            raise InputError(f"{self.exp.source}: experiment {self.exp.name!r}: {conf.label!r}: {exc}") from None
        return sum(b for b, _ in parts.values()), sum(m for _, m in parts.values())

    # ------------------------------------------------------------------ nodes
    def ref(self, index: int) -> str:
        """How a config names a planned run: its id when the store has it, else its batch placeholder."""
        node = self.runs[index]
        return node.run_id or node.ref  # type: ignore[return-value]

    def _name(self, index: int, label: str) -> None:
        if label not in self.runs[index].labels:
            self.runs[index].labels.append(label)

    def add(self, kind: str, config: dict[str, Any], label: str, replicate: int | None, parents: list[int],
            counts: dict[str, dict[str, int]] | None = None) -> int:
        """The index of the run with this config: an identical one already planned (now also named ``label``),
        else a new node, matched with the store when every parent is an existing run."""
        from engine.store import config_hash

        config = self.checked(kind, config, label, replicate)
        key = f"{kind}:{config_hash(config)}"
        if key in self._by_key:
            index = self._by_key[key]
            self._name(index, label)
            return index
        node = PlannedRun(len(self.runs), kind, config, [label], replicate, sorted(set(parents)), counts)
        if self.store is not None and all(self.runs[p].reused for p in parents):
            match = _reusable(self.store, self.workspace, kind, config_hash(config))
            if match is not None:
                node.run_id, node.status = match.id, match.status
        if not node.reused:
            from engine.store import batch_ref

            node.ref = batch_ref(len(self.new))
            self.new.append(node.index)
        self.runs.append(node)
        self._by_key[key] = node.index
        return node.index

    def checked(self, kind: str, config: dict[str, Any], label: str, replicate: int | None) -> dict[str, Any]:
        """The config as the kind's validator returns it (what the store will hold); raw in a what-if plan."""
        if not self.validate:
            return config
        from engine.runner.kinds import planned_runs, validate_config
        from engine.store import config_hash

        raw = config_hash(config) + kind
        if raw not in self._checked:
            try:
                refs = [self.runs[i].ref for i in self.new]
                with planned_runs(refs), self.executor.targeting(kind):  # type: ignore[arg-type]
                    self._checked[raw] = validate_config(kind, config, self.workspace)
            except InputError as exc:
                what = f"{label}" + ("" if replicate is None else f" replicate {replicate}")
                raise InputError(f"{self.exp.source}: experiment {self.exp.name!r}: {what} ({kind}): {exc}") from None
        return self._checked[raw]


def gan_spec_of(tag: str, config: dict[str, Any], pool_per_class: int | None = None) -> GanSpec:
    """The ``[gans.TAG]`` spec that plans a gan-train run with this (validated) config: the inverse of
    ``_Planner.gan``, so an experiment naming it reuses that run when its data and feature source match. Keys the
    spec cannot express (other family settings) make the planned config differ: the plan then says "new"."""
    gan, metrics = config.get("gan") or {}, config.get("metrics") or {}
    return GanSpec(tag, config["family"], config.get("preset", "paper"), gan.get("kimg"),
                   None if metrics.get("fid_weights") else "baseline", metrics.get("fid_weights"), pool_per_class,
                   snapshot_kimg=gan.get("snapshot_kimg"), select_margin=metrics.get("select_margin"),
                   select_relative=metrics.get("select_relative"))


def _reusable(store: Store, workspace: Path, kind: str, digest: str) -> Run | None:
    """The store's run of this kind and config hash that a submission reuses: one that succeeded and still has
    its output, else one waiting or running, else one to re-queue (interrupted, failed, cancelled)."""
    from engine import store as st

    runs = [r for r in store.runs_with_hashes([digest]) if r.kind == kind]
    done = [r for r in runs if r.status == st.SUCCEEDED and _has_output(workspace, r)]
    pending = [r for r in runs if r.status in (st.QUEUED, st.BLOCKED, st.RUNNING, st.PAUSED)]
    again = [r for r in runs if r.status in st.RETRYABLE]
    for group in (done, pending, again):
        if group:
            return group[-1]
    return None


def _has_output(workspace: Path, run: Run) -> bool:
    """A succeeded run's product is still there (``ganaug prune`` drops the data of pools no selection uses)."""
    from engine.synth.pool import POOL_DIR

    folder = Path(workspace) / run.id
    return (folder / POOL_DIR / "pool.json").is_file() if run.kind == "gan-pool" else (folder / "result.json").is_file()


# ------------------------------------------------------------------------------------------ protocol
def check_protocol(store: Store, experiment: Experiment) -> None:
    """Refuse a submission whose protocol differs from that of the runs the experiment already has in the store:
    its results would compare runs trained differently (the paper's pitfall)."""
    from engine.train.config import EXECUTION_KEYS, VARIABLE_KEYS, protocol_diff

    base = experiment.classify_base()
    for label, text, run_id, _n in store.labelled_protocols(experiment.name, VARIABLE_KEYS | EXECUTION_KEYS):
        diff = protocol_diff(json.loads(text), base)
        if diff:
            raise InputError(
                f"experiment {experiment.name!r}: its run {run_id} ({label}) in {store.workspace} was made with "
                f"another protocol ({', '.join(diff[:4])} differ{'s' if len(diff) == 1 else ''}); its results would "
                f"compare different protocols: submit under another experiment name, or remove those runs first "
                f"(ganaug runs rm --experiment {experiment.name})")


# ------------------------------------------------------------------------------------------ submitting
@dataclass
class Submission:
    """What :func:`submit` did: the run id of every planned run (plan order), and which runs it created,
    linked (reused) and re-queued."""

    run_ids: list[str]
    created: list[str]
    reused: list[str]
    requeued: list[str]


def submit(store: Store, plan_: Plan, *, priority: int = 0, foreground_pid: int | None = None) -> Submission:
    """Create the plan's new runs (one transaction), link reused runs to their labels, re-queue reused runs
    that ended badly or were interrupted, and store the experiment's spec. The runs it creates or re-queues go
    to the plan's executor (a run waiting from an earlier submission keeps its own). ``foreground_pid`` reserves
    the new runs for that process (``ganaug run EXPERIMENT`` in the foreground)."""
    from engine import store as st

    exp = plan_.experiment
    batch_index = {i: k for k, i in enumerate(plan_.new)}
    specs = []
    for i in plan_.new:
        r = plan_.runs[i]
        parents: list[str | int] = [plan_.runs[p].run_id or batch_index[p] for p in r.parents]  # type: ignore[misc]
        specs.append(st.NewRun(r.kind, r.config, label=r.label, experiment=exp.name, labels=r.labels[1:],
                               parents=parents, priority=priority, **plan_.executor.fields(r.kind)))
    created = store.create_runs(specs, foreground_pid=foreground_pid)
    for i, run_id in zip(plan_.new, created, strict=True):
        plan_.runs[i].run_id = run_id
    reused = [r for r in plan_.runs if r.index not in batch_index]
    links = [(r.run_id, label) for r in reused if not r.external for label in r.labels]
    if links:
        store.link_runs(exp.name, links)  # type: ignore[arg-type]
    again = [r.run_id for r in reused if r.status in (st.FAILED, st.CANCELLED, st.DEPENDENCY_FAILED)]
    interrupted = [r.run_id for r in reused if r.status == st.INTERRUPTED]
    requeued = []
    for ids, resume in ((interrupted, True), (again, False)):
        if ids:
            requeued += [run.id for run, _ in store.retry_runs(  # type: ignore[arg-type]
                ids, resume=resume, executor=plan_.executor.fields)]
    previous = store.experiment_spec(exp.name) or {}
    spec = exp.to_spec()
    spec["replicates"] = max(plan_.replicates, int(previous.get("replicates") or 0))
    store.set_experiment(exp.name, spec)
    return Submission([r.run_id for r in plan_.runs], created,  # type: ignore[misc]
                      [r.run_id for r in reused], requeued)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ for the TUI and scripts
def preview(workspace: Path, experiment: Experiment, *, only: list[str] | None = None,
            replicates: int | None = None, executor: ExecutorSpec | None = None) -> Plan:
    """The plan of an experiment (or some of its labels) against the workspace's store, creating nothing (the
    TUI Builder's preview, ``ganaug run EXPERIMENT --dry-run``)."""
    from engine import store as st

    workspace = st.resolve_workspace(workspace)
    if not st.db_path(workspace).is_file():
        return plan(experiment, workspace, only=only, replicates=replicates, executor=executor)
    with st.open_store(workspace, readonly=True, create=False) as store:
        return plan(experiment, workspace, store=store, only=only, replicates=replicates, executor=executor)


def enqueue(workspace: Path, experiment: Experiment, *, only: list[str] | None = None,
            replicates: int | None = None, priority: int = 0,
            executor: ExecutorSpec | None = None) -> tuple[Plan, Submission]:
    """Plan and queue an experiment (or some of its labels) for the engine, to ``executor`` (default local; the
    TUI Builder's enqueue)."""
    from engine import store as st

    with st.open_store(workspace) as store:
        planned = plan(experiment, store.workspace, store=store, only=only, replicates=replicates,
                       executor=executor)
        return planned, submit(store, planned, priority=priority)
