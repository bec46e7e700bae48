"""Class-conditional progressive GAN (Karras et al. 2018, "PGAN"), written for ganaug.

Growing: training starts at 4x4; every resolution doubling first *fades in* (for ``fade_kimg``) and then
*stabilises* (for ``stab_kimg``). During a fade the new block's RGB output is alpha-blended with the
upsampled output of the previous resolution (alpha 0 -> 1), and the discriminator blends its new block
with the downsampled input fed to the previous one; the reals are blended the same way. The growth state is
one number, ``growth = level - 1 + alpha`` while fading into ``level`` (an integer when stable), stored in a
buffer of each network so a snapshot of the (EMA) generator knows the resolution it was trained to; the
generator always returns full-resolution images (nearest upsampling, as the paper's snapshots).

Mechanisms: pixel norm after every generator conv, equalised learning rate everywhere, minibatch stddev
before the discriminator's last block, WGAN-GP (lambda 10, target 1) plus the drift term 0.001 E[D(real)^2],
Adam (lr 1e-3, betas 0 / 0.99), generator EMA.

Class conditioning: the generator concatenates a learned class embedding (normalised like the latent, so
the class weighs as much as z; the PGAN code concatenates the bare one-hot label, which a 512-d latent
drowns) to the normalised latent; the discriminator is an auxiliary classifier (AC-GAN, as in the PGAN
code): besides its critic score it predicts the class, and both networks add the cross-entropy of that
prediction (``cond_weight``) to their losses, on reals (D) and fakes (D and G).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.gans._registry import GanBatch, register_family
from engine.gans.layers import (
    EqualConv2d,
    EqualLinear,
    MinibatchStdDev,
    PixelNorm,
    lrelu,
    normalize_2nd_moment,
    one_hot,
)
from engine.gans.noise import N_CLASSES, NoiseTrainer, channels, projection


def _level_channels(cfg: dict[str, Any]) -> list[int]:
    """Channels of level k (resolution 4 * 2^k), by StyleGAN's channel rule."""
    n = int(math.log2(cfg["res"])) - 1
    return [channels(4 * 2 ** k, cfg["channel_base"], cfg["channel_max"]) for k in range(n)]


def split_growth(growth: float) -> tuple[int, float]:
    """``growth`` -> (level, alpha): 1.25 is a quarter into the fade to level 2; 2.0 is level 2, stable."""
    level = math.ceil(growth)
    return level, 1.0 - (level - growth)


def growth_at(images_seen: int, cfg: dict[str, Any]) -> float:
    """The growth state after ``images_seen`` images: stabilise level 0, then fade + stabilise each level."""
    t = images_seen / 1000 - cfg["stab_kimg"]
    top = len(_level_channels(cfg)) - 1
    level = 0
    while t > 0 and level < top:
        if t < cfg["fade_kimg"]:
            return level + t / cfg["fade_kimg"]
        level += 1
        t -= cfg["fade_kimg"] + cfg["stab_kimg"]
    return float(level)


class PGenerator(nn.Module):
    """``G(z, labels) -> images`` in [-1, 1] at full resolution, grown to its ``growth`` buffer."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        ch = _level_channels(cfg)
        self.res, self.z_dim = cfg["res"], cfg["z_dim"]
        self.pn = PixelNorm()
        self.embed = EqualLinear(N_CLASSES, cfg["z_dim"], bias=False)
        self.dense = EqualLinear(2 * cfg["z_dim"], ch[0] * 16)
        self.conv0 = EqualConv2d(ch[0], ch[0], 3, act=True)
        self.blocks = nn.ModuleList([nn.Identity()])
        for k in range(1, len(ch)):
            self.blocks.append(nn.ModuleList([EqualConv2d(ch[k - 1], ch[k], 3, act=True),
                                              EqualConv2d(ch[k], ch[k], 3, act=True)]))
        self.to_rgb = nn.ModuleList([EqualConv2d(c, 3, 1) for c in ch])
        self.register_buffer("growth", torch.tensor(float(len(ch) - 1)))

    def _block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        for conv in self.blocks[k]:
            x = self.pn(conv(x))
        return x

    def forward(self, z: torch.Tensor, labels: torch.Tensor, growth: float | None = None,
                full_res: bool = True) -> torch.Tensor:
        level, alpha = split_growth(float(self.growth) if growth is None else growth)
        y = normalize_2nd_moment(self.embed(one_hot(labels, N_CLASSES, z.dtype)))
        x = torch.cat([normalize_2nd_moment(z), y], dim=1)
        x = self.pn(lrelu(self.dense(x)).reshape(z.shape[0], -1, 4, 4))
        x = self.pn(self.conv0(x))
        prev = x
        for k in range(1, level + 1):
            prev, x = x, self._block(k, x)
        img = self.to_rgb[level](x)
        if level > 0 and alpha < 1:
            old = F.interpolate(self.to_rgb[level - 1](prev), scale_factor=2, mode="nearest")
            img = alpha * img + (1 - alpha) * old
        if full_res and img.shape[-1] != self.res:
            img = F.interpolate(img, size=(self.res, self.res), mode="nearest")
        return img


class PDiscriminator(nn.Module):
    """``D(images at the current level's resolution, growth, labels) -> (critic score (N,), class logits (N, 2))``;
    with projection conditioning the labels enter the score and there are no class logits (None)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        ch = _level_channels(cfg)
        self.from_rgb = nn.ModuleList([EqualConv2d(3, c, 1, act=True) for c in ch])
        self.blocks = nn.ModuleList([nn.Identity()])
        for k in range(1, len(ch)):
            self.blocks.append(nn.Sequential(EqualConv2d(ch[k], ch[k], 3, act=True),
                                             EqualConv2d(ch[k], ch[k - 1], 3, act=True, down=True)))
        self.mbstd = MinibatchStdDev(cfg["mbstd_group"])
        self.conv = EqualConv2d(ch[0] + 1, ch[0], 3, act=True)
        self.fc = EqualLinear(ch[0] * 16, ch[0], act=True)
        self.projection = cfg["d_conditioning"] == "projection"
        self.out = EqualLinear(ch[0], 1 if self.projection else 1 + N_CLASSES)
        self.embed = EqualLinear(N_CLASSES, ch[0], bias=False) if self.projection else None

    def forward(self, img: torch.Tensor, growth: float,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        level, alpha = split_growth(growth)
        x = self.from_rgb[level](img)
        if level > 0:
            x = self.blocks[level](x)
            if alpha < 1:
                x = alpha * x + (1 - alpha) * self.from_rgb[level - 1](F.avg_pool2d(img, 2))
        for k in range(level - 1, 0, -1):
            x = self.blocks[k](x)
        x = self.fc(self.conv(self.mbstd(x)).flatten(1))
        out = self.out(x)
        if self.embed is not None:
            return out[:, 0] + projection(self.embed, labels, x), None
        return out[:, 0], out[:, 1:]


def reals_at(images: torch.Tensor, growth: float) -> torch.Tensor:
    """Full-resolution reals as D sees them at ``growth``: downsampled to the level, blended during a fade."""
    level, alpha = split_growth(growth)
    size = 4 * 2 ** level
    x = F.adaptive_avg_pool2d(images, size) if images.shape[-1] != size else images
    if level > 0 and alpha < 1:
        x = alpha * x + (1 - alpha) * F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    return x


class PGANTrainer(NoiseTrainer):
    """Optimisers and the WGAN-GP iteration of one class-conditional progressive GAN, grown as it trains."""

    family = "pgan"

    def __init__(self, config: dict[str, Any], device: torch.device) -> None:
        G = PGenerator(config)  # noqa: N806
        G.growth.fill_(0.0)  # training starts at 4x4
        super().__init__(config, device, G, PDiscriminator(config))
        betas = tuple(config["betas"])
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config["lr"], betas=betas, eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config["lr"], betas=betas, eps=1e-8)

    @property
    def growth(self) -> float:
        return growth_at(self.images_seen, self.config)

    def train_step(self, batch: GanBatch, gen: torch.Generator) -> dict[str, float]:
        cfg, dev = self.config, self.device
        growth = self.growth
        self.G.growth.fill_(growth)
        real = reals_at(batch.images.to(dev), growth)
        labels = batch.labels.to(dev)
        n = real.shape[0]
        z = torch.randn(n, cfg["z_dim"], generator=gen, device=dev)
        with self.autocast():
            fake = self.G(z, labels, growth, full_res=False)

        # -- D (critic): Wasserstein estimate + gradient penalty (float32) + drift + auxiliary class loss.
        self.D.requires_grad_(True)
        with self.autocast():
            d_fake, c_fake = self.D(fake.detach(), growth, labels)
            d_real, c_real = self.D(real, growth, labels)
        d_fake, d_real = d_fake.float(), d_real.float()
        eps = torch.rand(n, 1, 1, 1, generator=gen, device=dev)
        mixed = (eps * real + (1 - eps) * fake.detach().float()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D(mixed, growth, labels)[0].sum(), mixed, create_graph=True)
        gp = (grad.flatten(1).norm(dim=1) - 1).square().mean()
        loss_d = d_fake.mean() - d_real.mean() + cfg["gp_lambda"] * gp + cfg["drift"] * d_real.square().mean()
        if c_real is not None and c_fake is not None:
            loss_d = loss_d + cfg["cond_weight"] * (F.cross_entropy(c_real.float(), labels)
                                                    + F.cross_entropy(c_fake.float(), labels))
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()

        # -- G: raise the critic's score of the fakes, and make them classifiable as their label.
        self.D.requires_grad_(False)
        with self.autocast():
            g_score, g_cls = self.D(fake, growth, labels)
        loss_g = -g_score.float().mean()
        if g_cls is not None:
            loss_g = loss_g + cfg["cond_weight"] * F.cross_entropy(g_cls.float(), labels)
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()

        self.images_seen += n
        self.step += 1
        self.G.growth.fill_(self.growth)
        self.update_ema(n)
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), "gp": float(gp.detach())}


# cond_weight: the PGAN code's 1.0 at the paper preset; the short presets use 4.0, with which the demo's samples
# separate by class within minutes (1.0 left them unseparated after 12 kimg, see bench/bench_gans.py).
_COMMON: dict[str, Any] = {
    "z_dim": 64, "mbstd_group": 4, "lr": 0.001, "betas": [0.0, 0.99], "gp_lambda": 10.0, "drift": 0.001,
    "cond_weight": 4.0, "d_conditioning": "acgan", "ema_kimg": 2.0, "ema_rampup": 0.05, "amp": True,
}
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {**_COMMON, "res": 32, "channel_base": 512, "channel_max": 32, "batch": 8, "kimg": 2,
             "snapshot_kimg": 1, "stab_kimg": 0.1, "fade_kimg": 0.1},
    "demo": {**_COMMON, "res": 64, "channel_base": 1024, "channel_max": 128, "batch": 16, "kimg": 12,
             "snapshot_kimg": 2, "stab_kimg": 0.5, "fade_kimg": 1.0},
    # The PGAN paper's 256 px schedule (600 kimg per fade and per stabilisation, 512 channels halving from
    # 64 px, batch 16); 13,176 kimg = the critical review's 890 epochs (Table 4) of 14,805 images.
    "paper": {**_COMMON, "res": 256, "channel_base": 16384, "channel_max": 512, "batch": 16, "kimg": 13176,
              "snapshot_kimg": 200, "stab_kimg": 600.0, "fade_kimg": 600.0, "z_dim": 512, "ema_kimg": 10.0,
              "ema_rampup": None, "cond_weight": 1.0},
}


@register_family("pgan", conditioning="noise", presets=PRESETS, generator_of=lambda t: t.G,
                 ema_generator_of=lambda t: t.G_ema)
def build(config: dict[str, Any], device: torch.device) -> PGANTrainer:
    return PGANTrainer(config, device)
