"""SPADE / GauGAN (Park et al., CVPR 2019): label map -> lesion image through spatially-adaptive normalisation.

- SPADE: a parameter-free normalisation of the activations (batch norm without affine, SPADE's default, or
  instance norm), then ``x * (1 + gamma(seg)) + beta(seg)``, where gamma and beta are 3x3 convs of a shared
  3x3 conv + ReLU embedding of the label map resized (nearest) to the activation's resolution. The map thus
  reaches the generator at every scale instead of being washed out by normalisation at its input.
- Generator: from the label map downsampled to ``bottom`` px (or, with the VAE encoder, from a style code),
  a SPADE residual block, ``n_middle`` more, then per doubling a nearest upsample and a SPADE residual block
  (``channels`` lists the widths from the bottom up); LeakyReLU 0.2, a 3x3 conv and tanh to RGB. Residual
  blocks: two (SPADE, LeakyReLU, 3x3 conv) steps plus a shortcut, learned (SPADE + 1x1 conv) when the width
  changes; spectral norm on every conv of the blocks.
- Discriminator: ``num_d`` PatchGANs on the (map, image) pair with spectral norm and instance norm, returning
  every layer's activation; fake and real pass through it as one batch.
- Losses: hinge; feature matching (``lambda_feat`` = 10); VGG19 perceptual loss (``lambda_vgg`` = 10) only
  with a local ``vgg_weights`` file; with ``vae``, KL divergence of the encoder's posterior (``lambda_kld``
  = 0.05). TTUR: Adam with G lr 1e-4 and D lr 4e-4, betas (0, 0.9), as SPADE.
- VAE encoder (optional, ``vae``): stride-2 convs of the real image down to 4x4 -> mean and log-variance of a
  ``z_dim`` style code; at generation time, without a code, the prior's mode z = 0 is used (one image per
  mask, deterministic; a code drawn from N(0, I) gives other styles of the same mask).

The paper adopted its pix2pixHD procedure for SPADE and trained 300 epochs (its Table 4) over the 2,346
training masks, i.e. 704 kimg: the ``paper`` preset's ``kimg``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.gans._registry import GanBatch, register_family
from engine.gans.layers import (
    Features,
    MultiScaleDiscriminator,
    feature_matching_loss,
    frozen,
    hinge_d_loss,
    hinge_g_loss,
    maybe_spectral,
)
from engine.gans.translation import TranslationTrainer, map_channels

_COMMON: dict[str, Any] = dict(
    boundary=False, flip=True, bottom=4, n_middle=1, norm="batch", vae=False, z_dim=256, num_d=2,
    lambda_feat=10.0, lambda_vgg=10.0, lambda_kld=0.05, vgg_weights=None, lr_g=1e-4, lr_d=4e-4, beta1=0.0,
    beta2=0.9, amp=True,
)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {**_COMMON, "res": 32, "batch": 8, "kimg": 2, "snapshot_kimg": 1,
             "channels": [32, 32, 16, 8], "hidden": 16, "ndf": 8, "d_layers": 2, "z_dim": 16},
    "demo": {**_COMMON, "res": 64, "batch": 8, "kimg": 20, "snapshot_kimg": 2,
             "channels": [64, 64, 32, 16, 16], "hidden": 16, "ndf": 16, "d_layers": 3, "z_dim": 64},
    "paper": {**_COMMON, "res": 256, "batch": 8, "kimg": 704, "snapshot_kimg": 47, "bottom": 8,
              "channels": [1024, 1024, 512, 256, 128, 64], "hidden": 128, "ndf": 64, "d_layers": 3},
}


class SPADE(nn.Module):
    """Parameter-free norm of ``x``, then ``x_hat * (1 + gamma(seg)) + beta(seg)`` at ``x``'s resolution."""

    def __init__(self, channels: int, label_ch: int, hidden: int, norm: str) -> None:
        super().__init__()
        if norm == "batch":
            self.norm: nn.Module = nn.BatchNorm2d(channels, affine=False)
        elif norm == "instance":
            self.norm = nn.InstanceNorm2d(channels, affine=False)
        else:
            raise ValueError(f"spade: norm must be 'batch' or 'instance', got {norm!r}")
        self.shared = nn.Sequential(nn.Conv2d(label_ch, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        h = self.shared(seg)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """Two (SPADE, LeakyReLU, 3x3 conv) steps plus a shortcut (learned when ``cin != cout``)."""

    def __init__(self, cin: int, cout: int, label_ch: int, hidden: int, norm: str) -> None:
        super().__init__()
        mid = min(cin, cout)
        self.norm_0 = SPADE(cin, label_ch, hidden, norm)
        self.conv_0 = maybe_spectral(nn.Conv2d(cin, mid, 3, padding=1), True)
        self.norm_1 = SPADE(mid, label_ch, hidden, norm)
        self.conv_1 = maybe_spectral(nn.Conv2d(mid, cout, 3, padding=1), True)
        self.learned_shortcut = cin != cout
        if self.learned_shortcut:
            self.norm_s = SPADE(cin, label_ch, hidden, norm)
            self.conv_s = maybe_spectral(nn.Conv2d(cin, cout, 1, bias=False), True)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SPADEGenerator(nn.Module):
    """Bottom (map or style code) -> SPADE blocks, one per doubling up to ``res`` -> RGB (see the module doc)."""

    def __init__(self, label_ch: int, res: int, bottom: int, channels: list[int], n_middle: int, hidden: int,
                 norm: str, z_dim: int) -> None:
        super().__init__()
        levels = (res // bottom).bit_length() - 1
        if bottom * 2**levels != res or len(channels) != levels + 1:
            raise ValueError(f"spade: res {res} must be bottom {bottom} x 2^k with k + 1 = {len(channels)} "
                             f"channel widths")
        self.bottom, self.z_dim = bottom, z_dim
        c0 = channels[0]
        self.fc = nn.Linear(z_dim, c0 * bottom * bottom) if z_dim else nn.Conv2d(label_ch, c0, 3, padding=1)
        self.head = nn.ModuleList(SPADEResBlock(c0, c0, label_ch, hidden, norm) for _ in range(1 + n_middle))
        self.ups = nn.ModuleList(SPADEResBlock(a, b, label_ch, hidden, norm)
                                 for a, b in zip(channels, channels[1:], strict=False))
        self.to_rgb = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.z_dim:
            if z is None:
                z = torch.zeros(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
            x = self.fc(z).view(seg.shape[0], -1, self.bottom, self.bottom)
        else:
            x = self.fc(F.interpolate(seg, size=(self.bottom, self.bottom), mode="nearest"))
        for block in self.head:
            x = block(x, seg)
        for block in self.ups:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))


class ConvEncoder(nn.Module):
    """SPADE's VAE encoder: stride-2 3x3 convs (instance norm, LeakyReLU) down to 4x4 -> (mu, logvar)."""

    def __init__(self, res: int, ndf: int, z_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, size, i = 3, res, 0
        while size > 4:
            cout = min(ndf * 2**i, 8 * ndf)
            layers += [maybe_spectral(nn.Conv2d(cin, cout, 3, stride=2, padding=1), True), nn.InstanceNorm2d(cout),
                       nn.LeakyReLU(0.2)]
            cin, size, i = cout, size // 2, i + 1
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(cin * 16, z_dim)
        self.logvar = nn.Linear(cin * 16, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x).flatten(1)
        return self.mu(h), self.logvar(h)


def _halves(feats: Features, n: int) -> tuple[Features, Features]:
    """Split features of a (fake; real) batch into the fake half and the real half."""
    return [[t[:n] for t in s] for s in feats], [[t[n:] for t in s] for s in feats]


class SPADETrainer(TranslationTrainer):
    family = "spade"

    def __init__(self, config: dict[str, Any], device: torch.device) -> None:
        in_ch = map_channels(config)
        z_dim = config["z_dim"] if config["vae"] else 0
        nets: dict[str, nn.Module] = {
            "G": SPADEGenerator(in_ch, config["res"], config["bottom"], list(config["channels"]),
                                config["n_middle"], config["hidden"], config["norm"], z_dim),
            "D": MultiScaleDiscriminator(in_ch + 3, config["ndf"], config["d_layers"], config["num_d"],
                                         spectral=True),
        }
        if config["vae"]:
            nets["E"] = ConvEncoder(config["res"], config["ndf"], z_dim)
        super().__init__(config, device, nets)

    def translate(self, maps: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return self.G(maps, z)

    def _style(self, real: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor]:
        """With the VAE: a reparameterised code of the real image and its KL divergence (SPADE's sum)."""
        if "E" not in self.nets:
            return None, torch.zeros((), device=real.device)
        mu, logvar = (t.float() for t in self.nets["E"](real))
        eps = torch.randn(mu.shape, generator=gen, device=gen.device).to(mu.device)
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return mu + eps * torch.exp(0.5 * logvar), kld * self.config["lambda_kld"]

    def train_step(self, batch: GanBatch, gen: torch.Generator) -> dict[str, float]:
        """SPADE's iteration: G's step (hinge + feature matching + VGG + KL), then D's on the same fake."""
        real, maps = self.inputs(batch, gen)
        n = real.shape[0]
        with self.autocast():
            z, loss_kld = self._style(real, gen)
            fake = self.G(maps, z)
            with frozen(self.D):
                pred_fake, pred_real = _halves(self.D(torch.cat([torch.cat([maps, fake], 1),
                                                                 torch.cat([maps, real], 1)])), n)
        loss_gan = hinge_g_loss(pred_fake)
        loss_fm = feature_matching_loss(pred_fake, pred_real) * self.config["lambda_feat"]
        loss_vgg = self.perceptual(fake, real)
        loss_g = loss_gan + loss_fm + loss_vgg + loss_kld
        self.update("G", loss_g)
        with self.autocast():
            pred_fake, pred_real = _halves(self.D(torch.cat([torch.cat([maps, fake.detach()], 1),
                                                             torch.cat([maps, real], 1)])), n)
        loss_d = hinge_d_loss(pred_fake, False) + hinge_d_loss(pred_real, True)
        self.update("D", loss_d)
        return {"loss_g": loss_g.item(), "loss_d": loss_d.item(), "loss_g_gan": loss_gan.item(),
                "loss_fm": loss_fm.item(), "loss_vgg": loss_vgg.item(), "loss_kld": loss_kld.item()}


@register_family("spade", conditioning="translation", presets=PRESETS, generator_of=lambda trainer: trainer.G)
def build(config: dict[str, Any], device: torch.device) -> SPADETrainer:
    return SPADETrainer(config, device)
