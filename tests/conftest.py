"""Shared fixtures: tiny images and data sets written in the real on-disk layouts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import store as st

ISIC2019_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")


def _write_image(path: Path, seed: int = 0, size: tuple[int, int] = (32, 24)) -> Path:
    """A small smooth random RGB image in the suffix's format; distinct seeds give distinct perceptual hashes."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    coarse = Image.fromarray(rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8))
    coarse.resize(size, Image.Resampling.BICUBIC).save(path)
    return path


@pytest.fixture
def write_image() -> Callable[..., Path]:
    return _write_image


def _isic2019(
    root: Path, rows: Sequence[tuple[str, str]], lesion_ids: dict[str, str] | None = None, images: bool = True
) -> Path:
    """ISIC 2019 layout: one-hot ground truth, ``ISIC_2019_Training_Input/<id>.jpg``, optional metadata."""
    lines = ["image," + ",".join(ISIC2019_CLASSES)]
    for i, (image_id, cls) in enumerate(rows):
        lines.append(image_id + "," + ",".join("1.0" if c == cls else "0.0" for c in ISIC2019_CLASSES))
        if images:
            _write_image(root / "ISIC_2019_Training_Input" / f"{image_id}.jpg", seed=i)
    root.mkdir(parents=True, exist_ok=True)
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(lines) + "\n")
    if lesion_ids is not None:
        meta = ["image,age_approx,anatom_site_general,lesion_id,sex"]
        meta += [f"{image_id},45,torso,{lesion_ids.get(image_id, '')},male" for image_id, _ in rows]
        (root / "ISIC_2019_Training_Metadata.csv").write_text("\n".join(meta) + "\n")
    return root


@pytest.fixture
def make_isic2019() -> Callable[..., Path]:
    return _isic2019


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Path]:
    """A fresh workspace with its store; every engine and worker process started on it is killed afterwards (a
    module with other needs defines its own ``ws``)."""
    from engine_helpers import kill_everything

    workspace = tmp_path / "ws"
    st.open_store(workspace).close()
    try:
        yield workspace
    finally:
        kill_everything(workspace)
