"""Blocks the GAN families share.

Noise families: equalised-learning-rate layers, pixel norm, minibatch stddev, generator EMA. Equalised
learning rate (Karras et al., PGAN): weights are stored as N(0, 1) and scaled at run time by He's constant
``1/sqrt(fan_in)``, so Adam's per-parameter step sizes are the same for every layer whatever its fan-in.
``lr_mul`` additionally slows a layer down (StyleGAN's mapping network uses 0.01).

Translation families (pix2pixHD, SPADE): pix2pix's multi-scale PatchGAN discriminator, which returns the
activations of every layer so the generator can be trained to match them (discriminator feature matching),
its losses, and the VGG19 perceptual loss, whose weights come only from a local file the user names.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import InputError

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


# ----------------------------------------------------------------------------------------- translation GANs
Features = list[list[torch.Tensor]]  # per discriminator scale: every layer's activation, the patch logits last


def maybe_spectral(module: nn.Module, spectral: bool) -> nn.Module:
    """``module`` with spectral normalisation of its weight (Miyato et al. 2018) when ``spectral``."""
    return nn.utils.parametrizations.spectral_norm(module) if spectral else module


def downsample(x: torch.Tensor) -> torch.Tensor:
    """Halve the resolution the way pix2pixHD builds its input pyramid (3x3 average, borders not padded)."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN: ``n_down`` stride-2 4x4 convs, one stride-1 conv, then a 1-channel patch map.

    Instance norm on every layer but the first and the last, LeakyReLU 0.2, optional spectral norm (SPADE).
    ``forward`` returns every block's output (the logits last) for the feature-matching loss. pix2pixHD's
    ``n_layers_D = 3`` is ``n_down = 3``; SPADE's ``n_layers_D = 4`` is also ``n_down = 3`` (its last stride
    is 1), so both families share this one definition.
    """

    def __init__(self, in_ch: int, ndf: int, n_down: int, spectral: bool = False, max_ch: int = 512) -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            return maybe_spectral(nn.Conv2d(cin, cout, 4, stride=stride, padding=2), spectral)

        blocks: list[nn.Module] = [nn.Sequential(conv(in_ch, ndf, 2), nn.LeakyReLU(0.2))]
        ch = ndf
        for i in range(1, n_down + 1):
            out = min(ch * 2, max_ch)
            stride = 2 if i < n_down else 1
            blocks.append(nn.Sequential(conv(ch, out, stride), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2)))
            ch = out
        blocks.append(conv(ch, 1, 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs on the input at full, 1/2, 1/4 ... resolution (pix2pixHD section 3.2)."""

    def __init__(self, in_ch: int, ndf: int, n_down: int, num_d: int, spectral: bool = False) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_ch, ndf, n_down, spectral) for _ in range(num_d))

    def forward(self, x: torch.Tensor) -> Features:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = downsample(x)
            out.append(d(x))
        return out


def lsgan_loss(preds: Features, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al.), summed over the scales as in pix2pixHD: (D(x) - target)^2."""
    target = 1.0 if real else 0.0
    return torch.stack([((f[-1].float() - target) ** 2).mean() for f in preds]).sum()


def hinge_d_loss(preds: Features, real: bool) -> torch.Tensor:
    """The discriminator's hinge loss, averaged over the scales as in SPADE: relu(1 -/+ D(x))."""
    sign = -1.0 if real else 1.0
    return torch.stack([F.relu(1.0 + sign * f[-1].float()).mean() for f in preds]).mean()


def hinge_g_loss(preds: Features) -> torch.Tensor:
    """The generator's side of the hinge loss: -D(G(s)), averaged over the scales."""
    return -torch.stack([f[-1].float().mean() for f in preds]).mean()


def feature_matching_loss(fake: Features, real: Features, layer_weight: float = 1.0) -> torch.Tensor:
    """L1 between the discriminator's intermediate activations on fake and real inputs (pix2pixHD eq. 4).

    Every layer but the logits, every scale; the real side is a constant target (detached). Scales are
    averaged (pix2pixHD's ``D_weights = 1/num_D``); ``layer_weight`` is its ``4 / (n_layers + 1)``.
    """
    total = torch.zeros((), device=fake[0][0].device)
    for f_scale, r_scale in zip(fake, real, strict=True):
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            total = total + F.l1_loss(f.float(), r.detach().float())
    return total * layer_weight / len(fake)


class VGGLoss(nn.Module):
    """Perceptual loss: weighted L1 between VGG19 activations (relu1_1 ... relu5_1) of fake and real images.

    torchvision's VGG19 architecture, its weights read from the local file ``path`` (a full ``vgg19`` state
    dict, e.g. torchvision's ``vgg19-dcbb9e9d.pth``, or only its ``features.*`` part); nothing is downloaded.
    Weights as in pix2pixHD: 1/32, 1/16, 1/8, 1/4, 1 from the shallowest layer on.
    """

    CUTS = (2, 7, 12, 21, 30)  # vgg19.features[:2] ends at relu1_1, [:7] at relu2_1, ... [:30] at relu5_1
    WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import torchvision

        path = Path(path)
        with torch.device("meta"):
            features = torchvision.models.vgg19(weights=None).features[: self.CUTS[-1]]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InputError(f"{path}: VGG19 weights file not found") from None
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
            raise InputError(f"{path}: not a torch state dict ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, dict):
            raise InputError(f"{path}: not a VGG19 state dict (got {type(state).__name__})")
        if any(k.startswith("features.") for k in state):
            state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        state = {k: v for k, v in state.items() if int(k.split(".")[0]) < self.CUTS[-1]}
        try:
            features.load_state_dict(state, strict=True, assign=True)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise InputError(f"{path}: not torchvision's VGG19 weights ({first})") from None
        self.slices = nn.ModuleList(features[a:b] for a, b in zip((0, *self.CUTS[:-1]), self.CUTS, strict=True))
        self.float().eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGGLoss:
        return super().train(False)  # a fixed feature extractor, whatever mode its owner is in

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        x = torch.cat([fake, real]).float()
        x = ((x + 1) / 2 - self.mean) / self.std
        loss = torch.zeros((), device=x.device)
        for w, layer in zip(self.WEIGHTS, self.slices, strict=True):
            x = layer(x)
            f, r = x.chunk(2)
            loss = loss + w * F.l1_loss(f, r.detach())
        return loss


@contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` without parameter gradients inside the block: the generator's step backpropagates through the
    discriminator to its input without accumulating gradients the discriminator's step would have to clear."""
    net.requires_grad_(False)
    try:
        yield net
    finally:
        net.requires_grad_(True)
