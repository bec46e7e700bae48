"""The target model: any timm architecture by name, a new 2-class head, all weights trainable.

Pretrained weights come only from a local file the user names (``model.weights``): timm loads it through
``pretrained_cfg_overlay=dict(file=...)`` and drops the 1000-class ImageNet head for a fresh 2-class one.
Pretrained without a file is refused (nothing ever reaches a hub); ``HF_HUB_OFFLINE=1`` is also set before timm
is first imported, as a second guard.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.train.augment import IMAGENET_MEAN, IMAGENET_STD
from engine.train.config import ModelConfig

if TYPE_CHECKING:
    import torch


def _timm():  # noqa: ANN202 - the timm module
    """Import timm offline unless the user explicitly allowed the hub (``HF_HUB_OFFLINE=0``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import timm

    return timm


def check_model(cfg: ModelConfig) -> None:
    """Before a run is queued: the architecture exists and, when pretrained, its weights load from a local
    source, so a typo or a missing/wrong weights file is refused at once instead of failing in the engine.
    Memoised on the weights file's size and mtime: a grid of hundreds of runs of one model loads it once."""
    stamp = None
    if cfg.pretrained and cfg.weights is not None:
        try:
            st = Path(cfg.weights).expanduser().stat()
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None  # create_model names the missing file
    _check_model(cfg, stamp)


@functools.lru_cache(maxsize=8)
def _check_model(cfg: ModelConfig, stamp: tuple[int, int] | None) -> None:
    if cfg.pretrained:
        create_model(cfg)
    else:
        _check_name(_timm(), cfg.name)


def _check_name(timm, name: str) -> None:  # noqa: ANN001 - the timm module
    if not timm.is_model(name):
        raise InputError(f"model.name: unknown timm model {name!r} (see timm.list_models())")


def create_model(cfg: ModelConfig) -> torch.nn.Module:
    """Build ``cfg.name`` with a 2-class head; pretrained weights only from the local file ``cfg.weights``."""
    timm = _timm()
    _check_name(timm, cfg.name)
    if not cfg.pretrained:
        return timm.create_model(cfg.name, pretrained=False, num_classes=2)
    how = f"pass an ImageNet checkpoint of {cfg.name} with --weights FILE (config model.weights), or --no-pretrained"
    if cfg.weights is None:
        raise InputError(f"model.weights: {cfg.name} is pretrained but no local weights file is named; {how}")
    path = Path(cfg.weights).expanduser()
    if not path.is_file():
        raise InputError(f"model.weights: weights file {str(path)!r} not found; {how}")
    try:
        return timm.create_model(cfg.name, pretrained=True, num_classes=2, pretrained_cfg_overlay=dict(file=str(path)))
    except Exception as exc:  # timm raises assorted state-dict/format errors
        raise InputError(f"model.weights: cannot load {cfg.weights!r} into {cfg.name}: "
                         f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}") from None


def norm_stats(cfg: ModelConfig, model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for input z-normalisation: ImageNet's (the paper) or the timm model's own config."""
    if cfg.norm == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    data_cfg = _timm().data.resolve_data_config({}, model=model)
    return tuple(data_cfg["mean"]), tuple(data_cfg["std"])
