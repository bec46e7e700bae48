"""The synthetic part of a classifier's training set: what the classify config's ``synthetic`` key means.

``synthetic`` is a list of sources, each one of:

- ``{"csv": FILE}``: image files listed in a CSV ``image,label`` (the generic CSV layout; a bare path string
  means the same). Any images: another tool's output, a folder of PNGs.
- ``{"pool": RUN, "ids": FILE}``: images of the pool of gan-pool run ``RUN`` (``engine.synth.pool``); ``ids`` is
  a CSV with an ``id`` column of pool ids (``b000042``); without ``ids``, the whole pool.
- ``{"select": RUN}``: the images a ``select`` run chose (``engine.synth.select``): one pool part per GAN it
  drew from, each recorded with its GAN family and the configuration's sampler.

A new kind of source is one model class here with ``check`` and ``resolve`` methods plus its key in
``SOURCE_KINDS``; the classifier only calls ``resolve_synthetic`` and uses what it returns. A source may hold
one class only (``(1:0:1)`` adds melanomas alone); the real part of a run always has both.

Enqueue checks (``check_synthetic``) read records, never pixels, and accept a pool run that exists but has
not finished yet (a grid queues the classifier behind its pool); ``resolve_synthetic`` needs it finished.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from engine.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from engine.data.cache import ImageCache
    from engine.synth.pool import Pool


@dataclass
class ResolvedSource:
    """One source, resolved to labelled images (pixels are read only by ``pixels``).

    ``images`` is where the pixels are: a list of image files (``csv``) or a uint8 (N, r, r, 3) array-like at
    the generator's resolution (``pool``: the whole pool's images); ``rows`` picks the source's images from it,
    in order; ``labels`` and ``ids`` are per picked image. ``provenance``: ``{"source", "family", "gan_run",
    "pool_run", "sampler"}`` plus the source's own keys (``csv``, ``ids``).
    """

    images: list[Path] | Any
    rows: np.ndarray
    labels: np.ndarray
    ids: list[str]
    provenance: dict[str, Any]
    files: bool = field(default=False)  # True: ``images`` are files (the pre-training leak check hashes them)

    def __len__(self) -> int:
        return len(self.rows)

    def counts(self) -> dict[str, int]:
        n_mel = int(self.labels.sum())
        return {"benign": len(self.labels) - n_mel, "melanoma": n_mel}

    def pixels(self, cache: ImageCache, res: int) -> np.ndarray:
        """The picked images at ``res`` x ``res`` through the image cache (files and arrays alike)."""
        if self.files:
            return cache.load([self.images[i] for i in self.rows], res)
        return cache.load_arrays(TakeRows(self.images, self.rows), res)


class TakeRows:
    """Lazy ``array[rows]``: an array-like (slices, integer arrays, scalars) that reads only what is asked."""

    def __init__(self, array: Any, rows: np.ndarray) -> None:
        import numpy as np

        self._array = array
        self._rows = np.asarray(rows, dtype=np.int64)
        self.shape = (len(self._rows), *tuple(array.shape)[1:])
        self.dtype = np.dtype(array.dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        import numpy as np

        picked = self._rows[index]
        if np.ndim(picked) == 0:
            return np.asarray(self._array[np.asarray([picked])])[0]
        order = np.argsort(picked, kind="stable")  # sorted reads from memory maps, then back to the asked order
        out = np.empty((len(picked), *self.shape[1:]), dtype=self.dtype)
        out[order] = np.asarray(self._array[picked[order]])
        return out


class Source(BaseModel):
    """One synthetic source: a frozen config model (its keys are the config's) that checks and resolves itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @abstractmethod
    def check(self, workspace: Path, where: str) -> None:
        """Cheap enqueue check (records only, no pixels); InputError naming ``where`` on bad input."""

    @abstractmethod
    def resolve(self, workspace: Path, where: str) -> ResolvedSource | list[ResolvedSource]:
        """The source's labelled images (a list of parts for a source over several pools); InputError naming
        ``where`` on bad input."""


class CsvSource(Source):
    """Image files listed in a generic CSV ``image,label`` (paths relative to the CSV's folder)."""

    csv: str

    def _records(self, where: str) -> list[Any]:
        from engine.data.formats.generic_csv import load

        path = Path(self.csv).expanduser()
        if not path.is_file():
            raise InputError(f"{where}.csv: {self.csv}: file not found")
        return load(path, "csv", both_classes=False).records

    def check(self, workspace: Path, where: str) -> None:
        self._records(where)

    def resolve(self, workspace: Path, where: str) -> ResolvedSource:
        import numpy as np

        records = self._records(where)
        return ResolvedSource(
            images=[r.image for r in records], rows=np.arange(len(records)),
            labels=np.array([r.label for r in records], dtype=np.int64), ids=[r.image_id for r in records],
            provenance={"source": "csv", "csv": self.csv, "family": None, "gan_run": None, "pool_run": None,
                        "sampler": None},
            files=True)


class PoolSource(Source):
    """Images of a gan-pool run's pool: those ``ids`` lists (a CSV with an ``id`` column), else all of them."""

    pool: str
    ids: str | None = None

    def _run_dir(self, workspace: Path, where: str) -> Path:
        from engine.runner.kinds import run_exists

        if not run_exists(workspace, self.pool):
            raise InputError(f"{where}.pool: no run {self.pool!r} in the workspace {workspace}")
        return Path(workspace) / self.pool

    def _ids(self, where: str) -> list[tuple[int, str]]:
        from engine.data.records import read_csv_rows

        path = Path(self.ids or "").expanduser()
        if not path.is_file():
            raise InputError(f"{where}.ids: {self.ids}: file not found")
        rows = read_csv_rows(path, ("id",))
        if not rows:
            raise InputError(f"{path}: no pool ids listed")
        first: dict[str, int] = {}
        for line, row in rows:
            if row["id"] in first:
                raise InputError(f"{path}, line {line}: pool id {row['id']!r} listed twice (first on line "
                                 f"{first[row['id']]})")
            first[row["id"]] = line
        return [(line, row["id"]) for line, row in rows]

    def _rows(self, pool: Pool, where: str) -> np.ndarray:
        import numpy as np

        if self.ids is None:
            return np.arange(len(pool))
        listed = self._ids(where)
        known = set(pool.ids)
        for line, pid in listed:
            if pid not in known:
                raise InputError(f"{self.ids}, line {line}: pool id {pid!r} is not in the pool of run {self.pool}")
        return pool.rows_of([pid for _, pid in listed], where=f"{where}.ids")

    def check(self, workspace: Path, where: str) -> None:
        from engine.synth.pool import POOL_DIR, Pool

        run_dir = self._run_dir(workspace, where)
        if (run_dir / POOL_DIR / "pool.json").is_file():
            self._rows(Pool(run_dir), where)
        elif self.ids is not None:  # the pool is still to be made (the run waits for it): check the file only
            self._ids(where)

    def resolve(self, workspace: Path, where: str) -> ResolvedSource:
        from engine.synth.pool import Pool

        run_dir = self._run_dir(workspace, where)
        pool = Pool(run_dir)
        rows = self._rows(pool, where)
        gan_runs = sorted({pool.rows[i]["gan_run"] for i in rows.tolist()})
        gan_run = gan_runs[0] if len(gan_runs) == 1 else None
        return ResolvedSource(
            images=pool.images, rows=rows, labels=pool.labels[rows], ids=[pool.ids[i] for i in rows.tolist()],
            provenance={"source": "pool", "pool_run": self.pool, "ids": self.ids, "gan_run": gan_run,
                        "gan_runs": gan_runs, "family": pool_family(workspace, pool, gan_runs), "sampler": None})


def pool_family(workspace: Path, pool: Pool, gan_runs: list[str]) -> str | None:
    """The GAN family that made a pool: ``pool.json``'s ``family``, else the gan run's config (None if unknown)."""
    import json

    if isinstance(pool.info.get("family"), str):
        return pool.info["family"]
    families = set()
    for run in gan_runs:
        try:
            meta = json.loads((Path(workspace) / run / "run.json").read_text())
        except (OSError, ValueError):
            return None
        families.add((meta.get("config") or {}).get("family"))
    return families.pop() if len(families) == 1 and None not in families else None


class SelectSource(Source):
    """The images a ``select`` run chose: its per-GAN id lists as pool sources, with the selection's provenance."""

    select: str

    def _run_dir(self, workspace: Path, where: str) -> Path:
        from engine.runner.kinds import run_exists

        if not run_exists(workspace, self.select):
            raise InputError(f"{where}.select: no run {self.select!r} in the workspace {workspace}")
        return Path(workspace) / self.select

    def check(self, workspace: Path, where: str) -> None:
        from engine.synth.select import load_selection

        if (self._run_dir(workspace, where) / "result.json").is_file():  # else still to run: the grid waits for it
            load_selection(Path(workspace), self.select)

    def check_split(self, workspace: Path, data: dict[str, Any], where: str) -> None:
        """InputError when the select run scaled its counts by another real training split than the classifier's
        ``data`` (format, root, split_seed, split_file): the ratio would then mean something else."""
        import json

        try:
            theirs = json.loads((Path(workspace) / self.select / "run.json").read_text())["config"]["data"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # not a select run's config: check() and resolve() say so
        if _split_key(theirs) != _split_key(data):
            raise InputError(f"{where}.select: run {self.select} chose its images for the training split of "
                             f"{_describe_split(theirs)}, this run trains on {_describe_split(data)}; select again "
                             f"with the classifier's --data/--split-seed/--split-file")

    def resolve(self, workspace: Path, where: str) -> list[ResolvedSource]:
        from engine.synth.select import load_selection

        self._run_dir(workspace, where)
        selection = load_selection(Path(workspace), self.select)
        out = []
        for part in selection.parts:
            if not part.ids:  # a GAN whose share came to nothing (e.g. all_mode "share" on a tiny request)
                continue
            resolved = PoolSource(pool=part.pool_run, ids=str(part.ids_file)).resolve(workspace, f"{where}.select")
            resolved.provenance.update(source="select", select_run=self.select, family=part.gan,
                                       sampler=selection.sampler, selected_by=part.sampler)
            out.append(resolved)
        return out


def _split_key(data: dict[str, Any]) -> tuple[Any, ...]:
    """What fixes a real training split: the data set, and its split file or else its split seed."""
    def resolved(path: Any) -> str | None:
        return None if not path else str(Path(str(path)).expanduser().resolve())

    split_file = resolved(data.get("split_file"))
    return data.get("format"), resolved(data.get("root")), split_file, None if split_file else data.get("split_seed", 0)


def _describe_split(data: dict[str, Any]) -> str:
    how = f"split file {data['split_file']}" if data.get("split_file") else f"split seed {data.get('split_seed', 0)}"
    return f"{data.get('format')} data at {data.get('root')} ({how})"


# The key that names a source's kind -> its model.
SOURCE_KINDS: dict[str, type[Source]] = {"csv": CsvSource, "pool": PoolSource, "select": SelectSource}


def parse_sources(value: Any) -> list[Source]:
    """The ``synthetic`` key -> sources: None, a CSV path, or a list of paths and ``{kind: ...}`` objects.

    ValueError (pydantic turns it into the config error) naming the entry on anything else.
    """
    if value is None:
        return []
    if isinstance(value, str | Source | dict):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of sources, got {type(value).__name__}")
    out: list[Source] = []
    forms = ", ".join(f'{{"{k}": ...}}' for k in SOURCE_KINDS)
    for i, item in enumerate(value):
        if isinstance(item, Source):
            out.append(item)
            continue
        if isinstance(item, str):
            item = {"csv": item}
        kinds = [k for k in SOURCE_KINDS if isinstance(item, dict) and k in item]
        if len(kinds) != 1:
            raise ValueError(f"[{i}]: expected a CSV path or one of {forms}, got {item!r}")
        try:
            out.append(SOURCE_KINDS[kinds[0]].model_validate(item))
        except Exception as exc:  # pydantic's ValidationError: keep its first message on one line
            errors = getattr(exc, "errors", None)
            first = errors()[0] if callable(errors) else {"loc": (), "msg": str(exc)}
            loc = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"[{i}]{'.' + loc if loc else ''}: {first['msg']}") from None
    return out


def check_synthetic(workspace: Path, sources: Sequence[Source], data: dict[str, Any] | None = None) -> None:
    """Refuse bad sources before a run is queued (records only; a pool run may still be unfinished); with the
    classifier's ``data``, also a selection made for another real training split."""
    for i, source in enumerate(sources):
        source.check(Path(workspace), f"synthetic[{i}]")
        if data is not None and isinstance(source, SelectSource):
            source.check_split(Path(workspace), data, f"synthetic[{i}]")


def resolve_synthetic(workspace: Path, sources: Sequence[Source]) -> list[ResolvedSource]:
    """Every source, resolved to labelled images (no pixels read yet: see ``ResolvedSource.pixels``); a source
    over several pools contributes one entry per pool."""
    out: list[ResolvedSource] = []
    for i, s in enumerate(sources):
        parts = s.resolve(Path(workspace), f"synthetic[{i}]")
        out += parts if isinstance(parts, list) else [parts]
    return out


def describe(resolved: Sequence[ResolvedSource]) -> dict[str, Any]:
    """What ``result.json`` records about the synthetic images: ``gan``, ``sampler`` and one entry per source.

    ``gan``: ``{"family", "gan_runs", "pool_runs"}``, family being the one family of every source, ``"all"``
    when several families contributed (the paper's tag), or None when unknown (CSV images). ``sampler``: the
    sampler of the sources when they agree (None for plain pools and CSVs: a fixed set, no sampler).
    """
    families = {r.provenance["family"] for r in resolved}
    known = families - {None}
    family = None if None in families or not known else (known.pop() if len(known) == 1 else "all")
    samplers = {r.provenance["sampler"] for r in resolved}
    gan_runs = sorted({g for r in resolved for g in r.provenance.get("gan_runs") or [r.provenance["gan_run"]] if g})
    pool_runs = sorted({r.provenance["pool_run"] for r in resolved if r.provenance["pool_run"]})
    return {
        "gan": {"family": family, "gan_runs": gan_runs, "pool_runs": pool_runs},
        "sampler": samplers.pop() if len(samplers) == 1 else None,
        "sources": [{**r.provenance, **r.counts()} for r in resolved],
    }
