"""ISIC 2018 Task 1 + Task 2 masks assembled into one label map per image, the input of pix2pixHD / SPADE.

Labels: 0 pad, 1 skin, 2 lesion, 3 pigment network, 4 negative network, 5 streaks, 6 milia-like cyst,
7 globules. Masks are painted in that order, so where attributes overlap the later (higher) label wins:
the small focal structures (milia-like cysts, globules) sit on top of the network patterns that surround
them and would otherwise vanish from the map.

Pad is the part of the frame with no skin in it: the black dermoscope vignette / letterbox around many
ISIC images. It is found on the image: pixels outside the lesion whose brightest channel is at most
``PAD_LEVEL`` and that are connected to the image border. Everything else outside the lesion is skin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.data.formats.isic2018_masks import ATTRIBUTES
from engine.data.records import LesionRecord
from engine.errors import InputError

if TYPE_CHECKING:
    import numpy as np

PAD, SKIN, LESION = 0, 1, 2
ATTRIBUTE_LABELS = {name: 3 + i for i, name in enumerate(ATTRIBUTES)}  # pigment_network 3 ... globules 7
LABEL_NAMES = ("pad", "skin", "lesion", *ATTRIBUTES)
PAD_LEVEL = 10


def _binary(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            m = np.asarray(im.convert("L")) > 127
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or truncated mask ({exc})") from None
    if shape is not None and m.shape != shape:
        raise InputError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, the segmentation is {shape[1]}x{shape[0]}")
    return m


def _pad(record: LesionRecord, lesion: np.ndarray) -> np.ndarray:
    """Near-black pixels outside the lesion connected to the border (image resized to the masks if needed)."""
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    from engine.data.cache import decode_image

    rgb = decode_image(record.image, None)
    if rgb.shape[:2] != lesion.shape:
        rgb = np.asarray(Image.fromarray(rgb).resize(lesion.shape[::-1], Image.Resampling.BILINEAR))
    dark = (rgb.max(axis=2) <= PAD_LEVEL) & ~lesion
    components, _ = ndimage.label(dark)
    border = np.unique(np.concatenate([components[0], components[-1], components[:, 0], components[:, -1]]))
    return np.isin(components, border[border > 0])


def label_map(record: LesionRecord) -> np.ndarray:
    """(H, W) uint8 label map of a record of the ``isic2018-masks`` format (see the module doc)."""
    import numpy as np

    missing = [m for m in ("segmentation", *ATTRIBUTES) if m not in record.masks]
    if missing:
        raise InputError(f"{record.image}: record {record.image_id} has no {', '.join(missing)} mask")
    lesion = _binary(record.masks["segmentation"], None)
    out = np.full(lesion.shape, SKIN, dtype=np.uint8)
    out[_pad(record, lesion)] = PAD
    out[lesion] = LESION
    for name in ATTRIBUTES:
        out[_binary(record.masks[name], lesion.shape)] = ATTRIBUTE_LABELS[name]
    return out
