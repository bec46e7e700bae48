"""Blocks the GAN families share: equalised-learning-rate layers, pixel norm, minibatch stddev, generator EMA.

Equalised learning rate (Karras et al., PGAN): weights are stored as N(0, 1) and scaled at run time by He's
constant ``1/sqrt(fan_in)``, so Adam's per-parameter step sizes are the same for every layer whatever its
fan-in. ``lr_mul`` additionally slows a layer down (StyleGAN's mapping network uses 0.01).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (0.2) with the gain sqrt(2) that keeps activations at unit variance (StyleGAN's ``lrelu``)."""
    return F.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2))`` along ``dim`` (pixel norm along channels; latent normalisation along features)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class PixelNorm(nn.Module):
    """PGAN's pixelwise feature-vector normalisation (after every conv of the generator)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_2nd_moment(x, dim=1)


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate; ``act`` applies :func:`lrelu` after the bias."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, act: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, w.to(x.dtype), None if b is None else b.to(x.dtype))
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    """Same-padded convolution with equalised learning rate; optional 2x average-pool ``down`` after it."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, bias: bool = True,
                 act: bool = False, down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2
        self.act = act
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = F.conv2d(x, w, None if self.bias is None else self.bias.to(x.dtype), padding=self.padding)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return lrelu(x) if self.act else x


class MinibatchStdDev(nn.Module):
    """Appends the across-batch standard deviation of the features as extra channel(s) (PGAN, StyleGAN2).

    The batch is split into groups of ``group_size``; within a group, the std of every feature is averaged
    over channels (of each of ``num_channels`` channel groups) and positions, and that number is broadcast as
    a new feature map to every member. A discriminator so sees how varied the batch is: a generator that
    collapses to few modes produces low values and is caught.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = math.gcd(self.group_size, n)  # a group size that divides this batch
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (n/g, f)
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


def ema_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to hold its exponential moving average."""
    ema = copy.deepcopy(module).eval()
    ema.requires_grad_(False)
    return ema


def ema_beta(batch: int, half_life_kimg: float, images_seen: int, rampup: float | None) -> float:
    """Per-step decay so that the EMA's weight halves every ``half_life_kimg`` thousand images.

    With ``rampup`` the half-life is at most ``rampup x images seen`` (StyleGAN2-ADA), so short runs are not
    dominated by the random initialisation.
    """
    nimg = half_life_kimg * 1000
    if rampup is not None:
        nimg = min(nimg, images_seen * rampup)
    return 0.5 ** (batch / max(nimg, 1e-8))


@torch.no_grad()
def ema_update(ema: nn.Module, module: nn.Module, beta: float) -> None:
    """``ema = beta * ema + (1 - beta) * module`` for parameters; buffers (noise, growth state) are copied."""
    for p_ema, p in zip(ema.parameters(), module.parameters(), strict=True):
        p_ema.lerp_(p, 1 - beta)
    for b_ema, b in zip(ema.buffers(), module.buffers(), strict=True):
        b_ema.copy_(b)


def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return F.one_hot(labels.long(), n_classes).to(dtype)
