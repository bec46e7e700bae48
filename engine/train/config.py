"""The ``classify`` run config: defaults are the paper's protocol (section 3.2), everything overridable.

Where the paper's text and its public code disagree, the text is the default and the code's choice an
option: ``augment.preset = "code"`` (adds ColorJitter brightness/contrast/saturation 0.4),
``optim.balanced_sampler = true`` (the code's class-balanced WeightedRandomSampler).

One exception, where the code wins: the hue range. The text says "hue changes of -10 - 10 %"; the code runs
``ColorJitter(hue=0.5*0.1)``, i.e. 10 % of torchvision's maximum hue shift 0.5: +-0.05 of the hue circle
(+-18 deg). The text's "10 %" is ambiguous (of what?) and the code shows what the authors meant, so the
``paper`` preset uses +-0.05; ``augment.hue = 0.1`` (+-36 deg) is the other reading.

The text only says "validation plateau"; ``optim.monitor`` picks what drives the LR plateau, early stopping
and the best checkpoint. The default is ``val_loss``: it is what the public code monitored (the only
evidence of what the authors ran), and loss is smooth where validation AUC on a small, imbalanced
validation set moves in noisy steps that make plateau detection erratic. ``val_auc`` is the option.

Which keys are protocol (equal across the runs an analysis compares) and which a configuration may vary:
``protocol_diff``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from engine.errors import config_error
from engine.synth.mix import Source, parse_sources

# Data-set formats the data layer reads, and the canonical test-set name of each.
TEST_SET_NAMES: dict[str, str] = {
    "isic2019": "isic19",
    "isic2020": "isic20",
    "derm7pt-derm": "derm7pt-derm",
    "derm7pt-clinic": "derm7pt-clinic",
    "dermofit": "dermofit",
    "csv": "csv",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    format: Literal["isic2019", "isic2020", "derm7pt-derm", "derm7pt-clinic", "dermofit", "csv"]
    root: str
    # The stratified split of this seed (unused when split_file is given); numpy seed sequences take no negatives.
    split_seed: int = Field(0, ge=0)
    split_file: str | None = None  # a split CSV from `ganaug data split` (e.g. the paper's, from --assign)


class TestSetConfig(_Strict):
    name: str = ""  # empty: the canonical name of the format
    format: Literal["isic2019", "isic2020", "derm7pt-derm", "derm7pt-clinic", "dermofit", "csv"]
    root: str
    subset: str | None = None  # CSV of the image ids to keep (the paper's 1,743-image isic20 subset)

    @model_validator(mode="after")
    def _default_name(self) -> TestSetConfig:
        if not self.name:
            object.__setattr__(self, "name", TEST_SET_NAMES[self.format])
        return self


class ModelConfig(_Strict):
    name: str = "inception_v4"
    pretrained: bool = True
    weights: str | None = None  # local weights file (offline); None: timm's cache / hub
    res: int = Field(299, ge=16, le=2048)
    norm: Literal["imagenet", "model"] = "imagenet"


class OptimConfig(_Strict):
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-3, ge=0)
    batch_size: int = Field(32, ge=1)
    max_epochs: int = Field(100, ge=1)
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    plateau_patience: int = Field(10, ge=0)
    min_lr: float = Field(1e-5, ge=0)
    early_stop_patience: int = Field(22, ge=1)
    monitor: Literal["val_loss", "val_auc"] = "val_loss"
    balanced_sampler: bool = False


_PRESETS: dict[str, dict[str, Any]] = {
    # The paper's text: flips, resized crop 75-100 % area, rotation +-45 deg, hue "+-10 %", which its code ran as
    # ColorJitter(hue=0.5*0.1) = +-0.05 of the hue circle (see the module doc: the one place the code wins).
    "paper": dict(hflip=True, vflip=True, crop_scale=(0.75, 1.0), rotation=45.0, hue=0.05,
                  brightness=0.0, contrast=0.0, saturation=0.0),
    # The public code: the same geometry, ColorJitter(0.4, 0.4, 0.4, hue=0.05).
    "code": dict(hflip=True, vflip=True, crop_scale=(0.75, 1.0), rotation=45.0, hue=0.05,
                 brightness=0.4, contrast=0.4, saturation=0.4),
    # No augmentation at all (plain inference; ablations).
    "none": dict(hflip=False, vflip=False, crop_scale=(1.0, 1.0), rotation=0.0, hue=0.0,
                 brightness=0.0, contrast=0.0, saturation=0.0),
}


class AugmentConfig(_Strict):
    """Per-image random augmentation, the same for training and test-time augmentation (as the paper).

    ``hue`` is a fraction of the hue circle (torchvision's convention: 0.05 = +-18 deg); ``brightness``,
    ``contrast``, ``saturation`` are ColorJitter strengths (factor drawn from [1-s, 1+s]). Fields left
    out take the preset's value. ``source_scale``: the crop is taken from the image cached at
    ``round(source_scale * model.res)`` and resampled to ``model.res`` (1: from the image squashed to the
    model's resolution; the authors cropped the original photograph, then resized).
    """

    preset: Literal["paper", "code", "none"] = "paper"
    hflip: bool | None = None
    vflip: bool | None = None
    crop_scale: tuple[float, float] | None = None
    rotation: float | None = Field(None, ge=0, le=180)
    hue: float | None = Field(None, ge=0, le=0.5)
    brightness: float | None = Field(None, ge=0, lt=1)
    contrast: float | None = Field(None, ge=0, lt=1)
    saturation: float | None = Field(None, ge=0, lt=1)
    source_scale: float = Field(1.0, ge=1, le=2)

    @model_validator(mode="after")
    def _fill_from_preset(self) -> AugmentConfig:
        for key, value in _PRESETS[self.preset].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        lo, hi = self.crop_scale  # type: ignore[misc]
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        return self

    @property
    def identity(self) -> bool:
        """True when no transform can change an image (augmentation off)."""
        return (not self.hflip and not self.vflip and self.crop_scale == (1.0, 1.0) and self.rotation == 0
                and self.hue == 0 and self.brightness == 0 and self.contrast == 0 and self.saturation == 0)


class TTAConfig(_Strict):
    replicas: int = Field(50, ge=1)
    batch_size: int = Field(256, ge=1)  # images x replicas per forward pass


class ClassifyConfig(_Strict):
    """One fine-tune of the target classifier, scored on its split's test part and every extra test set."""

    data: DataConfig
    tests: list[TestSetConfig] = []
    real_fraction: Fraction = Fraction(1)
    replicate: int = Field(0, ge=0)
    # Synthetic training images: a list of sources (engine.synth.mix): {"csv": FILE} | {"pool": RUN, "ids": FILE}.
    synthetic: list[SerializeAsAny[Source]] = []
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    augment: AugmentConfig = AugmentConfig()
    tta: TTAConfig = TTAConfig()
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    compile: bool = False  # torch.compile the model (CUDA; slow to start)

    @field_validator("real_fraction", mode="before")
    @classmethod
    def _parse_fraction(cls, value: Any) -> Fraction:
        return parse_fraction(value)

    @field_validator("synthetic", mode="before")
    @classmethod
    def _parse_sources(cls, value: Any) -> list[Source]:
        return parse_sources(value)

    @model_validator(mode="after")
    def _unique_test_names(self) -> ClassifyConfig:
        names = [TEST_SET_NAMES[self.data.format]] + [t.name for t in self.tests]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"test-set names must be unique (the split's own test part is "
                             f"{names[0]!r}); duplicated: {', '.join(dupes)}")
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (the fraction as ``"a/b"``) that :func:`parse_config` reads back identically."""
        out = self.model_dump(mode="python")
        out["real_fraction"] = str(self.real_fraction)
        out["augment"]["crop_scale"] = list(self.augment.crop_scale)  # type: ignore[arg-type]
        return out


def parse_fraction(value: Any) -> Fraction:
    """``"1/4"``, ``0.25``, ``1`` -> Fraction in (0, 1]; anything else is a ValueError."""
    if isinstance(value, Fraction):
        frac = value
    elif isinstance(value, bool):
        raise ValueError(f"real_fraction must be a fraction like '1/4' or 0.25, got {value!r}")
    elif isinstance(value, int | float | str):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"real_fraction must be finite, got {value!r}")
        try:
            frac = Fraction(str(value).strip()).limit_denominator(10_000)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"real_fraction must be a fraction like '1/4' or 0.25, got {value!r}") from None
    else:
        raise ValueError(f"real_fraction must be a fraction like '1/4' or 0.25, got {value!r}")
    if not 0 < frac <= 1:
        raise ValueError(f"real_fraction must be in (0, 1], got {value!r}")
    return frac


# Keys a configuration of an experiment may vary (its ratio, its replicate, its synthetic images), and keys that
# only say how a run executes. Every other key is protocol: runs compared with each other must agree on it.
VARIABLE_KEYS = frozenset({"real_fraction", "replicate", "synthetic"})
EXECUTION_KEYS = frozenset({"device", "amp", "compile", "tta.batch_size"})


def protocol_diff(config_a: dict[str, Any] | ClassifyConfig, config_b: dict[str, Any] | ClassifyConfig) -> list[str]:
    """The protocol keys in which two classify configs differ (dotted, sorted; empty = same protocol).

    Both are validated first, so a key left out equals its default. Ignored: what a configuration may vary
    (``real_fraction``, ``replicate``, ``synthetic``) and execution-only keys (``device``, ``amp``, ``compile``,
    ``tta.batch_size``). Everything else (model, optim, augment, ``tta.replicas``, data and split, test sets,
    ``seed``) is protocol: the paper's pitfall "more tuning for augmented models" is a difference here. Test
    sets compare by name (``tests.isic20.subset``), whatever their order.
    """
    return sorted(_diff(_protocol_view(config_a), _protocol_view(config_b), ""))


def protocol_key(config: dict[str, Any]) -> str:
    """A cheap fingerprint of a stored (validated, complete) classify config's protocol, without pydantic: equal
    keys mean the same protocol; different keys are confirmed with :func:`protocol_diff` (which also fills in
    defaults a hand-written config may leave out). The results view sorts thousands of runs by it."""
    import copy
    import json

    return json.dumps(_without_ignored(copy.deepcopy(config)), sort_keys=True, default=str)


def _protocol_view(config: dict[str, Any] | ClassifyConfig) -> dict[str, Any]:
    """The config as nested dicts, test sets keyed by name, without the keys a comparison ignores."""
    cfg = config if isinstance(config, ClassifyConfig) else parse_config(config)
    return _without_ignored(cfg.to_json())


def _without_ignored(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (a config dict, changed in place) with test sets keyed by name and without the variable and
    execution keys."""
    doc["tests"] = {t.get("name"): {k: v for k, v in t.items() if k != "name"} for t in doc.get("tests", [])}
    for key in VARIABLE_KEYS:
        doc.pop(key, None)
    for key in EXECUTION_KEYS:
        *parents, leaf = key.split(".")
        node = doc
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return doc


def _diff(a: Any, b: Any, where: str) -> list[str]:
    """Dotted keys at which two nested dicts differ; a key on one side only is reported as itself."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [where]
    out: list[str] = []
    for key in a.keys() | b.keys():
        path = f"{where}.{key}" if where else key
        out += _diff(a[key], b[key], path) if key in a and key in b else [path]
    return out


def parse_config(raw: dict[str, Any]) -> ClassifyConfig:
    """Validate a raw config dict; errors become one InputError line naming the key."""
    try:
        return ClassifyConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, "classify config") from None
