"""Experiment configuration: the paper's ratio grammar, its label tags, and ``experiments.toml``.

A configuration label reads like the paper's plot labels: ``1:1/2 sgn bst`` is "all real images plus
half as many StyleGAN2 images, chosen by the best-classified sampler". Parsing is strict so that a typo
in a 300-run grid is an error on one line, not a silently different experiment.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from engine.errors import InputError

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


@dataclass(frozen=True)
class Experiment:
    """A named list of configuration groups (the paper's alternating-colour groups), all on the same protocol."""

    name: str
    groups: tuple[tuple[str, tuple[Configuration, ...]], ...]
    replicates: int
    cap: bool
    baseline: str
    settings: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def configurations(self) -> list[Configuration]:
        return [c for _, confs in self.groups for c in confs]

    def baseline_of(self, group: str) -> str:
        """A group's own real-only configuration (anonymization's ``1/x:0``) or else the experiment's baseline."""
        confs = dict(self.groups)[group]
        real_only = [c.label for c in confs if not c.ratio.has_synthetic]
        return real_only[0] if len(real_only) == 1 else self.baseline


def load_experiments(path: str | Path) -> list[Experiment]:
    """Read ``experiments.toml``; every error names the file and the key (e.g. ``experiment[1].groups.ratio[2]``)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    defaults = doc.get("defaults", {})
    experiments = doc.get("experiment")
    if not isinstance(experiments, list) or not experiments:
        raise InputError(f"{path}: no [[experiment]] tables")
    out: list[Experiment] = []
    for i, table in enumerate(experiments):
        where = f"{path}: experiment[{i}]"
        settings = {**defaults, **{k: v for k, v in table.items() if k != "groups"}}
        name = settings.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(f"{where}.name: missing or not a string")
        groups_table = table.get("groups")
        if not isinstance(groups_table, dict) or not groups_table:
            raise InputError(f"{where}.groups: missing (a table of group name -> list of labels)")
        groups = []
        for gname, labels in groups_table.items():
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise InputError(f"{where}.groups.{gname}: must be a list of label strings")
            confs = []
            for j, text in enumerate(labels):
                try:
                    confs.append(Configuration.parse(text))
                except ValueError as exc:
                    raise InputError(f"{where}.groups.{gname}[{j}]: {exc}") from None
            groups.append((gname, tuple(confs)))
        labels_seen = [c.label for _, confs in groups for c in confs]
        dupes = sorted({x for x in labels_seen if labels_seen.count(x) > 1})
        if dupes:
            raise InputError(f"{where}.groups: configuration {dupes[0]!r} listed twice")
        replicates = settings.get("replicates", 10)
        if not isinstance(replicates, int) or replicates < 1:
            raise InputError(f"{where}.replicates: must be a positive integer")
        real_only = [c.label for _, confs in groups for c in confs if not c.ratio.has_synthetic]
        baseline = settings.get("baseline", real_only[0] if real_only else labels_seen[0])
        if baseline not in labels_seen:
            raise InputError(f"{where}.baseline: {baseline!r} is not one of the experiment's configurations")
        out.append(
            Experiment(
                name=name,
                groups=tuple(groups),
                replicates=replicates,
                cap=bool(settings.get("cap", False)),
                baseline=baseline,
                settings=settings,
            )
        )
    return out
