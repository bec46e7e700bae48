"""Samplers: which images of one class of one pool a selection takes, as a deterministic preference order.

A sampler turns the images of one class (``ClassItems``) into an ``Ordering``; a selection of ``k`` images is
the first ``k`` of it. So selections are nested (``1:1/4`` takes a prefix of what ``1:1/2`` takes) and, since
no sampler sees the replicate, the synthetic set is the same in every replicate (the paper keeps it fixed
and varies the real subset).

Registry in timm's shape: a module registers a factory with ``@register_sampler("name")``; the factory takes
the settings it needs as keyword arguments and returns the sampler; ``create_sampler(name, **settings)`` is the
one entry (built-ins are imported on first use). Settings come from one shared table (``[samplers]`` of
``experiments.toml``, the ``select`` run's ``samplers`` config), so each factory gets only those of the
settings its signature names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.registry import Registry


@dataclass
class ClassItems:
    """The images of one class of one pool, in pool (id) order; pHashes and helper errors on demand."""

    ids: list[str]
    label: int
    hashes: Callable[[], np.ndarray]  # uint64 pHash per image
    errors: Callable[[], np.ndarray]  # the helper classifier's cross-entropy of ``label`` per image

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Rejected:
    """Images a sampler set aside (diverse: near-duplicates) with the kept image nearest to each."""

    positions: np.ndarray
    nearest: np.ndarray
    distance: np.ndarray


@dataclass
class Ordering:
    """Positions into ``ClassItems``, preferred first. The first ``preferred`` meet the sampler's criterion
    (diverse: the images kept); the rest follow only when a selection needs more than those."""

    order: np.ndarray
    preferred: int
    scores: np.ndarray | None = None  # per entry of ``order``; None: the sampler has no score
    score_of: Callable[[np.ndarray], np.ndarray] | None = None  # a score that depends on the whole selection
    rejected: Rejected | None = None

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The first ``k`` positions and their scores."""
        if k > len(self.order):
            raise ValueError(f"asks for {k} images of {len(self.order)}")
        positions = self.order[:k]
        if self.score_of is not None:
            return positions, self.score_of(positions)
        return positions, None if self.scores is None else self.scores[:k]


Sampler = Callable[[ClassItems], Ordering]
Factory = Callable[..., Sampler]

# Samplers shipped with ganaug, imported on first use: name -> module that registers it.
_SAMPLERS: Registry[Factory] = Registry("sampler", {
    "random": "engine.synth.samplers.seeded",
    "diverse": "engine.synth.samplers.diverse",
    "best": "engine.synth.samplers.helper",
    "worst": "engine.synth.samplers.helper",
})


def register_sampler(name: str) -> Callable[[Factory], Factory]:
    """Decorator: ``@register_sampler("diverse")`` on a factory ``(**settings) -> Sampler``."""
    return lambda factory: _SAMPLERS.register(name, factory)


def sampler_names() -> list[str]:
    return _SAMPLERS.names()


def create_sampler(name: str, **settings: Any) -> Sampler:
    """The sampler ``name`` configured with those of ``settings`` its factory takes."""
    factory = _SAMPLERS.get(name)
    params = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in settings.items() if k in params})


def needs(name: str) -> set[str]:
    """The settings the sampler ``name`` reads (so a run records, and checks, only what matters to it)."""
    return set(inspect.signature(_SAMPLERS.get(name)).parameters)
