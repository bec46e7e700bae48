"""pix2pixHD (Wang et al., CVPR 2018): label map -> lesion image, as Bissoto et al. (2018) used it for skin lesions.

- Generator: a *global* generator (7x7 conv front, ``n_down`` stride-2 convs, ``n_blocks`` residual blocks,
  as many transposed convs back up) and, at the ``paper`` preset, ``n_local`` *local enhancers*: the global
  generator sees the maps at half resolution, each enhancer encodes the full-resolution maps with its own
  front and stride-2 conv, adds the coarser generator's last feature map, refines it with residual blocks and
  upsamples. Instance norm, ReLU, reflection padding; the original trains jointly after warming the global
  part alone (``niter_fix_global``), here both train jointly from the start.
- Discriminator: ``num_d`` PatchGANs on the (map, image) pair at full, 1/2, ... resolution, returning every
  layer's activation.
- Losses: LSGAN; the discriminator feature-matching loss (L1 between D's activations on real and synthetic
  pairs, weight ``lambda_feat`` = 10); the VGG19 perceptual loss (``lambda_vgg`` = 10) only when
  ``vgg_weights`` names a local weights file, otherwise off (``notes`` says so and the run logs it).
- Input: 8 one-hot label channels plus the boundary map (``boundary``), see ``engine.gans.translation``.
  pix2pixHD's optional instance-wise feature encoder (for choosing styles at test time) is not built: the
  paper generates exactly one image per mask.

Adam lr 2e-4, betas (0.5, 0.999), as pix2pixHD. Lengths: the paper trained 400 epochs over its 2,346
training masks (its Table 4), i.e. 938 kimg: the ``paper`` preset's ``kimg``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.gans._registry import GanBatch, register_family
from engine.gans.layers import MultiScaleDiscriminator, downsample, feature_matching_loss, frozen, lsgan_loss
from engine.gans.translation import TranslationTrainer, map_channels

_COMMON: dict[str, Any] = dict(
    boundary=True, flip=True, n_local=0, n_blocks_local=3, num_d=2, lambda_feat=10.0, lambda_vgg=10.0,
    vgg_weights=None, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, amp=True,
)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {**_COMMON, "res": 32, "batch": 8, "kimg": 2, "snapshot_kimg": 1,
             "ngf": 8, "n_down": 2, "n_blocks": 2, "n_blocks_local": 1, "ndf": 8, "d_layers": 2},
    "demo": {**_COMMON, "res": 64, "batch": 8, "kimg": 20, "snapshot_kimg": 2,
             "ngf": 12, "n_down": 3, "n_blocks": 4, "ndf": 16, "d_layers": 3},
    "paper": {**_COMMON, "res": 256, "batch": 8, "kimg": 938, "snapshot_kimg": 47,
              "ngf": 32, "n_down": 4, "n_blocks": 9, "n_local": 1, "ndf": 64, "d_layers": 3},
}


class ResnetBlock(nn.Module):
    """x + (pad, conv3, IN, ReLU, pad, conv3, IN)(x)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _front(in_ch: int, ch: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ch, 7), nn.InstanceNorm2d(ch), nn.ReLU(True)]


def _down(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(True)]


def _up(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(cout),
            nn.ReLU(True)]


class GlobalGenerator(nn.Module):
    """Front, ``n_down`` halvings (channels doubling up to ``max_ch``), residual blocks, ``n_down`` doublings.

    Returns the last feature map (``ngf`` channels at the input's resolution); the RGB head is separate so
    a local enhancer can take over from here.
    """

    def __init__(self, in_ch: int, ngf: int, n_down: int, n_blocks: int, max_ch: int = 1024) -> None:
        super().__init__()
        chans = [min(ngf * 2**i, max_ch) for i in range(n_down + 1)]
        layers = _front(in_ch, chans[0])
        for a, b in zip(chans, chans[1:], strict=False):
            layers += _down(a, b)
        layers += [ResnetBlock(chans[-1]) for _ in range(n_blocks)]
        for a, b in zip(chans[::-1], chans[-2::-1], strict=False):
            layers += _up(a, b)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class LocalEnhancer(nn.Module):
    """One pix2pixHD local enhancer: full-resolution front + one halving, summed with the coarser generator's
    features (which are at that halved resolution), then residual blocks and one doubling."""

    def __init__(self, in_ch: int, ngf: int, n_blocks: int) -> None:
        super().__init__()
        self.down = nn.Sequential(*_front(in_ch, ngf), *_down(ngf, 2 * ngf))
        self.up = nn.Sequential(*(ResnetBlock(2 * ngf) for _ in range(n_blocks)), *_up(2 * ngf, ngf))

    def forward(self, maps: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(maps) + coarse)


class Pix2PixHDGenerator(nn.Module):
    """The global generator at 1/2^n_local resolution, ``n_local`` enhancers, a 7x7 conv + tanh RGB head."""

    def __init__(self, in_ch: int, ngf: int, n_down: int, n_blocks: int, n_local: int, n_blocks_local: int) -> None:
        super().__init__()
        self.global_g = GlobalGenerator(in_ch, ngf * 2**n_local, n_down, n_blocks)
        self.local = nn.ModuleList(LocalEnhancer(in_ch, ngf * 2 ** (n_local - 1 - i), n_blocks_local)
                                   for i in range(n_local))
        self.to_rgb = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        pyramid = [maps]
        for _ in self.local:
            pyramid.append(downsample(pyramid[-1]))
        x = self.global_g(pyramid[-1])
        for i, enhancer in enumerate(self.local):
            x = enhancer(pyramid[len(self.local) - 1 - i], x)
        return self.to_rgb(x)


class Pix2PixHDTrainer(TranslationTrainer):
    family = "pix2pixhd"

    def __init__(self, config: dict[str, Any], device: torch.device) -> None:
        in_ch = map_channels(config)
        res, scale = config["res"], 2 ** (config["n_down"] + config["n_local"])
        if res % scale:
            raise ValueError(f"pix2pixhd: res {res} is not divisible by 2^(n_down + n_local) = {scale}")
        g = Pix2PixHDGenerator(in_ch, config["ngf"], config["n_down"], config["n_blocks"], config["n_local"],
                               config["n_blocks_local"])
        d = MultiScaleDiscriminator(in_ch + 3, config["ndf"], config["d_layers"], config["num_d"])
        super().__init__(config, device, {"G": g, "D": d})
        self.layer_weight = 4.0 / (config["d_layers"] + 1)  # pix2pixHD's feat_weights

    def translate(self, maps: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return self.G(maps)

    def train_step(self, batch: GanBatch, gen: torch.Generator) -> dict[str, float]:
        """pix2pixHD's iteration: G's step (LSGAN + feature matching + VGG), then D's on the same fake."""
        real, maps = self.inputs(batch, gen)
        with self.autocast():
            fake = self.G(maps)
            with frozen(self.D):
                pred_fake = self.D(torch.cat([maps, fake], 1))
            pred_real = self.D(torch.cat([maps, real], 1))
            pred_fake_d = self.D(torch.cat([maps, fake.detach()], 1))
        loss_gan = lsgan_loss(pred_fake, True)
        loss_fm = feature_matching_loss(pred_fake, pred_real, self.layer_weight) * self.config["lambda_feat"]
        loss_vgg = self.perceptual(fake, real)
        loss_g = loss_gan + loss_fm + loss_vgg
        self.update("G", loss_g)
        loss_d = 0.5 * (lsgan_loss(pred_fake_d, False) + lsgan_loss(pred_real, True))
        self.update("D", loss_d)
        return {"loss_g": loss_g.item(), "loss_d": loss_d.item(), "loss_g_gan": loss_gan.item(),
                "loss_fm": loss_fm.item(), "loss_vgg": loss_vgg.item()}


@register_family("pix2pixhd", conditioning="translation", presets=PRESETS,
                 generator_of=lambda trainer: trainer.G)
def build(config: dict[str, Any], device: torch.device) -> Pix2PixHDTrainer:
    return Pix2PixHDTrainer(config, device)
