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
    """A run with something to look at: a complete pool, sample grids, or both."""

    run_id: str
    kind: str
    label: str | None
    pool: bool
    grids: int


def list_previewables(workspace: Path, runs: Iterable[st.Run]) -> list[Previewable]:
    """Runs that hold a complete pool (``pool/pool.json``) or sample grids, newest first."""
    from engine.synth.pool import POOL_DIR

    out = []
    for run in runs:
        run_dir = workspace / run.id
        pool = (run_dir / POOL_DIR / "pool.json").is_file()
        grids = len(sample_grids(run_dir)) if (run_dir / "samples").is_dir() else 0
        if pool or grids:
            out.append(Previewable(run.id, run.kind, run.label, pool, grids))
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


def load_real_page(workspace: Path, gan_run: str | None, page: int, per_page: int, res: int) -> RealPage:
    """The real training images the pool's GAN learned from (its ``data`` config: the same split the classifier
    uses), ``per_page`` per class, at the pool's resolution."""
    import numpy as np
    from PIL import Image

    from engine.data import load_dataset
    from engine.data.split import persisted_split
    from engine.synth.pool import CLASS_NAMES

    if gan_run is None:
        return RealPage("", {}, "the pool names no GAN run, so its real training images are unknown")
    with open_reader(workspace) as store:
        try:
            data = store.get_run(gan_run).config.get("data") or {}
        except InputError as exc:
            return RealPage("", {}, str(exc))
    if not data.get("format") or not data.get("root"):
        return RealPage("", {}, f"GAN run {gan_run} names no training data (config key data.format/data.root)")
    try:
        ds = load_dataset(data["format"], data["root"])
        split, _ = persisted_split(workspace, data["format"], ds.records, int(data.get("split_seed", 0)), persist=False)
    except InputError as exc:
        return RealPage("", {}, str(exc))
    mosaics = {}
    for label, name in enumerate(CLASS_NAMES):
        members = [r for r in split.train if r.label == label]
        chosen = members[(page * per_page) % max(1, len(members)):][:per_page]
        tiles = []
        for rec in chosen:
            with Image.open(rec.image) as im:
                tiles.append(np.asarray(im.convert("RGB").resize((res, res), Image.Resampling.BILINEAR)))
        mosaics[name] = mosaic(np.stack(tiles)) if tiles else None
    return RealPage(f"{data['format']} {data['root']} (training split)", mosaics)


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
class DataChoice:
    """A training data set the builder can use, with the classify config keys it stands for."""

    key: str
    title: str
    config: dict[str, Any]  # classify config: data, tests (and the demo's protocol when it is the demo)


def demo_choice(workspace: Path) -> DataChoice | None:
    """The workspace's own demo data (``ganaug demo`` renders it to ``<workspace>/demo-data``), if there."""
    from engine.data.demo_data import MANIFEST
    from engine.demo import classify_config

    data_dir = workspace / "demo-data"
    manifest = read_json(data_dir / MANIFEST)
    if manifest is None:
        return None
    config = classify_config(data_dir, manifest)
    config.pop("real_fraction", None)
    return DataChoice("demo", f"demo data ({display_path(data_dir)})", config)


@dataclass(frozen=True)
class ClassSizes:
    """The training part's class sizes of a data set's workspace split (what ratios scale)."""

    benign: int
    melanoma: int
    source: str


def train_class_sizes(workspace: Path, fmt: str, root: str, split_seed: int = 0) -> ClassSizes:
    """Class sizes of the training part of the split every run of this workspace uses (read, never written)."""
    from engine.data import load_dataset
    from engine.data.split import persisted_split

    ds = load_dataset(fmt, root)
    split, path = persisted_split(workspace, fmt, ds.records, split_seed, persist=False)
    mel = sum(r.label == 1 for r in split.train)
    where = "its split file" if path.is_file() else "the split its first run will write"
    return ClassSizes(len(split.train) - mel, mel, f"{fmt} training part, {where}")
