"""``random``: a seeded permutation of the class, the paper's default sampler.

The permutation depends on (seed, label) only: never on the replicate or the requested count, so every
replicate and every ratio draws from the same order.
"""

from __future__ import annotations

import numpy as np

from engine.synth.samplers import ClassItems, Ordering, Sampler, register_sampler


def visit_order(n: int, seed: int, label: int) -> np.ndarray:
    """The seeded order random sampling takes, and the order in which diverse sampling visits images."""
    return np.random.default_rng([seed, label]).permutation(n)


@register_sampler("random")
def random_sampler(seed: int = 0) -> Sampler:
    def order(items: ClassItems) -> Ordering:
        return Ordering(visit_order(len(items), seed, items.label), preferred=len(items))

    return order
