"""Run kind ``select``: the synthetic images of one configuration, chosen from the GANs' pools.

Given a paper label (``1:1/2 sgn div``), the class sizes of the FULL real training split and the pools, it
computes the per-class synthetic counts with the ratio grammar (``engine.config``), orders each class of each
pool with the label's sampler and takes the first ``k`` (so selections are nested across ratios and, since
nothing here depends on the replicate, fixed across replicates). Translation GANs (pix2pixHD, SPADE) make one
image per mask: they are sampled at random and give at most what they hold (asking for more is an error
unless ``cap``; with ``all`` they always give at most their capacity, as in the paper).

``all`` (the paper's "samples from every GAN together"): ``all_mode = "union"`` (default, what the paper ran:
each GAN contributes the label's count, translation GANs their capacity; its ``1:1/2 all`` set is 2,346
pix2pixHD + 2,346 SPADE + 7,402 PGAN + 7,402 StyleGAN2) or ``"share"`` (the label's count split equally
between the GANs, translation GANs capped at capacity and the rest spread over the others).

Artefacts: ``ids-<gan>.csv`` (each GAN's chosen pool ids, what the classifier's ``{"select": RUN}`` source reads
as pool sources), ``selection.csv`` (``pool_id,gan,label,rank,score``: rank 1 = the sampler's first choice; score =
the helper's error for best/worst, the distance to the nearest other selected image for diverse, empty for
random), ``rejected.csv`` for diverse (``pool_id,label,nearest_kept,distance``: every image the exclusion set
aside; with several diverse GANs, their rows follow the order of ``result.json``'s ``parts``), and
``result.json`` (counts per class and per GAN, what each sampler kept, excluded and overflowed).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.config import MAX_DIVERSE_THRESHOLD, TRANSLATION_GANS, Configuration
from engine.errors import InputError, config_error
from engine.fsutil import atomic_write_json, atomic_write_text
from engine.runner.kinds import RunContext, register_kind
from engine.synth.pool import CLASS_NAMES, Pool
from engine.synth.samplers.diverse import DEFAULT_THRESHOLD
from engine.train.config import DataConfig

if TYPE_CHECKING:
    from engine.store import Store

# The paper's tag order (p2p spd pgn sgn); families it does not know follow, alphabetically.
GAN_ORDER = ("pix2pixhd", "spade", "pgan", "stylegan2")
SELECTION_COLUMNS = ("pool_id", "gan", "label", "rank", "score")
REJECTED_COLUMNS = ("pool_id", "label", "nearest_kept", "distance")
HELPER_SAMPLERS = frozenset({"best", "worst"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplerSettings(_Strict):
    """``[samplers]`` of ``experiments.toml``: shared by every sampler, each reads what it needs."""

    diverse_threshold: int = Field(DEFAULT_THRESHOLD, ge=0, le=MAX_DIVERSE_THRESHOLD)
    all_mode: Literal["union", "share"] = "union"
    helper: str | None = None  # classify run whose best checkpoint ranks best/worst
    seed: int = 0  # of the random order (random sampling, diverse's visiting order); never the replicate


class SelectConfig(_Strict):
    label: str
    pools: dict[str, str]  # GAN family -> gan-pool run id
    data: DataConfig  # the classifier's: the real training split whose class sizes the ratio scales
    samplers: SamplerSettings = SamplerSettings()
    cap: bool = False  # translation GANs: clip a request to the masks they have instead of refusing it
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(256, ge=1)  # helper scoring

    @property
    def configuration(self) -> Configuration:
        return Configuration.parse(self.label)


def parse_select_config(raw: dict[str, Any]) -> SelectConfig:
    """A validated select config; any error is one InputError naming the key."""
    try:
        cfg = SelectConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, "select config") from None
    try:
        conf = cfg.configuration
    except ValueError as exc:
        raise InputError(f"select config: label: {exc}") from None
    if not conf.ratio.has_synthetic:
        raise InputError(f"select config: label: {cfg.label!r} has no synthetic images to select")
    wanted = set(cfg.pools) if conf.gan == "all" else {conf.gan}
    if not cfg.pools or (conf.gan != "all" and set(cfg.pools) != wanted):
        raise InputError(f"select config: pools: {cfg.label!r} needs the pool of {', '.join(sorted(wanted))} "
                         f"(and only that), got {', '.join(sorted(cfg.pools)) or 'none'}")
    if conf.sampler in HELPER_SAMPLERS and not cfg.samplers.helper:
        raise InputError(f"select config: samplers.helper: {conf.sampler} sampling ranks by a helper classifier; "
                         f"name its classify run (the replicate-0 1:0 baseline of the same data)")
    return cfg


def validate_select(config: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """The gate before a select run is queued: a valid config whose pool and helper runs exist in the workspace
    (they may still be running: the run waits for them), a data root in its format's layout and, when every
    pool is finished already, counts those pools can give."""
    from engine.data import check_layout
    from engine.runner.kinds import run_exists
    from engine.synth.pool import POOL_DIR

    cfg = parse_select_config(config)
    for gan, run in cfg.pools.items():
        if not run_exists(workspace, run):
            raise InputError(f"select config: pools.{gan}: no run {run!r} in the workspace {workspace}")
    helper = cfg.samplers.helper
    if helper and cfg.configuration.sampler in HELPER_SAMPLERS and not run_exists(workspace, helper):
        raise InputError(f"select config: samplers.helper: no run {helper!r} in the workspace {workspace}")
    check_layout(cfg.data.format, cfg.data.root)
    if cfg.data.split_file and not Path(cfg.data.split_file).expanduser().is_file():
        raise InputError(f"select config: data.split_file: {cfg.data.split_file}: file not found")
    if all((Path(workspace) / run / POOL_DIR / "pool.json").is_file() for run in cfg.pools.values()):
        _plan(cfg, Path(workspace), persist=False)
    return cfg.model_dump(mode="json")


def _plan(cfg: SelectConfig, workspace: Path, persist: bool = True) -> tuple[
        dict[str, Pool], set[str], dict[str, tuple[int, int]], tuple[int, int], Path]:
    """Pools, translation GANs, images per GAN and class, the real class sizes and the split they come from."""
    conf = cfg.configuration
    n_benign, n_melanoma, split_path = real_class_sizes(workspace, cfg.data, persist)
    counts = conf.ratio.counts(n_benign, n_melanoma)
    pools = {g: Pool(workspace / run) for g, run in cfg.pools.items()}
    translation = {g for g, p in pools.items() if _is_translation(g, p)}
    available = {g: (int((p.labels == 0).sum()), int((p.labels == 1).sum())) for g, p in pools.items()}
    plan = plan_counts((counts.synth_benign, counts.synth_melanoma), available, translation,
                       all_gans=conf.gan == "all", cap=cfg.cap, all_mode=cfg.samplers.all_mode)
    return pools, translation, plan, (n_benign, n_melanoma), split_path


def gan_order(gans: list[str] | set[str]) -> list[str]:
    return sorted(gans, key=lambda g: (GAN_ORDER.index(g) if g in GAN_ORDER else len(GAN_ORDER), g))


def plan_counts(want: tuple[int, int], available: dict[str, tuple[int, int]], translation: set[str], *,
                all_gans: bool, cap: bool, all_mode: str = "union") -> dict[str, tuple[int, int]]:
    """Images per GAN and class (benign, melanoma) for a request of ``want`` synthetic images per class.

    A request beyond what a noise GAN's pool holds is an InputError (sample a bigger pool); beyond what a
    translation GAN holds, an error unless ``cap`` (alone) or always clipped (within ``all``).
    """
    gans = gan_order(set(available))
    out: dict[str, list[int]] = {g: [0, 0] for g in gans}
    for c, name in enumerate(CLASS_NAMES):
        if all_gans and all_mode == "share":
            shares = _shares(want[c], {g: available[g][c] for g in gans}, translation)
        else:
            shares = {g: want[c] for g in gans}
        for g in gans:
            have = available[g][c]
            if shares[g] > have:
                if g in translation and (cap or all_gans):
                    shares[g] = have
                elif g in translation:
                    raise InputError(f"{g} has {have} {name} images (one per mask) but the selection asks for "
                                     f"{shares[g]}; set cap = true (--cap) to use all {have}")
                else:
                    raise InputError(f"the {g} pool holds {have} {name} images but the selection asks for "
                                     f"{shares[g]}; sample a bigger pool")
            out[g][c] = shares[g]
    return {g: (b, m) for g, (b, m) in out.items()}


def _shares(total: int, available: dict[str, int], translation: set[str]) -> dict[str, int]:
    """``total`` split as equally as possible (the first GANs in the paper's order take the remainder);
    translation GANs take at most what they hold and the rest is spread over the others again."""
    shares = dict.fromkeys(available, 0)
    open_gans = list(available)
    left = total
    while left > 0 and open_gans:
        base, extra = divmod(left, len(open_gans))
        for i, g in enumerate(list(open_gans)):
            give = base + (i < extra)
            if g in translation:
                give = min(give, available[g] - shares[g])
            shares[g] += give
            left -= give
        open_gans = [g for g in open_gans if g not in translation or shares[g] < available[g]]
    return shares  # short of ``total`` only when every GAN is a translation GAN and all are used whole


def real_class_sizes(workspace: Path, data: DataConfig, persist: bool = True) -> tuple[int, int, Path]:
    """(benign, melanoma) of the full real training split (the one every classify run of this data shares),
    and the split file they come from."""
    from engine.data import load_dataset
    from engine.data.split import persisted_split

    records = load_dataset(data.format, data.root).records
    split, path = persisted_split(workspace, data.format, records, data.split_seed, split_file=data.split_file,
                                  persist=persist)
    labels = np.array([r.label for r in split.train])
    return int((labels == 0).sum()), int((labels == 1).sum()), path


def pool_gan(workspace: Path, run_id: str) -> str | None:
    """The GAN family of a gan-pool run: its pool's (``engine.synth.mix.pool_family``) once finished, else its
    config's ``family`` or that of the gan run it names (None when nothing says)."""
    from engine.synth.mix import pool_family
    from engine.synth.pool import POOL_DIR

    run_dir = Path(workspace) / run_id
    info = run_dir / POOL_DIR / "pool.json"
    if info.is_file():
        family = json.loads(info.read_text()).get("family")
        if isinstance(family, str):  # what gan-pool records: no need to read a 200,000-row pool.csv
            return family
        pool = Pool(run_dir)
        family = pool_family(workspace, pool, sorted({r["gan_run"] for r in pool.rows}))
        if family:
            return family
    for _ in range(2):  # the pool run's config, then its gan run's
        try:
            config = json.loads((run_dir / "run.json").read_text()).get("config") or {}
        except (OSError, ValueError):
            return None
        if isinstance(config.get("family"), str):
            return config["family"]
        if not isinstance(config.get("gan_run"), str):
            return None
        run_dir = Path(workspace) / config["gan_run"]
    return None


def default_helper(store: Store, data: DataConfig) -> str | None:
    """The helper best/worst and the audit use unless told otherwise: the replicate-0 ``1:0`` classify run of
    the same data (all real images, no synthetic ones), the latest succeeded one, else the latest still to
    finish (a run that depends on it then waits); None when there is none."""

    def same(cfg: dict[str, Any]) -> bool:
        d = cfg.get("data") or {}
        return (d.get("format") == data.format and Path(str(d.get("root"))).expanduser().resolve()
                == Path(data.root).expanduser().resolve() and d.get("split_seed", 0) == data.split_seed
                and d.get("split_file") == data.split_file and str(cfg.get("real_fraction", "1")) == "1"
                and not cfg.get("synthetic") and cfg.get("replicate", 0) == 0)

    runs = [r for r in store.list_runs(kind="classify") if same(r.config)]
    for wanted in (("succeeded",), ("queued", "blocked", "running", "paused")):
        found = [r.id for r in runs if r.status in wanted]
        if found:
            return found[-1]
    return None


def _is_translation(gan: str, pool: Pool) -> bool:
    return gan in TRANSLATION_GANS or any(r["source_mask"] for r in pool.rows[:1])


def _fmt(score: float | None) -> str:
    if score is None or not math.isfinite(score):
        return ""
    return str(int(score)) if float(score).is_integer() else f"{score:.6g}"


class _PoolArrays:
    """A pool's pHashes and helper errors, computed on first use (through the workspace cache)."""

    def __init__(self, ctx: RunContext, run: str, pool: Pool, cfg: SelectConfig, device: str) -> None:
        self.ctx, self.run, self.pool, self.cfg, self.device = ctx, run, pool, cfg, device
        self._hashes: np.ndarray | None = None
        self._errors: np.ndarray | None = None

    def hashes(self) -> np.ndarray:
        from engine.synth.derived import pool_hashes

        if self._hashes is None:
            self._hashes = pool_hashes(self.ctx.workspace, self.run, self.pool, self.ctx.progress)
        return self._hashes

    def errors(self) -> np.ndarray:
        from engine.synth.derived import pool_errors

        if self._errors is None:
            self._errors = pool_errors(self.ctx.workspace, self.run, self.pool, str(self.cfg.samplers.helper),
                                       self.device, self.cfg.batch_size, self.ctx.progress, self.ctx.stop_requested)
            if self._errors is None:
                raise _Stopped
        return self._errors


def _select_gan(ctx: RunContext, gan: str, sampler_name: str, arrays: _PoolArrays, wanted: tuple[int, int]
                ) -> tuple[dict[str, Any], list[list[Any]], list[list[Any]]]:
    """One GAN's part: its summary for result.json, its selection.csv rows and its rejected.csv rows."""
    from engine.synth.samplers import ClassItems, create_sampler

    sampler = create_sampler(sampler_name, **arrays.cfg.samplers.model_dump())
    pool = arrays.pool
    part: dict[str, Any] = {"gan": gan, "pool": arrays.run, "sampler": sampler_name, "counts": {},
                            "available": {}, "preferred": {}, "overflow": {}}
    selected: list[list[Any]] = []
    rejected: list[list[Any]] = []
    for label, name in enumerate(CLASS_NAMES):
        rows = np.flatnonzero(pool.labels == label)
        k = wanted[label]
        items = ClassItems([pool.ids[r] for r in rows], label, lambda rows=rows: arrays.hashes()[rows],
                           lambda rows=rows: arrays.errors()[rows])
        ordering = sampler(items) if k else None
        preferred = ordering.preferred if ordering else len(rows)
        if ordering is not None:
            positions, scores = ordering.take(k)
            selected += [[items.ids[pos], gan, label, rank, _fmt(None if scores is None else float(scores[rank - 1]))]
                         for rank, pos in enumerate(positions.tolist(), start=1)]
            if ordering.rejected is not None:
                r = ordering.rejected
                rejected += [[items.ids[pos], label, items.ids[near], dist] for pos, near, dist
                             in zip(r.positions.tolist(), r.nearest.tolist(), r.distance.tolist(), strict=True)]
                part.setdefault("excluded", {})[name] = len(r.positions)
        overflow = max(0, k - preferred)
        if overflow:
            ctx.log.warning("%s %s: %d images asked, only %d meet the %s criterion; %d more taken from the rest of "
                            "its order", gan, name, k, preferred, sampler_name, overflow)
        part["counts"][name], part["available"][name] = k, len(rows)
        part["preferred"][name], part["overflow"][name] = preferred, overflow
    return part, selected, rejected


def _csv(columns: tuple[str, ...], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


@register_kind("select", validate=validate_select)
def run_select(ctx: RunContext) -> None:
    """Order every class of every pool, take the configured counts, write the selection."""
    cfg = parse_select_config(ctx.config)
    conf = cfg.configuration
    device = ctx.device if cfg.device == "auto" else cfg.device
    pools, translation, plan, (n_benign, n_melanoma), split_path = _plan(cfg, ctx.workspace)
    ctx.log.info("%s: per GAN (benign, melanoma) %s; real training split %d + %d", conf.label, plan, n_benign,
                 n_melanoma)
    parts, selected, rejected = [], [], []
    for gan in gan_order(set(pools)):
        arrays = _PoolArrays(ctx, cfg.pools[gan], pools[gan], cfg, device)
        try:
            part, rows, excluded = _select_gan(ctx, gan, "random" if gan in translation else conf.sampler, arrays,
                                               plan[gan])
        except _Stopped:
            return  # a resumed attempt continues from the cached partial scores
        parts.append(part)
        selected += rows
        rejected += excluded
        atomic_write_text(ids_file(ctx.run_dir, gan), "id\n" + "".join(f"{r[0]}\n" for r in rows))
    if any("excluded" in p for p in parts):
        atomic_write_text(ctx.run_dir / "rejected.csv", _csv(REJECTED_COLUMNS, rejected))
    atomic_write_text(ctx.run_dir / "selection.csv", _csv(SELECTION_COLUMNS, selected))
    counts = {name: sum(p["counts"][name] for p in parts) for name in CLASS_NAMES}
    atomic_write_json(ctx.run_dir / "result.json", {
        "label": conf.label,
        "gan": conf.gan,
        "sampler": conf.sampler,
        "counts": counts,
        "real": {"benign": n_benign, "melanoma": n_melanoma},
        "parts": parts,
        "settings": {"diverse_threshold": cfg.samplers.diverse_threshold, "all_mode": cfg.samplers.all_mode,
                     "helper": cfg.samplers.helper, "seed": cfg.samplers.seed, "cap": cfg.cap},
        "split": str(split_path),
        "config": cfg.model_dump(mode="json"),
    })
    ctx.metrics({f"synthetic/{name}": float(n) for name, n in counts.items()}, step=0)


class _Stopped(Exception):
    """A stop was requested while the helper scored a pool."""


def ids_file(run_dir: Path, gan: str) -> Path:
    """``ids-<gan>.csv``: one GAN's selected pool ids (column ``id``), what a pool source of the mix reads."""
    return Path(run_dir) / f"ids-{gan}.csv"


@dataclass(frozen=True)
class SelectionPart:
    """The images one GAN's pool contributes to a selection, in selection order."""

    gan: str
    pool_run: str
    sampler: str
    ids: list[str]
    labels: np.ndarray
    ids_file: Path


@dataclass(frozen=True)
class Selection:
    """What a finished ``select`` run chose: the classifier's synthetic source ``{"select": RUN}``."""

    run_id: str
    label: str
    gan: str
    sampler: str
    counts: dict[str, int]
    parts: list[SelectionPart]


def load_selection(workspace: Path, run_id: str) -> Selection:
    """Read a finished select run (its ``result.json`` and ``selection.csv``); InputError when it has none."""
    run_dir = Path(workspace) / run_id
    try:
        result = json.loads((run_dir / "result.json").read_text())
        with open(run_dir / "selection.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError):
        raise InputError(f"run {run_id}: no selection (result.json + selection.csv); is it a finished select "
                         f"run of {workspace}?") from None
    if "parts" not in result or (rows and set(rows[0]) != set(SELECTION_COLUMNS)):
        raise InputError(f"run {run_id}: not a select run's result")
    parts = []
    for p in result["parts"]:
        mine = [r for r in rows if r["gan"] == p["gan"]]
        parts.append(SelectionPart(p["gan"], p["pool"], p["sampler"], [r["pool_id"] for r in mine],
                                   np.array([int(r["label"]) for r in mine], dtype=np.int64),
                                   ids_file(run_dir, p["gan"])))
    return Selection(run_id, result["label"], result["gan"], result["sampler"], dict(result["counts"]), parts)
