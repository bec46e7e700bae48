"""What the noise families (StyleGAN2, PGAN) share: the trainer machinery around their networks.

A family's trainer builds its generator ``G(z, labels)`` and discriminator and hands them to
:class:`NoiseTrainer`, which puts them on the device (channels_last on CUDA), keeps the generator's EMA copy
(what grids, metrics and pools sample), offers bf16 autocast on CUDA, generates from the EMA or the raw
generator, and saves / restores everything a bit-exact resume needs; the family adds its own training
iteration and any extra state (``extra_state``). Both condition on the class with a learned embedding and
size their levels by StyleGAN's channel rule (``channels``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from engine.gans.layers import ema_beta, ema_copy, ema_update, one_hot

N_CLASSES = 2  # benign, melanoma


def channels(res: int, base: int, cmax: int) -> int:
    """Feature maps at resolution ``res``: ``base / res``, capped at ``cmax`` (StyleGAN's channel_base rule)."""
    return max(1, min(base // res, cmax))


def projection(embed: nn.Module, labels: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Projection discriminator's class term (Miyato & Koyama 2018): ``<embed(y), phi(x)> / sqrt(dim)``."""
    return (embed(one_hot(labels, N_CLASSES, h.dtype)) * h).sum(dim=1) / math.sqrt(h.shape[1])


class NoiseTrainer:
    """Networks on the device, generator EMA, autocast, generation and resume state of a noise family.

    Subclasses set ``family``, build ``opt_G`` / ``opt_D`` and implement ``train_step`` (calling
    :meth:`update_ema` after each generator step); ``extra_state`` / ``load_extra_state`` carry what else a
    resume needs (ADA's probability, the path-length mean).
    """

    family: str
    opt_G: torch.optim.Optimizer  # noqa: N815 - the papers' names
    opt_D: torch.optim.Optimizer  # noqa: N815

    def __init__(self, config: dict[str, Any], device: torch.device, G: nn.Module, D: nn.Module) -> None:  # noqa: N803
        self.config = config
        self.device = device
        self.res = config["res"]
        self.cuda = device.type == "cuda"
        self.amp = self.cuda and config["amp"]
        fmt = torch.channels_last if self.cuda else torch.contiguous_format
        self.G = G.to(device, memory_format=fmt)
        self.D = D.to(device, memory_format=fmt)
        self.G_ema = ema_copy(self.G)
        self.images_seen = 0
        self.step = 0

    def autocast(self) -> torch.autocast:
        """bf16 autocast on CUDA when ``amp``; a no-op on the CPU."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def update_ema(self, batch: int) -> None:
        """One EMA step after a generator update of ``batch`` images (half-life ``ema_kimg``, ``ema_rampup``)."""
        cfg = self.config
        ema_update(self.G_ema, self.G, ema_beta(batch, cfg["ema_kimg"], self.images_seen, cfg["ema_rampup"]))

    @torch.no_grad()
    def generate(self, *, labels: torch.Tensor | None = None, z: torch.Tensor | None = None,
                 maps: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        """``G(z, labels)`` in [-1, 1], float32, from the EMA generator unless ``ema`` is False (noise held
        constant where the family has noise inputs)."""
        if labels is None or z is None:
            raise ValueError(f"{self.family} generates from z and labels")
        net = self.G_ema if ema else self.G
        return net(z.to(self.device), labels.to(self.device)).float()

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "images_seen": self.images_seen, "step": self.step, **self.extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.images_seen, self.step = int(state["images_seen"]), int(state["step"])
        self.load_extra_state(state)
