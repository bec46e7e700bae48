"""Subsets: real-fraction subsets of the training split (one per replicate, paired across configurations), and
the listed subset of a test set (the paper scored a 1,743-image subset of ISIC 2020, not all 33,126 images).

Per class the subset has ``round(f * n_class)`` images with Python's round-half-to-even, which is what
``pandas.DataFrame.sample(frac=f)`` takes (the paper's released subsets were drawn that way). Replicate k
is drawn from a generator seeded with (seed, k, class) only, never with anything about the configuration,
so replicate k of every configuration trains on the same real images and comparisons are paired. For one
replicate the subsets are nested: the images of fraction 1/4 are among those of fraction 1/2.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from engine.data.records import Dataset, LesionRecord, finish_dataset, read_image_list, records_by_key
from engine.errors import InputError


def real_subset(
    train: Sequence[LesionRecord], fraction: float | Fraction, replicate: int, seed: int = 0
) -> list[LesionRecord]:
    """The ``fraction`` of ``train`` used by ``replicate``, class ratio kept, in ``train``'s order."""
    import numpy as np

    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if replicate < 0:
        raise ValueError(f"replicate must be >= 0, got {replicate}")
    if fraction == 1:
        return list(train)
    chosen: set[int] = set()
    for label in sorted({r.label for r in train}):
        members = sorted((i for i, r in enumerate(train) if r.label == label), key=lambda i: train[i].image_id)
        k = round(fraction * len(members))
        rng = np.random.default_rng([seed, replicate, label])
        chosen.update(members[j] for j in rng.permutation(len(members))[:k])
    return [r for i, r in enumerate(train) if i in chosen]


def listed_subset(dataset: Dataset, path: Path | str) -> Dataset:
    """Only the images ``path`` lists (a CSV with an ``image``/``image_id``/``image_name`` column, matched by
    file stem with ``_downsampled`` ignored), in the data set's order; a listed image the data set does not
    hold is an InputError naming the file and line. The rest count as dropped "not in the subset"."""
    path = Path(path)
    by_key = records_by_key(dataset.records, f"{dataset.root}")
    keep: set[str] = set()
    for line, key in read_image_list(path):
        record = by_key.get(key)
        if record is None:
            raise InputError(f"{path}, line {line}: image {key!r} is not in the {dataset.format} data set at "
                             f"{dataset.root}")
        keep.add(record.image_id)
    records = [r for r in dataset.records if r.image_id in keep]
    dropped = {**dataset.dropped, "not in the subset": dataset.n - len(records)}
    return finish_dataset(dataset.format, dataset.root, records, dropped, path)
