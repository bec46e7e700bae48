"""Adaptive discriminator augmentation (Karras et al. 2020, "ADA"): augment what D sees, as much as it overfits.

Every image shown to the discriminator, real and generated alike, is augmented with probability ``p`` per
transform group, differentiably, so the generator is trained through the augmentation. As long as ``p``
stays well below 1 the augmentations do not leak into the generated images. ``p`` is steered by the
overfitting heuristic ``r_t = E[sign(D(real))]``: every ``interval`` minibatches ``p`` moves up when ``r_t``
exceeds ``target`` (0.6; D is too sure of the reals) and down otherwise, fast enough to go from 0 to 1 in
``speed_kimg`` thousand images.

The transforms are the classifier's device-side augmentation (``engine.train.augment.Augmenter``: one
affine resampling for flips + resized crop (= zoom and translation) + rotation, then brightness, contrast,
saturation, hue), drawn per image; here each of five groups (geometry, brightness, contrast, saturation,
hue) is switched on per image with probability ``p`` and left at identity otherwise.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.train.augment import Augmenter
from engine.train.config import AugmentConfig

GROUPS = 5  # geometry, brightness, contrast, saturation, hue


class AdaptiveAugment:
    """Differentiable per-image augmentation of [-1, 1] NCHW batches with an adaptively tuned probability."""

    def __init__(self, device: torch.device, *, target: float = 0.6, speed_kimg: float = 100.0,
                 interval: int = 4, rotation: float = 0.0, crop_min: float = 0.64, colour: float = 0.2,
                 hue: float = 0.05) -> None:
        cfg = AugmentConfig(preset="none", hflip=True, vflip=True, crop_scale=(crop_min, 1.0), rotation=rotation,
                            brightness=colour, contrast=colour, saturation=colour, hue=hue)
        self.augmenter = Augmenter(cfg, device=device)
        self.device = device
        self.target = target
        self.speed_kimg = speed_kimg
        self.interval = interval
        self.p = 0.0
        self._sign_sum = 0.0
        self._count = 0
        self._batches = 0

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment ``x`` ([-1, 1], float NCHW); identity (and no random draws) while ``p`` is 0."""
        if self.p <= 0:
            return x
        n, _, h, w = x.shape
        params = self.augmenter.sample(n, h, w, gen)
        on = torch.rand(n, GROUPS, generator=gen, device=self.device) < self.p
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=self.device)
        params.theta = torch.where(on[:, 0, None, None], params.theta, identity)
        params.brightness = torch.where(on[:, 1], params.brightness, torch.ones_like(params.brightness))
        params.contrast = torch.where(on[:, 2], params.contrast, torch.ones_like(params.contrast))
        params.saturation = torch.where(on[:, 3], params.saturation, torch.ones_like(params.saturation))
        params.hue = torch.where(on[:, 4], params.hue, torch.zeros_like(params.hue))
        y = self.augmenter.apply((x.float() + 1) / 2, params) * 2 - 1
        return torch.where(on.any(dim=1)[:, None, None, None], y.to(x.dtype), x)  # untouched images stay exact

    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate ``sign(D(real))`` of one minibatch; every ``interval`` batches, adjust ``p``."""
        self._sign_sum += float(real_logits.detach().float().sign().sum())
        self._count += real_logits.numel()
        self._batches += 1
        if self._batches % self.interval == 0:
            r_t = self._sign_sum / max(self._count, 1)
            step = self._count / (self.speed_kimg * 1000)
            self.p = float(min(max(self.p + (step if r_t > self.target else -step), 0.0), 1.0))
            self._sign_sum, self._count = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "sign_sum": self._sign_sum, "count": self._count, "batches": self._batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p, self._sign_sum = float(state["p"]), float(state["sign_sum"])
        self._count, self._batches = int(state["count"]), int(state["batches"])
