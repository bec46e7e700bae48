"""Everything the UI reads from a workspace, as plain functions that run in thread workers.

Nothing here imports textual: each function opens its own short-lived read-only ``Store`` (one connection per
thread), reads, and returns plain data that a message carries to the UI thread. The UI computes nothing the
engine does not offer; what is derived here is presentation only (time left at the current rate, a curve
thinned to the points a terminal can show).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import store as st
from engine.errors import InputError

Clock = Callable[[], float]
LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 64 * 1024
MAX_CURVE_POINTS = 400  # per series: more than any terminal plot has columns (braille doubles them)
SAMPLE_GRID = re.compile(r"^kimg-(\d+)\.png$")


# ------------------------------------------------------------------------------------------ workspace
def has_store(workspace: Path) -> bool:
    """A workspace the UI may open without creating anything: its database is there."""
    return st.db_path(workspace).is_file()


def writable(workspace: Path) -> bool:
    return os.access(workspace, os.W_OK)


def display_path(path: Path) -> str:
    """A path as a user reads it: relative to the working directory when inside it, else with ``~``."""
    try:
        rel = path.relative_to(Path.cwd())
        return str(rel) if str(rel) != "." else "."
    except ValueError:
        home = Path.home()
        return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def open_reader(workspace: Path) -> st.Store:
    return st.open_store(workspace, readonly=True)


# ------------------------------------------------------------------------------------------ the queue
@dataclass(frozen=True)
class Snapshot:
    """The store as one poll saw it: every run, the engine, the queue switch, and when it was read."""

    runs: list[st.Run]
    engine: dict[str, Any] | None
    queue_paused: bool
    time: float

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.runs:
            out[run.status] = out.get(run.status, 0) + 1
        return out


def load_snapshot(workspace: Path, clock: Clock = time.time) -> Snapshot:
    from engine.runner.daemon import engine_info

    with open_reader(workspace) as store:
        runs = store.list_runs()
        paused = store.queue_paused()
    return Snapshot(runs, engine_info(workspace), paused, clock())


class PhaseRates:
    """Time left in each running run's current phase (an epoch, a TTA block), from the progress seen so far.

    The store keeps only the latest progress (``done/total`` of the current phase and when it was written), so
    the rate comes from two sightings of the same phase: the first one this UI saw and the latest. A new phase
    (another ``desc`` or ``total``, or ``done`` going back) starts over; until a phase was seen twice there is
    no estimate."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[tuple[str, int], int, float]] = {}

    def update(self, runs: Iterable[st.Run]) -> None:
        seen = {}
        for run in runs:
            p = run.progress or {}
            if run.status != st.RUNNING or not p.get("total") or p.get("time") is None:
                continue
            phase, done = (str(p.get("desc", "")), int(p["total"])), int(p.get("done") or 0)
            first = self._first.get(run.id)
            seen[run.id] = first if first and first[0] == phase and first[1] <= done else (phase, done, p["time"])
        self._first = seen

    def eta(self, run: st.Run, now: float) -> float | None:
        p = run.progress or {}
        first = self._first.get(run.id)
        if run.status != st.RUNNING or first is None or first[0] != (str(p.get("desc", "")), p.get("total")):
            return None
        done, at = int(p.get("done") or 0), float(p.get("time") or 0.0)
        if done <= first[1] or at <= first[2]:
            return None
        rate = (done - first[1]) / (at - first[2])
        return max(0.0, (int(p["total"]) - done) / rate - (now - at))


def fmt_duration(secs: float | None) -> str:
    if secs is None:
        return ""
    s = int(secs)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_fraction(run: st.Run) -> float | None:
    p = run.progress or {}
    total = p.get("total") or 0
    return min(1.0, (p.get("done") or 0) / total) if total else None


# ------------------------------------------------------------------------------------------ one run
@dataclass
class RunView:
    """What the Live screen shows of one run."""

    run: st.Run
    series: dict[str, tuple[list[float], list[float]]]  # metric -> (steps, values), thinned for plotting
    last: dict[str, float]  # metric -> its latest value (exact)
    log_tail: str
    log_size: int
    result: dict[str, Any] | None  # the run's result.json, when it wrote one
    grid: Path | None  # a GAN run's latest sample grid
    time: float = field(default=0.0)


def load_run_view(workspace: Path, run_id: str, clock: Clock = time.time) -> RunView | None:
    """The run, its metric series, the end of its log and its result; None if it was removed meanwhile."""
    with open_reader(workspace) as store:
        try:
            run = store.get_run(run_id)
            rows = store.metrics(run.id)
        except InputError:  # removed by another shell between a refresh and this read
            return None
        run_dir = store.run_dir(run.id)
    series: dict[str, tuple[list[float], list[float]]] = {}
    last: dict[str, float] = {}
    for name, group in rows.groupby("name", sort=True):
        steps = group["step"].to_numpy(dtype=float)
        values = group["value"].to_numpy(dtype=float)
        last[str(name)] = float(values[-1])
        series[str(name)] = thin(steps, values)
    tail, size = log_tail(run_dir / "log.txt")
    grids = sample_grids(run_dir)
    result = read_json(run_dir / "result.json")
    if result is not None and isinstance(result.get("auc"), dict):
        result["auc"] = paper_order(result["auc"])
    return RunView(run, series, last, tail, size, result, grids[-1][1] if grids else None, clock())


def paper_order(by_test_set: dict[str, Any]) -> dict[str, Any]:
    """Test sets in the paper's order (isic19, isic20, derm7pt-derm, derm7pt-clinic, dermofit), others after."""
    from engine.train.config import TEST_SET_NAMES

    rank = {name: i for i, name in enumerate(TEST_SET_NAMES.values())}
    return dict(sorted(by_test_set.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def thin(steps: Any, values: Any, limit: int = MAX_CURVE_POINTS) -> tuple[list[float], list[float]]:
    """At most ``limit`` points that keep each bucket's extremes (a spike in a loss curve stays visible)."""
    import numpy as np

    n = len(steps)
    if n <= limit:
        return steps.tolist(), values.tolist()
    edges = np.linspace(0, n, limit // 2 + 1).astype(int)
    keep: list[int] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        chunk = values[a:b]
        lo, hi = a + int(np.nanargmin(chunk)), a + int(np.nanargmax(chunk))
        keep += sorted({lo, hi})
    idx = np.array(keep)
    return steps[idx].tolist(), values[idx].tolist()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> tuple[str, int]:
    """The last lines of a log without reading a big log whole, and the file's size (changes = new lines)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return "", 0
    return "\n".join(data.splitlines()[-lines:]), size


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def sample_grids(run_dir: Path) -> list[tuple[int, Path]]:
    """A GAN run's sample grids ``samples/kimg-NNNNNN.png`` as (kimg, path), oldest first."""
    try:
        names = os.listdir(run_dir / "samples")
    except OSError:
        return []
    found = [(int(m[1]), run_dir / "samples" / n) for n in names if (m := SAMPLE_GRID.match(n))]
    return sorted(found)


# ------------------------------------------------------------------------------------------ previews
@dataclass(frozen=True)
class Previewable:
    """A run with something to look at: a complete pool, sample grids, a selection, an audit (any of them)."""

    run_id: str
    kind: str
    label: str | None
    pool: bool
    grids: int
    selection: bool = False
    audit: bool = False


def list_previewables(workspace: Path, runs: Iterable[st.Run]) -> list[Previewable]:
    """Runs that hold a complete pool (``pool/pool.json``), sample grids, a selection (``selection.csv``) or an
    audit (``audit/audit.json``), newest first."""
    from engine.synth.audit import AUDIT_DIR
    from engine.synth.pool import POOL_DIR

    out = []
    for run in runs:
        run_dir = workspace / run.id
        pool = (run_dir / POOL_DIR / "pool.json").is_file()
        grids = len(sample_grids(run_dir)) if (run_dir / "samples").is_dir() else 0
        selection = run.kind == "select" and (run_dir / "selection.csv").is_file()
        audit = (run_dir / AUDIT_DIR / "audit.json").is_file()
        if pool or grids or selection or audit:
            out.append(Previewable(run.id, run.kind, run.label, pool, grids, selection, audit))
    return out[::-1]


@dataclass
class PoolPage:
    """One page of a pool: per class the ids shown and their images as one mosaic."""

    run_id: str
    page: int
    pages: int
    per_class: dict[str, int]  # class name -> images of that class in the pool
    ids: dict[str, list[str]]
    mosaics: dict[str, Any]  # class name -> PIL image (None when the class has no images)
    gan_run: str | None
    res: int


def load_pool_page(workspace: Path, run_id: str, page: int, per_page: int) -> PoolPage:
    """Page ``page`` of the pool of ``run_id``: up to ``per_page`` images of each class, in pool order."""
    import numpy as np

    from engine.synth.pool import CLASS_NAMES, Pool

    pool = Pool(workspace / run_id)
    rows_by_class = {name: np.flatnonzero(pool.labels == label) for label, name in enumerate(CLASS_NAMES)}
    pages = max(1, max(-(-len(r) // per_page) for r in rows_by_class.values()))
    page = page % pages
    ids, mosaics = {}, {}
    for name, rows in rows_by_class.items():
        chosen = rows[page * per_page:(page + 1) * per_page]
        ids[name] = [pool.ids[i] for i in chosen]
        mosaics[name] = mosaic(pool.images[chosen]) if len(chosen) else None
    gan_runs = sorted({r["gan_run"] for r in pool.rows if r.get("gan_run")})
    return PoolPage(run_id, page, pages, {k: len(v) for k, v in rows_by_class.items()}, ids, mosaics,
                    gan_runs[0] if gan_runs else None, pool.res)


def mosaic(images: Any, columns: int | None = None, gap: int = 2) -> Any:
    """uint8 NHWC images side by side in a grid (a dark gap between tiles) as one PIL image."""
    import numpy as np
    from PIL import Image

    images = np.asarray(images)
    n, h, w, _ = images.shape
    cols = columns or n
    rows = -(-n // cols)
    canvas = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 24, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    return Image.fromarray(canvas)


@dataclass
class RealPage:
    """Real training images of each class, to set beside a pool page."""

    source: str  # where they come from, said to the user
    mosaics: dict[str, Any]
    error: str | None = None


def load_real_page(workspace: Path, run_id: str, page: int, per_page: int, res: int) -> RealPage:
    """The real images the GAN behind ``run_id`` learnt from, ``per_page`` per class at the pool's resolution:
    the training part of the split its ``data`` names, as the audit takes it (``engine.synth.audit``)."""
    import numpy as np

    from engine.synth.audit import data_of, reference_records, run_meta
    from engine.synth.pool import CLASS_NAMES

    try:
        data = data_of(workspace, run_meta(workspace / run_id))
        if data is None:
            return RealPage("", {}, f"run {run_id} names no GAN run with training data, so its real images are unknown")
        train, _ = reference_records(workspace, data)
        mosaics = {}
        for label, name in enumerate(CLASS_NAMES):
            members = [r for r in train if r.label == label]
            start = (page * per_page) % max(1, len(members))
            tiles = [load_tile(rec.image, res) for rec in members[start:start + per_page]]
            mosaics[name] = mosaic(np.stack(tiles)) if tiles else None
    except (InputError, OSError, ValueError) as exc:  # also an image file missing or damaged in a copied data set
        return RealPage("", {}, str(exc))
    return RealPage(f"{data['format']} {data['root']} (training part of its split, {len(train):,} images)", mosaics)


def load_tile(path: Path | str, res: int) -> Any:
    """One image file as uint8 RGB at ``res`` x ``res``."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((res, res), Image.Resampling.BILINEAR))


@dataclass
class PicksView:
    """What a select run chose, per class: its first and last picks with their scores, and for the diverse sampler
    the near-duplicates it rejected, each beside the kept image it duplicates (with their Hamming distance)."""

    run_id: str
    label: str
    sampler: str
    counts: dict[str, int]
    first: dict[str, tuple[Any, list[str]]]  # class -> (mosaic, "id score" captions)
    last: dict[str, tuple[Any, list[str]]]
    rejects: tuple[Any, list[str]] | None  # (mosaic of reject|kept pairs, "reject ≈ kept: distance d")
    n_rejected: int


def load_picks(workspace: Path, run_id: str, per_class: int) -> PicksView:
    """A select run's ``selection.csv`` (first and last ranks per class) and ``rejected.csv`` (diverse)."""
    import csv

    import numpy as np

    from engine.synth.pool import CLASS_NAMES, Pool
    from engine.synth.select import load_selection

    selection = load_selection(workspace, run_id)
    with open(workspace / run_id / "selection.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pools = {p.gan: Pool(workspace / p.pool_run) for p in selection.parts}
    pool_of = {r["pool_id"]: pools[r["gan"]] for r in rows if r["gan"] in pools}

    def images(ids: list[str]) -> Any:
        return np.stack([pool_of[i].images[pool_of[i].rows_of([i])][0] for i in ids])

    first: dict[str, tuple[Any, list[str]]] = {}
    last: dict[str, tuple[Any, list[str]]] = {}
    for label, name in enumerate(CLASS_NAMES):
        mine = sorted((r for r in rows if int(r["label"]) == label), key=lambda r: int(r["rank"]))
        for side, chosen in ((first, mine[:per_class]), (last, mine[-per_class:] if len(mine) > per_class else [])):
            if chosen:
                side[name] = (mosaic(images([r["pool_id"] for r in chosen])),
                              [f"#{r['rank']} {r['pool_id']}" + (f" {float(r['score']):.3g}" if r["score"] else "")
                               for r in chosen])
    rejects, n_rejected = None, 0
    try:
        with open(workspace / run_id / "rejected.csv", newline="") as fh:
            rejected = list(csv.DictReader(fh))
    except OSError:
        rejected = []
    if rejected:
        n_rejected = len(rejected)
        first_pool = next(iter(pools.values()))
        shown = sorted(rejected, key=lambda r: int(r["distance"]))[:per_class]
        tiles = []
        for r in shown:
            pool = pool_of.get(r["nearest_kept"], first_pool)
            pair = pool.images[pool.rows_of([r["pool_id"], r["nearest_kept"]])]
            tiles.append(np.concatenate([pair[0], np.full((pair.shape[1], 2, 3), 24, np.uint8), pair[1]], axis=1))
        rejects = (mosaic(np.stack(tiles), columns=min(4, len(tiles)), gap=6),
                   [f"{r['pool_id']} ≈ {r['nearest_kept']}: distance {r['distance']}" for r in shown])
    return PicksView(run_id, selection.label, selection.sampler, selection.counts, first, last, rejects, n_rejected)


@dataclass
class AuditView:
    """An audit's closest synthetic/real pairs (its own side-by-side PNGs) with their distances, and its verdict."""

    run_id: str
    pairs: Any  # one mosaic of the pair PNGs, two per row
    lines: list[str]  # per pair: rank, ids, pHash and feature distance
    summary: str


def load_audit(workspace: Path, run_id: str, n: int) -> AuditView:
    """``<run>/audit/audit.json`` (``ganaug audit``): the ``n`` closest pairs, as the audit drew them."""
    import numpy as np
    from PIL import Image

    from engine.synth.audit import AUDIT_DIR

    folder = workspace / run_id / AUDIT_DIR
    doc = read_json(folder / "audit.json")
    if doc is None:
        raise InputError(f"run {run_id}: no readable {AUDIT_DIR}/audit.json (ganaug audit {run_id} writes it)")
    closest = doc.get("closest", [])[:n]
    tiles = []
    for c in closest:
        with Image.open(folder / c["png"]) as im:
            tiles.append(np.asarray(im.convert("RGB")))
    same = tiles and len({t.shape for t in tiles}) == 1
    lines = [f"{k}. {c['pool_id']} ↔ {c['train_image']}: pHash {c['phash_distance']}"
             + (f", feature {c['feature_distance']:.3f}" if c.get("feature_distance") is not None else "")
             for k, c in enumerate(closest, start=1)]
    thr = doc.get("threshold", {})
    flagged = "; ".join(f"{name} {v['suspected_copies']}/{v['n']} suspected"
                        for name, v in doc.get("per_class", {}).items())
    feature = "—" if thr.get("feature") is None else f"{thr['feature']:.3f}"
    summary = (f"audit of {run_id}: {flagged}; thresholds pHash {thr.get('phash')}, feature {feature} (quantile of "
               f"the {doc.get('reference', 'val')} images' distances); each pair: synthetic, nearest training image")
    return AuditView(run_id, mosaic(np.stack(tiles), columns=2, gap=6) if same else None, lines, summary)


@dataclass
class GridFrames:
    """A GAN run's sample grids per checkpoint and each checkpoint's metrics (step = kimg)."""

    run_id: str
    grids: list[tuple[int, Path]]
    metrics: dict[int, dict[str, float]]


CHECKPOINT_METRICS = ("fid", "fid_domain", "precision", "recall", "precision_domain", "recall_domain")


def load_grid_frames(workspace: Path, run_id: str) -> GridFrames:
    """The grids of ``run_id``; for a pool without grids of its own, those of the GAN run that made it."""
    if not sample_grids(workspace / run_id) and (gan := pool_gan_run(workspace / run_id)) is not None:
        run_id = gan
    with open_reader(workspace) as store:
        rows = store.metrics(run_id)
    per_kimg: dict[int, dict[str, float]] = {}
    for name, step, value in rows[rows["name"].isin(CHECKPOINT_METRICS)][["name", "step", "value"]].itertuples(
            index=False):
        per_kimg.setdefault(int(step), {})[str(name)] = float(value)
    return GridFrames(run_id, sample_grids(workspace / run_id), per_kimg)


def pool_gan_run(run_dir: Path) -> str | None:
    """The GAN run named by the first row of a pool's ``pool.csv`` (None: no pool, or none named)."""
    import csv

    from engine.synth.pool import POOL_DIR

    try:
        with open(run_dir / POOL_DIR / "pool.csv", newline="") as fh:
            row = next(csv.DictReader(fh), None)
    except OSError:
        return None
    return (row or {}).get("gan_run") or None


# ------------------------------------------------------------------------------------------ builder
@dataclass(frozen=True)
class GanChoice:
    """A gan-train run the Builder can name: its state, selected checkpoint with its FID, pool size, and the
    ``[gans.TAG]`` spec that plans it (``engine.grid.gan_spec_of``)."""

    run_id: str
    family: str
    preset: str
    status: str
    selected: str  # "kimg 8, fid_domain 8.89" / "" while training
    pool: int | None  # images per class of its largest finished pool
    spec: Any  # engine.config.GanSpec

    @property
    def title(self) -> str:
        state = {st.SUCCEEDED: "trained", st.RUNNING: "training", st.QUEUED: "queued"}.get(self.status, self.status)
        pool = f", pool {self.pool:,}/class" if self.pool else ""
        selected = f", {self.selected}" if self.selected else ""
        return f"{self.family} {self.preset} · {state}{selected}{pool} · {self.run_id}"


def gan_choices(workspace: Path) -> list[GanChoice]:
    """Every gan-train run that did not end badly, newest first, with what its run folder says."""
    from engine.config import GAN_TAGS
    from engine.grid import gan_spec_of

    tag_of = {family: tag for tag, family in GAN_TAGS.items()}
    with open_reader(workspace) as store:
        gans = [r for r in store.list_runs(kind="gan-train") if r.status not in st.BAD_ENDS]
        pools = [r for r in store.list_runs(kind="gan-pool") if r.status == st.SUCCEEDED]
    out = []
    for run in reversed(gans):
        # The newest finished pool's per_class as its config says (so the planned pool is that one).
        pool = next((p.config.get("per_class") for p in reversed(pools) if p.config.get("gan_run") == run.id), None)
        result = read_json(workspace / run.id / "result.json") or {}
        selected = ""
        if isinstance(result.get("selected"), dict):
            kimg = result["selected"].get("kimg")
            entry = next((c for c in result.get("checkpoints", []) if c.get("kimg") == kimg), {})
            fid = next(((k, v) for k, v in entry.items() if k.startswith("fid") and isinstance(v, float)), None)
            selected = f"kimg {kimg}" + (f", {fid[0]} {fid[1]:.3g}" if fid else "")
        family = run.config.get("family", "?")
        out.append(GanChoice(run.id, family, run.config.get("preset", "?"), run.status, selected, pool,
                             gan_spec_of(tag_of.get(family, "sgn"), run.config, pool)))
    return out


def stored_specs(workspace: Path) -> dict[str, dict[str, Any]]:
    """The experiment specs the store holds, by name (what ``ganaug run`` and the Builder saved)."""
    with open_reader(workspace) as store:
        return {e["name"]: e["spec"] for e in store.experiments() if e.get("spec")}
