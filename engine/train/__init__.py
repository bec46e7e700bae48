"""The target classifier (run kind ``classify``): the paper's fine-tuning protocol, per-image device-side
augmentation, 50-replica test-time augmentation and AUC on every test set.

Modules: ``config`` (validated run config, defaults = the paper), ``model`` (timm + local weights),
``augment`` (batched per-image augmentation), ``pipeline`` (background batch preparation),
``classifier`` (the training loop), ``evaluate`` (TTA, artefacts), ``kind`` (the run kind).
Importing this package is cheap; torch is imported by the submodules that need it.
``engine.train.protocol_diff(config_a, config_b)``: the protocol keys in which two classify configs differ.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``protocol_diff`` lives in ``config`` (pydantic): imported on first use, so the package stays cheap."""
    if name == "protocol_diff":
        from engine.train.config import protocol_diff

        return protocol_diff
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
