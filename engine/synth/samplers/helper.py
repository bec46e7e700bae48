"""``best`` / ``worst``: the images an ancillary (helper) classifier finds easiest / hardest.

The paper ranks synthetic images by the error of a classifier trained on real images; here the error is the
per-image cross-entropy of the image's intended class under the helper's best checkpoint (by default the
replicate-0 ``1:0`` classify run of the same data). ``best`` takes the lowest first, ``worst`` the highest;
ties keep pool (id) order. The score column is that error.
"""

from __future__ import annotations

import numpy as np

from engine.synth.samplers import ClassItems, Ordering, Sampler, register_sampler


def _by_error(items: ClassItems, highest_first: bool) -> Ordering:
    errors = np.asarray(items.errors(), dtype=np.float64)
    if not np.isfinite(errors).all():
        raise ValueError("the helper classifier's errors contain NaN or infinity")
    order = np.argsort(-errors if highest_first else errors, kind="stable")
    return Ordering(order, preferred=len(order), scores=errors[order])


@register_sampler("best")
def best_sampler() -> Sampler:
    return lambda items: _by_error(items, highest_first=False)


@register_sampler("worst")
def worst_sampler() -> Sampler:
    return lambda items: _by_error(items, highest_first=True)
