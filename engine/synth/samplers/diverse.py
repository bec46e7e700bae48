"""``diverse``: random order with pHash near-duplicates removed (the paper's "pHash near-duplicate exclusion").

Images are visited in the random sampler's seeded order; an image is kept unless a kept image lies within
``diverse_threshold`` bits of its 64-bit pHash (greedy exclusion, exact at any pool size: see
``engine.synth.hamming``). The order is the kept images in visiting order.

Default threshold: 4 bits. Measured on the demo lesions (64 px, see the README): photometric near-copies
(JPEG q75, Gaussian noise sigma 4, brightness +-8 %) land within 4 bits of their original in 99 % of cases,
while distinct lesions' nearest neighbours sit at 6-14 bits and come closer as the pool grows (the 25th
percentile falls from 12 to 6 bits between 300 and 1,700 images); at 8 bits the sampler already removes
distinct lesions (13 % of 1,200 demo images instead of 8 %, the planted copies). pHash distances between
hashes with equal bit counts are even, so 4 and 5 act alike.

A selection asking for more images than were kept continues with the excluded images, those farthest from
their nearest kept image first (the least redundant of the near-duplicates), and says how many it took
(``overflow``) in the run's ``result.json`` and log. Score: the Hamming distance from each selected image to
its nearest other selected image of the same class.
"""

from __future__ import annotations

import numpy as np

from engine.config import MAX_DIVERSE_THRESHOLD
from engine.synth.hamming import greedy, nearest
from engine.synth.samplers import ClassItems, Ordering, Rejected, Sampler, register_sampler
from engine.synth.samplers.seeded import visit_order

DEFAULT_THRESHOLD = 4


@register_sampler("diverse")
def diverse_sampler(seed: int = 0, diverse_threshold: int = DEFAULT_THRESHOLD) -> Sampler:
    if not 0 <= diverse_threshold <= MAX_DIVERSE_THRESHOLD:
        raise ValueError(f"diverse_threshold must be in [0, {MAX_DIVERSE_THRESHOLD}] bits, got {diverse_threshold}")

    def order(items: ClassItems) -> Ordering:
        hashes = np.asarray(items.hashes(), dtype=np.uint64)
        visit = visit_order(len(items), seed, items.label)
        ex = greedy(hashes, visit, diverse_threshold)
        rank = np.empty(len(items), dtype=np.int64)
        rank[visit] = np.arange(len(items))
        fill = np.lexsort((rank[ex.excluded], -ex.distance.astype(np.int64)))

        def score_of(positions: np.ndarray) -> np.ndarray:
            dist = nearest(hashes[positions], hashes[positions], exclude_self=True)[1].astype(np.float64)
            return np.where(dist > 64, np.nan, dist)  # a selection of one has no neighbour

        return Ordering(np.concatenate([ex.kept, ex.excluded[fill]]), preferred=len(ex.kept), score_of=score_of,
                        rejected=Rejected(ex.excluded, ex.nearest, ex.distance))

    return order
