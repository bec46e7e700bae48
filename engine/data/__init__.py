"""The data layer: lesion records, data-set adapters, splits, real-fraction subsets, the decoded-image cache.

Importing this package is cheap (no numpy/pandas/PIL at import time) so the CLI stays fast.
"""

from __future__ import annotations

from pathlib import Path

from engine.data.formats import FORMATS
from engine.data.records import BENIGN, MELANOMA, Dataset, LesionRecord

__all__ = ["BENIGN", "FORMATS", "MELANOMA", "Dataset", "LesionRecord", "check_layout", "load_dataset",
           "verify_images"]


def load_dataset(format: str, root: Path | str) -> Dataset:
    """Read the data set of ``format`` under ``root``; InputError (one line, names the file) on bad input.

    Image files are checked to exist, not decoded: use ``verify_images`` (``ganaug data check --verify``)
    to decode every image once, or let ``ImageCache.load`` catch a corrupt file when it first decodes it.
    """
    from engine.data.formats import load

    return load(format, Path(root).expanduser())


def check_layout(format: str, root: Path | str) -> Path:
    """The file that lists the images of the ``format`` set at ``root`` (InputError when the layout is wrong),
    found without reading the list or opening an image: the cheap check before a run is queued."""
    from engine.data.formats import layout

    return layout(format, Path(root).expanduser())


def verify_images(dataset: Dataset) -> int:
    """Fully decode every image and mask of ``dataset`` (threaded); InputError naming the first corrupt file.

    Returns the number of files decoded.
    """
    from engine.data.cache import verify_files

    files = [p for r in dataset.records for p in (r.image, *r.masks.values())]
    verify_files(files)
    return len(files)
