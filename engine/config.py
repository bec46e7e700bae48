"""Experiment configuration: the paper's ratio grammar, its label tags, and ``experiments.toml``.

A configuration label reads like the paper's plot labels: ``1:1/2 sgn bst`` is "all real images plus
half as many StyleGAN2 images, chosen by the best-classified sampler". Parsing is strict so that a typo
in a 300-run grid is an error on one line, not a silently different experiment.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from engine.executors.slurm import SlurmSettings

# Tags of the paper's Figure 2 -> names used everywhere else in ganaug.
GAN_TAGS: dict[str, str] = {
    "p2p": "pix2pixhd",
    "spd": "spade",
    "pgn": "pgan",
    "sgn": "stylegan2",
    "all": "all",  # samples from all GANs together
}
SAMPLER_TAGS: dict[str, str] = {"wst": "worst", "bst": "best", "div": "diverse"}
DEFAULT_GAN = "stylegan2"  # a label without a GAN tag means StyleGAN2 (the paper's convention)
DEFAULT_SAMPLER = "random"  # ... and without a sampler tag, random sampling
# Translation GANs make one image per attribute mask, so they have a hard capacity and no pool to sample from.
TRANSLATION_GANS = frozenset({"pix2pixhd", "spade"})

_NUMBER = r"(?:0|1|[1-9]\d*/[1-9]\d*)"
_PLAIN = re.compile(rf"^(?P<r>{_NUMBER}):(?P<s>{_NUMBER})$")
_BALANCED = re.compile(rf"^\((?P<r>{_NUMBER}):(?P<sb>{_NUMBER}):(?P<sm>{_NUMBER})\)$")


def _fraction(text: str) -> Fraction:
    value = Fraction(text)
    if "/" in text and value.denominator == 1 and value > 1:
        raise ValueError(text)
    return value


def round_half_even(x: Fraction) -> int:
    """Round exactly, ties to even — what ``pandas.sample(frac=...)`` does to per-class counts."""
    return round(x)


@dataclass(frozen=True)
class ClassCounts:
    """Images per class that one configuration trains on."""

    real_benign: int
    real_melanoma: int
    synth_benign: int
    synth_melanoma: int

    @property
    def synthetic(self) -> int:
        return self.synth_benign + self.synth_melanoma

    @property
    def real(self) -> int:
        return self.real_benign + self.real_melanoma


@dataclass(frozen=True)
class Ratio:
    """``R:S`` or ``(R:SB:SM)``; ``R:S`` is stored as ``(R:S:S)`` so equal mixes compare equal."""

    real: Fraction
    synth_benign: Fraction
    synth_melanoma: Fraction
    text: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Ratio:
        """Parse one ratio; raises ValueError with the grammar on anything else."""
        t = text.strip()
        try:
            if m := _PLAIN.match(t):
                s = _fraction(m["s"])
                ratio = cls(_fraction(m["r"]), s, s, t)
            elif m := _BALANCED.match(t):
                ratio = cls(_fraction(m["r"]), _fraction(m["sb"]), _fraction(m["sm"]), t)
            else:
                raise ValueError(t)
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"bad ratio {text!r}: expected R:S or (R:SB:SM) with each part 0, 1 or a/b (e.g. 1:1/2, (1:1/2:3/4))"
            ) from None
        if ratio.real > 1:
            raise ValueError(f"bad ratio {text!r}: the real part is a fraction of the real training set (<= 1)")
        if ratio.real == 0 and not ratio.has_synthetic:
            raise ValueError(f"bad ratio {text!r}: trains on no images at all")
        return ratio

    @property
    def has_synthetic(self) -> bool:
        return self.synth_benign > 0 or self.synth_melanoma > 0

    def counts(self, n_benign: int, n_melanoma: int) -> ClassCounts:
        """Per-class image counts given the FULL real training split's class sizes.

        Real: ``round(R * n_class)`` per class (class ratio kept). Synthetic: ``S x |full real train|`` split by
        the real class ratio, i.e. ``S * n_class`` per class; ``(R:SB:SM)`` scales each class separately.
        """
        return ClassCounts(
            real_benign=round_half_even(self.real * n_benign),
            real_melanoma=round_half_even(self.real * n_melanoma),
            synth_benign=round_half_even(self.synth_benign * n_benign),
            synth_melanoma=round_half_even(self.synth_melanoma * n_melanoma),
        )


@dataclass(frozen=True)
class Configuration:
    """One cell of an experiment grid: a ratio, the GAN that supplies the synthetic part, and its sampler."""

    ratio: Ratio
    gan: str = DEFAULT_GAN
    sampler: str = DEFAULT_SAMPLER

    @classmethod
    def parse(cls, label: str) -> Configuration:
        """Parse a paper-style label such as ``1:1/2 sgn bst`` (tags after the ratio, any order)."""
        ratio_text, *tags = label.split()
        ratio = Ratio.parse(ratio_text)
        gans = [GAN_TAGS[t] for t in tags if t in GAN_TAGS]
        samplers = [SAMPLER_TAGS[t] for t in tags if t in SAMPLER_TAGS]
        unknown = [t for t in tags if t not in GAN_TAGS and t not in SAMPLER_TAGS]
        if unknown:
            raise ValueError(
                f"bad label {label!r}: unknown tag {unknown[0]!r} (GANs: {' '.join(GAN_TAGS)}; "
                f"samplers: {' '.join(SAMPLER_TAGS)})"
            )
        if len(gans) > 1 or len(samplers) > 1:
            raise ValueError(f"bad label {label!r}: at most one GAN tag and one sampler tag")
        if (gans or samplers) and not ratio.has_synthetic:
            raise ValueError(f"bad label {label!r}: no synthetic images, so GAN/sampler tags mean nothing")
        conf = cls(ratio, gans[0] if gans else DEFAULT_GAN, samplers[0] if samplers else DEFAULT_SAMPLER)
        if conf.gan in TRANSLATION_GANS and conf.sampler != DEFAULT_SAMPLER:
            raise ValueError(
                f"bad label {label!r}: {conf.gan} makes one image per mask; samplers apply to noise GANs only"
            )
        return conf

    @property
    def label(self) -> str:
        """Canonical label: the paper's tags, omitting the defaults (StyleGAN2, random)."""
        parts = [self.ratio.text]
        if self.ratio.has_synthetic:
            tag_of_gan = {v: k for k, v in GAN_TAGS.items()}
            tag_of_sampler = {v: k for k, v in SAMPLER_TAGS.items()}
            if self.gan != DEFAULT_GAN:
                parts.append(tag_of_gan[self.gan])
            if self.sampler != DEFAULT_SAMPLER:
                parts.append(tag_of_sampler[self.sampler])
        return " ".join(parts)

    def check_capacity(self, counts: ClassCounts, masks: tuple[int, int], cap: bool) -> ClassCounts:
        """Translation GANs give at most one image per available mask, and a synthetic image has its source
        mask's class, so capacity is per class: ``masks`` = (benign, melanoma) training masks.

        Without ``cap`` a class asking for more images than it has masks is refused; with ``cap`` each class
        is clipped on its own to its masks (``1:1/2 p2p`` on the paper's data: 1,861 benign + 485 melanoma),
        never rescaled to the real class ratio. Noise GANs have no capacity: ``counts`` come back unchanged.
        """
        if self.gan not in TRANSLATION_GANS:
            return counts
        asked = {"benign": (counts.synth_benign, masks[0]), "melanoma": (counts.synth_melanoma, masks[1])}
        over = {name: (n, have) for name, (n, have) in asked.items() if n > have}
        if over and not cap:
            name, (n, have) = next(iter(over.items()))
            raise ValueError(
                f"{self.label!r} asks for {n} synthetic {name} images but {self.gan} has only {have} {name} "
                f"masks (one image per mask, of its source's class); set cap = true to use all {have}"
            )
        return ClassCounts(counts.real_benign, counts.real_melanoma, min(counts.synth_benign, masks[0]),
                           min(counts.synth_melanoma, masks[1]))


# ------------------------------------------------------------------------------------------ experiments.toml
#
# The file holds file-level tables ([data.train], [data.tests.NAME], [data.masks], [protocol], [gans.TAG],
# [samplers], [defaults]) and [[experiment]] tables that may override them. An override replaces a whole table one
# level down ([experiment.data.train] replaces [data.train], [experiment.gans.sgn] replaces [gans.sgn],
# [experiment.protocol.model] replaces [protocol.model]; [experiment.samplers] replaces keys): a table describes
# one thing (a data set, a GAN, the model), and half of the paper's Inception-v4 table merged into the demo's small
# model would be neither.

EXPERIMENTS_FILE = "experiments.toml"
ALL_MODES = ("union", "share")
# The diverse sampler's near-duplicate threshold, in bits of the 64-bit pHash: its exact multi-index search
# (engine.synth.hamming) works below 32 bits, and half the hash differing is no near-duplicate anyway.
MAX_DIVERSE_THRESHOLD = 31
# Classify keys that the grid derives from [data] and from each label, so [protocol] may not set them.
GRID_KEYS = ("data", "tests", "real_fraction", "replicate", "synthetic")
# Classify keys that name files: ${ENV}, {workspace} and toml-relative paths are resolved in them too.
PROTOCOL_PATHS = (("model", "weights"),)

_TOP_KEYS = ("data", "protocol", "gans", "samplers", "defaults", "experiment", "executor")
_DATA_KEYS = ("train", "tests", "masks")
_TRAIN_KEYS = ("format", "root", "split_file", "split_seed")
_TEST_KEYS = ("format", "root", "subset")
_MASK_KEYS = ("root",)
_GAN_KEYS = ("family", "preset", "kimg", "snapshot_kimg", "features", "fid_weights", "select_margin", "select_relative",
             "pool_per_class", "import", "trust", "code")
_SAMPLER_KEYS = ("diverse_threshold", "all_mode", "helper")
_DEFAULT_KEYS = ("replicates", "test_sets", "cap")
_EXPERIMENT_KEYS = ("name", "baseline", "replicates", "cap", "test_sets", "groups", "data", "protocol", "gans",
                    "samplers")
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WORKSPACE = "{workspace}"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TrainData:
    """``[data.train]``: the real training collection; its split's test part is always a test set."""

    format: str
    root: str
    split_file: str | None = None
    split_seed: int = 0

    def classify_data(self) -> dict[str, Any]:
        """The ``data`` table of a classify config."""
        out: dict[str, Any] = {"format": self.format, "root": self.root, "split_seed": self.split_seed}
        if self.split_file is not None:
            out["split_file"] = self.split_file
        return out


@dataclass(frozen=True)
class TestData:
    """``[data.tests.NAME]``: an extra test set, optionally restricted to the ids listed in ``subset``."""

    name: str
    format: str
    root: str
    subset: str | None = None

    def classify_test(self) -> dict[str, Any]:
        """One entry of a classify config's ``tests`` list."""
        out: dict[str, Any] = {"name": self.name, "format": self.format, "root": self.root}
        if self.subset is not None:
            out["subset"] = self.subset
        return out


@dataclass(frozen=True)
class GanSpec:
    """``[gans.TAG]``: how the GAN behind a label tag is trained (or imported) and sampled.

    ``features = "baseline"``: FID checkpoints on the domain features of replicate 0 of the ``1:0`` baseline;
    ``fid_weights``: on the standard Inception FID network from that local file (the paper's FID).
    ``import_file`` (toml key ``import``): an external generator instead of training one (``trust``/``code`` as
    ``ganaug gan import``). ``pool_per_class``, ``kimg`` and ``snapshot_kimg`` (checkpoint spacing) None: the
    preset's own values; ``select_margin`` / ``select_relative`` None: the checkpoint rule's defaults for the
    feature space (``engine.gans.metrics.default_margin``).
    """

    tag: str
    family: str
    preset: str = "paper"
    kimg: int | None = None
    features: str | None = "baseline"
    fid_weights: str | None = None
    pool_per_class: int | None = None
    import_file: str | None = None
    trust: bool = False
    code: str | None = None
    snapshot_kimg: int | None = None
    select_margin: float | None = None
    select_relative: bool | None = None

    @property
    def translation(self) -> bool:
        return self.family in TRANSLATION_GANS

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "family": self.family, "preset": self.preset, "kimg": self.kimg,
                "features": self.features, "fid_weights": self.fid_weights, "pool_per_class": self.pool_per_class,
                "import": self.import_file, "trust": self.trust, "code": self.code,
                "snapshot_kimg": self.snapshot_kimg, "select_margin": self.select_margin,
                "select_relative": self.select_relative}

    def to_table(self) -> dict[str, Any]:
        """The ``[gans.TAG]`` table that reads back as this spec (keys left at their defaults are omitted)."""
        table: dict[str, Any] = {"family": self.family}
        if self.import_file is not None:
            table.update({"import": self.import_file, "trust": self.trust})
            if self.code is not None:
                table["code"] = self.code
        else:
            table["preset"] = self.preset
        table.update({k: getattr(self, k) for k in ("kimg", "snapshot_kimg", "fid_weights", "pool_per_class",
                                                      "select_margin", "select_relative")
                      if getattr(self, k) is not None})
        if self.fid_weights is None:
            table["features"] = "baseline"
        return table

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GanSpec:
        return cls(**{("import_file" if k == "import" else k): v for k, v in d.items()})


@dataclass(frozen=True)
class SamplerSettings:
    """``[samplers]``: ``diverse_threshold`` None = the diverse sampler's documented default; ``helper`` (the
    ancillary classifier of best/worst) = ``"baseline"`` (replicate 0 of the ``1:0`` baseline) or a classify run id."""

    diverse_threshold: int | None = None
    all_mode: str = "union"
    helper: str = "baseline"


@dataclass(frozen=True)
class Experiment:
    """A named list of configuration groups (the paper's alternating-colour groups), all on the same protocol,
    with everything needed to plan it: data, protocol (classify keys), GANs and sampler settings."""

    name: str
    groups: tuple[tuple[str, tuple[Configuration, ...]], ...]
    replicates: int
    cap: bool
    baseline: str
    settings: dict[str, Any] = field(default_factory=dict, compare=False)
    test_sets: tuple[str, ...] = ()  # in the order results show them; the split's own test part included
    train: TrainData | None = None
    tests: tuple[TestData, ...] = ()  # the extra test sets named in test_sets, in that order
    masks: str | None = None  # [data.masks] root, when a translation GAN is used
    protocol: dict[str, Any] = field(default_factory=dict)  # classify keys (defaults: the paper)
    gans: dict[str, GanSpec] = field(default_factory=dict)  # the GANs its labels use, by tag (sgn, pgn, p2p, spd)
    samplers: SamplerSettings = SamplerSettings()
    source: str = field(default="", compare=False)  # the toml it came from
    unresolved: tuple[str, ...] = field(default=(), compare=False)  # "file: key: why" per unresolvable path
    slurm: SlurmSettings | None = field(default=None, compare=False)  # the file's [executor.slurm] (after --set)

    @property
    def configurations(self) -> list[Configuration]:
        return [c for _, confs in self.groups for c in confs]

    @property
    def labels(self) -> list[str]:
        """Every configuration's label, in the order the experiment lists them."""
        return [c.label for c in self.configurations]

    def group_of(self, label: str) -> str:
        return next(g for g, confs in self.groups for c in confs if c.label == label)

    def baseline_of(self, group: str) -> str:
        """A group's own real-only configuration (anonymization's ``1/x:0``) or else the experiment's baseline."""
        confs = dict(self.groups)[group]
        real_only = [c.label for c in confs if not c.ratio.has_synthetic]
        return real_only[0] if len(real_only) == 1 else self.baseline

    def gans_of(self, conf: Configuration) -> list[GanSpec]:
        """The GAN(s) whose images a configuration trains on: one, every GAN for ``all``, none for ``R:0``."""
        if not conf.ratio.has_synthetic:
            return []
        if conf.gan == "all":
            return list(self.gans.values())
        return [g for g in self.gans.values() if g.family == conf.gan]

    def classify_base(self) -> dict[str, Any]:
        """The classify config every configuration shares (data, test sets, protocol); the grid adds
        ``real_fraction``, ``replicate`` and ``synthetic`` per run."""
        if self.train is None:
            raise InputError(f"{self.source}: experiment {self.name!r} has no training data ([data.train])")
        return {**self.protocol, "data": self.train.classify_data(),
                "tests": [t.classify_test() for t in self.tests]}

    def check_resolved(self) -> None:
        """InputError (the first unresolvable path, one line) before anything reads this experiment's data."""
        if self.unresolved:
            raise InputError(self.unresolved[0])

    def to_spec(self) -> dict[str, Any]:
        """JSON-ready resolved experiment (stored as ``experiments.spec``): results and the TUI need no toml."""
        return {
            "name": self.name,
            "source": self.source,
            "replicates": self.replicates,
            "cap": self.cap,
            "baseline": self.baseline,
            "test_sets": list(self.test_sets),
            "groups": [{"name": g, "labels": [c.label for c in confs], "baseline": self.baseline_of(g)}
                       for g, confs in self.groups],
            "data": {"train": None if self.train is None else self.train.classify_data(),
                     "tests": [t.classify_test() for t in self.tests], "masks": self.masks},
            "protocol": self.protocol,
            "gans": {tag: g.to_json() for tag, g in self.gans.items()},
            "samplers": {"diverse_threshold": self.samplers.diverse_threshold, "all_mode": self.samplers.all_mode,
                         "helper": self.samplers.helper},
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Experiment:
        """Inverse of :meth:`to_spec` (a stored experiment, e.g. on a copied workspace)."""
        try:
            data = spec["data"]
            return cls(
                name=spec["name"],
                groups=tuple((g["name"], tuple(Configuration.parse(x) for x in g["labels"])) for g in spec["groups"]),
                replicates=int(spec["replicates"]),
                cap=bool(spec["cap"]),
                baseline=spec["baseline"],
                test_sets=tuple(spec["test_sets"]),
                train=None if data["train"] is None else TrainData(**data["train"]),
                tests=tuple(TestData(**t) for t in data["tests"]),
                masks=data["masks"],
                protocol=spec["protocol"],
                gans={tag: GanSpec.from_json(g) for tag, g in spec["gans"].items()},
                samplers=SamplerSettings(**spec["samplers"]),
                source=spec.get("source", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"stored experiment {spec.get('name', '?')!r}: malformed spec ({exc!r}); "
                             "submit it again from experiments.toml") from None


def apply_sets(doc: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a config or a parsed experiments file, in place; returns ``doc``.

    The value is JSON when it parses as JSON (numbers, true/false, quoted strings, lists, tables), else a string.
    Missing tables on the path are created; a path part that meets a list of named tables (``[[experiment]]``)
    picks the table of that name (``experiment.demo.replicates=2``). A malformed item is one InputError line."""
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not p for p in key.split(".")):
            raise InputError(f"--set {item!r}: expected key.path=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node: Any = doc
        *path, last = key.split(".")
        for part in path:
            if isinstance(node, list):
                named = [t for t in node if isinstance(t, dict) and t.get("name") == part]
                if not named:
                    raise InputError(f"--set {item!r}: no table named {part!r} in that list")
                node = named[0]
                continue
            child = node.setdefault(part, {})
            if not isinstance(child, dict | list):
                raise InputError(f"--set {item!r}: {part!r} is not a mapping in the config")
            node = child
        if not isinstance(node, dict):
            raise InputError(f"--set {item!r}: {path[-1] if path else key!r} is a list, not a mapping")
        node[last] = value
    return doc


def shipped_experiments_text() -> str:
    """The ``experiments.toml`` that ships inside the package (what ``ganaug init`` writes out)."""
    from importlib.resources import files

    return files("engine").joinpath(EXPERIMENTS_FILE).read_text(encoding="utf-8")


def read_experiments(file: str | Path | None = None, *, workspace: Path | None = None,
                     sets: Sequence[str] = ()) -> list[Experiment]:
    """``file``, else ``./experiments.toml``, else the shipped file (a pip install has no other); ``sets``:
    ``key.path=value`` overrides of the file's keys for this call (:func:`apply_sets`)."""
    if file is not None:
        return load_experiments(file, workspace=workspace, sets=sets)
    local = Path.cwd() / EXPERIMENTS_FILE
    if local.is_file():
        return load_experiments(local, workspace=workspace, sets=sets)
    return parse_experiments(shipped_experiments_text(), Path(f"<shipped {EXPERIMENTS_FILE}>"), workspace=workspace,
                             base=Path.cwd(), sets=sets)


def experiments_target(file: str | Path | None = None) -> tuple[Path, str]:
    """The experiments file an edit goes to and its text now: ``file``, else ``./experiments.toml``; a missing
    ``./experiments.toml`` starts as the shipped file (what :func:`read_experiments` read instead)."""
    path = Path(file) if file is not None else Path.cwd() / EXPERIMENTS_FILE
    if path.is_file():
        try:
            return path, path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read: {exc}") from None
    if file is not None:
        raise InputError(f"{path}: file not found")
    return path, shipped_experiments_text()


def _experiment_sets(template: str, overrides: Sequence[str]) -> list[str]:
    return [f"experiment.{template}.{item}" for item in overrides]


def derive_experiment(template: str, name: str, overrides: Sequence[str], *, file: str | Path | None = None,
                      workspace: Path | None = None) -> Experiment:
    """Experiment ``template`` of the experiments file with ``overrides`` (``key.path=value`` relative to its
    ``[[experiment]]`` table, applied as ``--set`` applies them) under the name ``name``: validated by the same
    loader as the file, so an experiment made elsewhere (the TUI Builder) is one the file could hold."""
    exp = find_experiment(read_experiments(file, workspace=workspace, sets=_experiment_sets(template, overrides)),
                          template)
    if not _SAFE_NAME.match(name):
        raise InputError(f"experiment name {name!r}: letters, digits, '.', '_' or '-'")
    return replace(exp, name=name)


def save_experiment(template: str, name: str, overrides: Sequence[str], *, file: str | Path | None = None,
                    overwrite: bool = False) -> Path:
    """Write :func:`derive_experiment`'s experiment into the experiments file as an ``[[experiment]]`` table (an
    experiment of that name is replaced only with ``overwrite``); the rest of the file, comments included, is
    kept. The new text is validated by the loader before it atomically replaces the file. Returns the file."""
    import tomli_w

    from engine.fsutil import atomic_write_text

    path, text = experiments_target(file)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    if not _SAFE_NAME.match(name):
        raise InputError(f"experiment name {name!r}: letters, digits, '.', '_' or '-'")
    names = [t.get("name") for t in doc.get("experiment", []) if isinstance(t, dict)]
    if name in names and not overwrite:
        raise InputError(f"{path}: experiment {name!r} exists; confirm to replace it, or choose another name")
    apply_sets(doc, _experiment_sets(template, overrides))
    table = next((t for t in doc.get("experiment", []) if isinstance(t, dict) and t.get("name") == template), None)
    if table is None:
        raise InputError(f"{path}: no experiment named {template!r}")
    block = tomli_w.dumps({"experiment": [{**table, "name": name}]})
    kept = _without_experiment(text, name) if name in names else text
    new_text = kept.rstrip("\n") + "\n\n" + block
    parse_experiments(new_text, path, base=path.absolute().parent)  # never write a file the loader refuses
    try:
        atomic_write_text(path, new_text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(?:#.*)?$")


def _without_experiment(text: str, name: str) -> str:
    """``text`` without the ``[[experiment]]`` block named ``name``: from its header to the next header that is not
    one of its own ``[experiment.*]`` sub-tables."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if re.match(r"^\s*\[\[\s*experiment\s*\]\]", line)]
    for start in starts:
        end = start + 1
        while end < len(lines):
            m = _HEADER.match(lines[end])
            if m and not (m[1].startswith("experiment.") and not lines[end].lstrip().startswith("[[")):
                break
            end += 1
        while end > start + 1 and lines[end - 1].lstrip().startswith("#"):
            end -= 1  # comments just above the next header belong to it
        if tomllib.loads("".join(lines[start:end])).get("experiment", [{}])[0].get("name") == name:
            return "".join(lines[:start] + lines[end:])
    return text


def find_experiment(experiments: list[Experiment], name: str) -> Experiment:
    """The experiment called ``name``; InputError listing the known ones."""
    for exp in experiments:
        if exp.name == name:
            return exp
    known = ", ".join(e.name for e in experiments)
    source = experiments[0].source if experiments else EXPERIMENTS_FILE
    raise InputError(f"{source}: no experiment named {name!r} (known: {known})")


def load_experiments(path: str | Path, *, workspace: Path | None = None,
                     env: dict[str, str] | None = None, sets: Sequence[str] = ()) -> list[Experiment]:
    """Read and validate ``experiments.toml``; every error is one line naming the file and the key
    (e.g. ``experiment[1].groups.ratio[2]``). ``{workspace}`` in paths needs ``workspace``; ``${VAR}`` reads
    ``env`` (default: the process environment). A path that cannot be resolved yet is no error here: it is
    recorded in ``Experiment.unresolved`` and :meth:`Experiment.check_resolved` refuses it before use."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return parse_experiments(text, path, workspace=workspace, env=env, base=path.absolute().parent, sets=sets)


def parse_experiments(text: str, source: Path, *, workspace: Path | None = None, env: dict[str, str] | None = None,
                      base: Path | None = None, sets: Sequence[str] = ()) -> list[Experiment]:
    """Validate the text of an experiments file; ``source`` names it in errors, ``base`` anchors relative paths,
    ``sets`` override keys of the file first."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None
    apply_sets(doc, sets)
    return _Loader(source, workspace, os.environ if env is None else env, base or Path.cwd()).experiments(doc)


@dataclass
class _Parsed:
    """A validated table plus the key it came from and the paths in it that could not be resolved."""

    value: Any
    key: str
    unresolved: tuple[str, ...] = ()


class _Loader:
    """One pass over a parsed experiments file; ``fail`` raises the one-line error for a key."""

    def __init__(self, source: Path, workspace: Path | None, env: Any, base: Path) -> None:
        self.source, self.workspace, self.env, self.base = source, workspace, env, base

    def fail(self, key: str, problem: str) -> InputError:
        return InputError(f"{self.source}: {key}: {problem}")

    # ------------------------------------------------------------------ small typed readers
    def table(self, parent: dict[str, Any], name: str, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        if allowed is not None:
            self.known(value, allowed, key)
        return value

    def known(self, table: dict[str, Any], allowed: tuple[str, ...], key: str) -> None:
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise self.fail(where, f"unknown key (known: {', '.join(allowed)})")

    def string(self, table: dict[str, Any], name: str, key: str, *, required: bool = False) -> str | None:
        value = table.get(name)
        if value is None:
            if required:
                raise self.fail(f"{key}.{name}", "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key}.{name}", f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, table: dict[str, Any], name: str, key: str, *, minimum: int = 0) -> int | None:
        value = table.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{key}.{name}", f"must be an integer >= {minimum}, got {value!r}")
        return value

    def boolean(self, table: dict[str, Any], name: str, key: str, default: bool) -> bool:
        value = table.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key}.{name}", f"must be true or false, got {value!r}")
        return value

    def path(self, value: Any, key: str) -> tuple[str, str | None]:
        """Resolve ``${VAR}``, ``{workspace}``, ``~`` and toml-relative paths; (path, why-unresolved)."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a path string, got {value!r}")
        unset = [m for m in _ENV_VAR.findall(value) if not self.env.get(m)]
        if unset:
            return value, (f"{self.source}: {key}: environment variable {unset[0]} is not set (the path is "
                           f"{value!r}; export {unset[0]}=... or edit the file)")
        text = _ENV_VAR.sub(lambda m: self.env[m[1]], value)
        if _WORKSPACE in text:
            if self.workspace is None:
                return value, f"{self.source}: {key}: {_WORKSPACE} used but no workspace is known here"
            text = text.replace(_WORKSPACE, str(self.workspace))
        p = Path(text).expanduser()
        return str(p if p.is_absolute() else self.base / p), None

    def path_key(self, table: dict[str, Any], name: str, key: str, unresolved: list[str], *,
                 required: bool = False) -> str | None:
        if table.get(name) is None:
            if required:
                raise self.fail(f"{key}.{name}", "missing")
            return None
        value, why = self.path(table[name], f"{key}.{name}")
        if why:
            unresolved.append(why)
        return value

    # ------------------------------------------------------------------ the tables
    def data(self, table: dict[str, Any], key: str) -> tuple[_Parsed | None, dict[str, _Parsed], _Parsed | None]:
        """``[data]``: (train, tests by name, masks), each None/absent when the table does not give it."""
        self.known(table, _DATA_KEYS, key)
        train = None
        if "train" in table:
            tkey = f"{key}.train"
            t = self.table(table, "train", tkey, _TRAIN_KEYS)
            bad: list[str] = []
            fmt = self.string(t, "format", tkey, required=True)
            root = self.path_key(t, "root", tkey, bad, required=True)
            split_file = self.path_key(t, "split_file", tkey, bad)
            seed = self.integer(t, "split_seed", tkey)
            train = _Parsed(TrainData(fmt, root, split_file, 0 if seed is None else seed), tkey, tuple(bad))  # type: ignore[arg-type]
        tests: dict[str, _Parsed] = {}
        for name, t in self.table(table, "tests", f"{key}.tests", None).items():
            tkey = f"{key}.tests.{name}"
            if not isinstance(t, dict):
                raise self.fail(tkey, "must be a table (format, root, subset)")
            if not _SAFE_NAME.match(name):
                raise self.fail(tkey, "a test-set name is letters, digits, '.', '_' or '-'")
            self.known(t, _TEST_KEYS, tkey)
            bad = []
            fmt = self.string(t, "format", tkey, required=True)
            root = self.path_key(t, "root", tkey, bad, required=True)
            subset = self.path_key(t, "subset", tkey, bad)
            tests[name] = _Parsed(TestData(name, fmt, root, subset), tkey, tuple(bad))  # type: ignore[arg-type]
        masks = None
        if "masks" in table:
            mkey = f"{key}.masks"
            bad = []
            root = self.path_key(self.table(table, "masks", mkey, _MASK_KEYS), "root", mkey, bad, required=True)
            masks = _Parsed(root, mkey, tuple(bad))
        return train, tests, masks

    def gans(self, table: dict[str, Any], key: str) -> dict[str, _Parsed]:
        from engine.gans import PRESETS

        out: dict[str, _Parsed] = {}
        for tag, t in table.items():
            gkey = f"{key}.{tag}"
            if tag not in GAN_TAGS or tag == "all":
                raise self.fail(gkey, f"unknown GAN tag (labels use {' '.join(t for t in GAN_TAGS if t != 'all')})")
            if not isinstance(t, dict):
                raise self.fail(gkey, "must be a table")
            self.known(t, _GAN_KEYS, gkey)
            family = self.string(t, "family", gkey) or GAN_TAGS[tag]
            if family != GAN_TAGS[tag]:
                raise self.fail(f"{gkey}.family", f"{family!r}, but the tag {tag} means {GAN_TAGS[tag]} in labels")
            bad: list[str] = []
            imported = self.path_key(t, "import", gkey, bad)
            if imported is not None:
                for k in ("preset", "kimg", "snapshot_kimg"):
                    if k in t:
                        raise self.fail(f"{gkey}.{k}", "an imported generator is not trained here")
            elif "trust" in t or "code" in t:
                raise self.fail(f"{gkey}.{'trust' if 'trust' in t else 'code'}", "only applies with import = FILE")
            preset = self.string(t, "preset", gkey) or "paper"
            if preset not in PRESETS:
                raise self.fail(f"{gkey}.preset", f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
            kimg = self.integer(t, "kimg", gkey, minimum=1)  # thousands of images, as gan-train takes it
            features = self.string(t, "features", gkey)
            fid_weights = self.path_key(t, "fid_weights", gkey, bad)
            if features is not None and fid_weights is not None:
                raise self.fail(gkey, "give features = \"baseline\" or fid_weights = FILE, not both")
            if features is not None and features != "baseline":
                raise self.fail(f"{gkey}.features", f"must be \"baseline\" (domain features of replicate 0 of the "
                                                    f"baseline) or use fid_weights = FILE, got {features!r}")
            pool = self.integer(t, "pool_per_class", gkey, minimum=1)
            if pool is not None and family in TRANSLATION_GANS:
                raise self.fail(f"{gkey}.pool_per_class", f"{family} makes one image per mask; it has no pool")
            margin = t.get("select_margin")
            if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0):
                raise self.fail(f"{gkey}.select_margin", f"must be a number >= 0, got {margin!r}")
            relative = self.boolean(t, "select_relative", gkey, False) if "select_relative" in t else None
            spec = GanSpec(tag, family, preset, kimg, None if fid_weights else "baseline", fid_weights, pool,
                           imported, self.boolean(t, "trust", gkey, False), self.path_key(t, "code", gkey, bad),
                           self.integer(t, "snapshot_kimg", gkey, minimum=1),
                           None if margin is None else float(margin), relative)
            out[tag] = _Parsed(spec, gkey, tuple(bad))
        return out

    def samplers(self, file_table: dict[str, Any], exp_table: dict[str, Any], file_key: str,
                 exp_key: str) -> SamplerSettings:
        self.known(exp_table, _SAMPLER_KEYS, exp_key)
        merged = {**file_table, **exp_table}

        def key(name: str) -> str:
            return exp_key if name in exp_table else file_key

        threshold = self.integer(merged, "diverse_threshold", key("diverse_threshold"))
        if threshold is not None and threshold > MAX_DIVERSE_THRESHOLD:
            raise self.fail(f"{key('diverse_threshold')}.diverse_threshold",
                            f"must be 0..{MAX_DIVERSE_THRESHOLD} bits of the 64-bit pHash, got {threshold}")
        mode = self.string(merged, "all_mode", key("all_mode")) or "union"
        if mode not in ALL_MODES:
            raise self.fail(f"{key('all_mode')}.all_mode", f"must be one of {', '.join(ALL_MODES)}, got {mode!r}")
        helper = self.string(merged, "helper", key("helper")) or "baseline"
        return SamplerSettings(threshold, mode, helper)

    def protocol(self, file_table: dict[str, Any], exp_table: dict[str, Any], exp_key: str) -> tuple[dict, list]:
        """[protocol] with the experiment's tables replacing the file's, paths resolved; (protocol, unresolved)."""
        merged = {**file_table, **exp_table}
        for k in merged:
            if k in GRID_KEYS:
                raise self.fail(f"{exp_key if k in exp_table else 'protocol'}.{k}",
                                "set by the grid from [data] and each label, not by [protocol]")
        unresolved: list[str] = []
        for outer, inner in PROTOCOL_PATHS:
            sub = merged.get(outer)
            if isinstance(sub, dict) and sub.get(inner) is not None:
                where = f"{exp_key if outer in exp_table else 'protocol'}.{outer}"
                merged[outer] = {**sub, inner: self.path_key(sub, inner, where, unresolved)}
        return merged, unresolved

    # ------------------------------------------------------------------ the whole file
    def experiments(self, doc: dict[str, Any]) -> list[Experiment]:
        from engine.executors.slurm import check_executor_table
        from engine.runner.kinds import kind_names

        self.known(doc, _TOP_KEYS, "")
        slurm = check_executor_table(doc, str(self.source))  # [executor.slurm]: for --executor slurm
        f_train, f_tests, f_masks = self.data(self.table(doc, "data", "data", None), "data")
        f_protocol = self.table(doc, "protocol", "protocol", None)
        f_gans = self.gans(self.table(doc, "gans", "gans", None), "gans")
        f_samplers = self.table(doc, "samplers", "samplers", _SAMPLER_KEYS)
        self.samplers(f_samplers, {}, "samplers", "samplers")  # a bad file-level value fails even if overridden
        defaults = self.table(doc, "defaults", "defaults", _DEFAULT_KEYS)
        tables = doc.get("experiment")
        if not isinstance(tables, list) or not tables:
            raise self.fail("experiment", "no [[experiment]] tables")
        kinds = set(kind_names())
        out: list[Experiment] = []
        for i, table in enumerate(tables):
            where = f"experiment[{i}]"
            if not isinstance(table, dict):
                raise self.fail(where, "must be a table")
            self.known(table, _EXPERIMENT_KEYS, where)
            name = table.get("name")
            if not isinstance(name, str) or not _SAFE_NAME.match(name):
                raise self.fail(f"{where}.name", f"missing or not a name (letters, digits, '.', '_', '-'): {name!r}")
            if name in kinds:
                raise self.fail(f"{where}.name", f"{name!r} is the name of a run kind (`ganaug run {name}` "
                                                 "would be ambiguous); rename the experiment")
            if any(e.name == name for e in out):
                raise self.fail(f"{where}.name", f"experiment {name!r} defined twice")
            out.append(replace(self.experiment(i, table, defaults, (f_train, f_tests, f_masks), f_protocol,
                                               f_gans, f_samplers), slurm=slurm))
        return out

    def experiment(self, i: int, table: dict[str, Any], defaults: dict[str, Any],
                   file_data: tuple[_Parsed | None, dict[str, _Parsed], _Parsed | None], f_protocol: dict[str, Any],
                   f_gans: dict[str, _Parsed], f_samplers: dict[str, Any]) -> Experiment:
        from engine.train.config import TEST_SET_NAMES, parse_config

        where = f"experiment[{i}]"
        name = table["name"]

        def origin(k: str) -> str:
            return where if k in table else "defaults"

        settings = {**defaults, **{k: v for k, v in table.items()
                                   if k not in ("groups", "data", "protocol", "gans", "samplers")}}
        groups = self.groups(table, where)
        labels = [c.label for _, confs in groups for c in confs]

        replicates = self.integer(settings, "replicates", origin("replicates"), minimum=1) or 10
        cap = self.boolean(settings, "cap", origin("cap"), False)

        e_train, e_tests, e_masks = self.data(self.table(table, "data", f"{where}.data", None), f"{where}.data")
        f_train, f_tests, f_masks = file_data
        train = e_train or f_train
        if train is None:
            raise self.fail(f"{where}.data.train", "missing: no [data.train] in the file and none in the experiment")
        if train.value.format not in TEST_SET_NAMES:
            raise self.fail(f"{train.key}.format", f"unknown format {train.value.format!r} "
                                                   f"(known: {', '.join(TEST_SET_NAMES)})")
        own = TEST_SET_NAMES[train.value.format]
        tests = {**f_tests, **e_tests}
        if own in tests:
            raise self.fail(tests[own].key, f"{own!r} is the training split's own test part; it is always scored "
                                            "and cannot be redefined")
        test_sets = settings.get("test_sets", [own, *tests])
        tkey = f"{origin('test_sets')}.test_sets"
        if not isinstance(test_sets, list) or not test_sets or not all(isinstance(t, str) for t in test_sets):
            raise self.fail(tkey, "must be a non-empty list of test-set names")
        for j, t in enumerate(test_sets):
            if t != own and t not in tests:
                raise self.fail(f"{tkey}[{j}]", f"unknown test set {t!r} (known: {', '.join([own, *tests])})")
            if test_sets.index(t) != j:
                raise self.fail(f"{tkey}[{j}]", f"test set {t!r} listed twice")
        used_tests = [tests[t] for t in test_sets if t != own]
        masks = e_masks or f_masks

        gans = {**f_gans, **self.gans(self.table(table, "gans", f"{where}.gans", None), f"{where}.gans")}
        samplers = self.samplers(f_samplers, self.table(table, "samplers", f"{where}.samplers", None), "samplers",
                                 f"{where}.samplers")
        protocol, unresolved = self.protocol(f_protocol, self.table(table, "protocol", f"{where}.protocol", None),
                                             f"{where}.protocol")

        # Every label must be makeable from the GANs and masks this experiment has.
        used_gans: dict[str, _Parsed] = {}
        for gname, confs in groups:
            for j, conf in enumerate(confs):
                lkey = f"{where}.groups.{gname}[{j}]"
                if not conf.ratio.has_synthetic:
                    continue
                tag = next(t for t, fam in GAN_TAGS.items() if fam == conf.gan)
                need = list(gans) if conf.gan == "all" else [tag]
                if not need or need[0] not in gans:
                    raise self.fail(lkey, f"{conf.label!r} uses GAN tag {tag} but there is no [gans.{tag}] table"
                                    if conf.gan != "all" else f"{conf.label!r} uses all GANs but there are none")
                for t in need:
                    used_gans[t] = gans[t]
                    if gans[t].value.translation and masks is None:
                        raise self.fail(lkey, f"{conf.label!r} needs [data.masks] root: {gans[t].value.family} "
                                              "draws one image per attribute mask")

        baseline = settings.get("baseline")
        if baseline is None:
            full_real = [c.label for c in (c for _, cs in groups for c in cs)
                         if not c.ratio.has_synthetic and c.ratio.real == 1]
            if len(full_real) != 1:
                raise self.fail(f"{where}.baseline", "missing: set baseline = LABEL (the configuration every "
                                                     "group is compared with)")
            baseline = full_real[0]
        if not isinstance(baseline, str):
            raise self.fail(f"{origin('baseline')}.baseline", f"must be a label string, got {baseline!r}")
        try:
            baseline = Configuration.parse(baseline).label
        except ValueError as exc:
            raise self.fail(f"{origin('baseline')}.baseline", str(exc)) from None
        if baseline not in labels:
            raise self.fail(f"{origin('baseline')}.baseline",
                            f"{baseline!r} is not one of the experiment's configurations")

        # Only what the labels use belongs to the experiment (and only its paths must resolve).
        used_gans = {t: used_gans[t] for t in gans if t in used_gans}
        if not any(p.value.translation for p in used_gans.values()):
            masks = None
        exp = Experiment(
            name=name, groups=groups, replicates=replicates, cap=cap, baseline=baseline, settings=settings,
            test_sets=tuple(test_sets), train=train.value, tests=tuple(t.value for t in used_tests),
            masks=None if masks is None else masks.value, protocol=protocol,
            gans={t: p.value for t, p in used_gans.items()}, samplers=samplers, source=str(self.source),
            unresolved=tuple([*train.unresolved, *(m for t in used_tests for m in t.unresolved),
                              *(masks.unresolved if masks is not None else ()),
                              *(m for p in used_gans.values() for m in p.unresolved), *unresolved]),
        )
        # The protocol is validated by the classify kind's own schema, so the file can never say what a run refuses.
        try:
            parse_config(exp.classify_base())
        except InputError as exc:
            raise self.fail(*self.classify_key(str(exc), where, train.key, used_tests, table)) from None
        return exp

    def groups(self, table: dict[str, Any], where: str) -> tuple[tuple[str, tuple[Configuration, ...]], ...]:
        groups_table = table.get("groups")
        if not isinstance(groups_table, dict) or not groups_table:
            raise self.fail(f"{where}.groups", "missing (a table of group name -> list of labels)")
        groups = []
        for gname, labels in groups_table.items():
            if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
                raise self.fail(f"{where}.groups.{gname}", "must be a non-empty list of label strings")
            confs = []
            for j, text in enumerate(labels):
                try:
                    confs.append(Configuration.parse(text))
                except ValueError as exc:
                    raise self.fail(f"{where}.groups.{gname}[{j}]", str(exc)) from None
            groups.append((gname, tuple(confs)))
        seen = [c.label for _, confs in groups for c in confs]
        dupes = sorted({x for x in seen if seen.count(x) > 1})
        if dupes:
            raise self.fail(f"{where}.groups", f"configuration {dupes[0]!r} listed twice")
        return tuple(groups)

    @staticmethod
    def classify_key(message: str, where: str, train_key: str, tests: list[_Parsed],
                     table: dict[str, Any]) -> tuple[str, str]:
        """Map a classify-config error (``classify config: optim.lr: ...``) to the toml key that set the value."""
        m = re.match(r"^classify config: (?P<loc>[^:]+): (?P<msg>.*)$", message)
        if not m:
            return f"{where}.protocol", message
        loc, msg = m["loc"].split("."), m["msg"]
        if loc[0] == "data":
            return ".".join([train_key, *loc[1:]]), msg
        if loc[0] == "tests" and len(loc) > 2 and loc[1].isdigit() and int(loc[1]) < len(tests):
            return ".".join([tests[int(loc[1])].key, *loc[2:]]), msg
        if loc[0] in ("tests", "config"):
            return f"{where}.test_sets", msg
        exp_protocol = table.get("protocol", {})
        return ".".join([f"{where}.protocol" if loc[0] in exp_protocol else "protocol", *loc]), msg
