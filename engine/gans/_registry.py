"""Registry of GAN families and the one interface every family implements (``GanTrainer``).

A family module defines its networks and losses, a ``build(config, device) -> GanTrainer`` function and its
presets, and registers them with ``@register_family``. The ``gan-train`` / ``gan-pool`` run kinds, the metrics
and the CLI only ever talk to a ``GanTrainer``, so a new family is one new file.

Two kinds of family: ``noise`` (class-conditional, sampled from a latent: StyleGAN2, PGAN) and ``translation``
(one image per attribute label map: pix2pixHD, SPADE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from engine.errors import InputError
from engine.registry import Registry

if TYPE_CHECKING:
    import torch

PRESETS = ("tiny", "demo", "paper")
RUN_KEYS = ("res", "batch", "kimg", "snapshot_kimg")  # what every preset must set for gan-train
Conditioning = Literal["noise", "translation"]


@dataclass
class GanBatch:
    """One batch of real training data at the GAN's resolution, on the trainer's device.

    ``images``: float (B, 3, R, R) in [-1, 1]; ``labels``: long (B,), 1 = melanoma; ``maps``: translation GANs
    only, float (B, C, R, R) one-hot label maps (C = 8 classes of ``engine.data.masks``) plus any extra channel
    the family declares (e.g. a boundary map).
    """

    images: torch.Tensor
    labels: torch.Tensor
    maps: torch.Tensor | None = None


class GanTrainer(Protocol):
    """A family's networks, optimisers and losses; owns its own step counter (``images_seen``).

    ``train_step`` does one iteration (the family's D and G updates, its regularisers on their lazy schedule,
    augmentation-probability updates, EMA) and returns scalar logs (``loss_g``, ``loss_d``, ``r1``, ``aug_p``
    where they apply). All randomness comes from ``gen`` so a resumed run repeats exactly.
    ``generate`` uses the EMA generator by default and returns float (N, 3, R, R) in [-1, 1]:
    noise families take ``z`` (N, z_dim) and ``labels``; translation families take ``maps``.
    ``state_dict`` holds everything a bit-exact resume needs (networks, EMA, optimisers, step, adaptive state).
    """

    family: str
    config: dict[str, Any]
    res: int
    images_seen: int

    def train_step(self, batch: GanBatch, gen: torch.Generator) -> dict[str, float]: ...

    def generate(self, *, labels: torch.Tensor | None = None, z: torch.Tensor | None = None,
                 maps: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


Builder = Callable[[dict[str, Any], "torch.device"], GanTrainer]


@dataclass(frozen=True)
class Family:
    name: str
    conditioning: Conditioning
    presets: dict[str, dict[str, Any]]  # preset name -> the family's complete config at that preset
    build: Builder
    generator_of: Callable[[GanTrainer], torch.nn.Module]  # the (non-EMA) generator network of a trainer
    # the generator that checkpoints, grids, metrics and pools use: its EMA copy where the family keeps one
    ema_generator_of: Callable[[GanTrainer], torch.nn.Module] | None = None

    def sampling_generator(self, trainer: GanTrainer) -> torch.nn.Module:
        return (self.ema_generator_of or self.generator_of)(trainer)


# Families shipped with ganaug, imported on first use: name -> module that registers it.
_FAMILIES: Registry[Family] = Registry("GAN family", {
    "stylegan2": "engine.gans.stylegan2",
    "pgan": "engine.gans.pgan",
    "pix2pixhd": "engine.gans.pix2pixhd",
    "spade": "engine.gans.spade",
}, error=InputError)


def register_family(name: str, *, conditioning: Conditioning, presets: dict[str, dict[str, Any]],
                    generator_of: Callable[[GanTrainer], torch.nn.Module],
                    ema_generator_of: Callable[[GanTrainer], torch.nn.Module] | None = None,
                    ) -> Callable[[Builder], Builder]:
    """Decorator on a family's ``build(config, device)``; every preset of ``PRESETS`` must be given.

    Every preset must also say how long to train and how often to checkpoint (``batch``, ``kimg``,
    ``snapshot_kimg``), and the resolution (``res``): the ``gan-train`` kind reads those.
    """
    missing = [p for p in PRESETS if p not in presets]
    if missing:
        raise ValueError(f"family {name}: presets {missing} missing")
    for preset, config in presets.items():
        lacking = [k for k in RUN_KEYS if k not in config]
        if lacking:
            raise ValueError(f"family {name}: preset {preset} lacks {lacking}")

    def deco(build: Builder) -> Builder:
        _FAMILIES.register(name, Family(name, conditioning, presets, build, generator_of, ema_generator_of))
        return build

    return deco


def families() -> list[str]:
    return _FAMILIES.names()


def get_family(name: str) -> Family:
    return _FAMILIES.get(name)


def resolve_config(family: str, preset: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """The preset's config with ``overrides`` applied; an unknown key or preset is an InputError."""
    fam = get_family(family)
    if preset not in fam.presets:
        raise InputError(f"{family}: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    config = dict(fam.presets[preset])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise InputError(f"{family}: unknown config key {unknown[0]!r}; known: {', '.join(sorted(config))}")
    config.update(overrides)
    return {**config, "family": family, "preset": preset}


def create_gan(family: str, preset: str = "tiny", device: str | torch.device = "cpu", *, seed: int = 0,
               **overrides: Any) -> GanTrainer:
    """A ready-to-train trainer of ``family`` at ``preset`` on ``device``, its random init drawn from ``seed``
    (the global RNG is forked, so the caller's RNG state is left as it was)."""
    import torch

    config = resolve_config(family, preset, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_family(family).build(config, torch.device(device))


def create_generator(family: str, preset: str = "tiny", **overrides: Any) -> torch.nn.Module:
    """Only the generator network of ``family`` at ``preset`` (random init, CPU); noise families' generators
    are called ``G(z, labels)`` and return float (N, 3, R, R) in [-1, 1]."""
    fam = get_family(family)
    return fam.generator_of(create_gan(family, preset, **overrides))
