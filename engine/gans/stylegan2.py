"""Class-conditional StyleGAN2 (Karras et al. 2020) with ADA-style adaptive augmentation, written for ganaug.

Generator: a mapping network turns the normalised latent z, concatenated with a normalised class embedding,
into a style vector w. The synthesis network starts from a learned 4x4 constant; every layer is a
*modulated* convolution (the weights are scaled per input channel by an affine function of w) followed by
*demodulation* (each output channel's effective weights are rescaled to unit L2 norm, which replaces
AdaIN's instance normalisation without its droplet artefacts), per-pixel noise with a learned strength,
bias and leaky ReLU. Each resolution adds its RGB image to the upsampled RGB of the previous one (the "skip"
generator).

Discriminator: residual blocks (two 3x3 convs and a 1x1 skip, both halving the resolution, summed with
1/sqrt(2)), minibatch stddev at 4x4, and projection conditioning (Miyato & Koyama 2018):
``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``.

Training: non-saturating logistic loss; lazy R1 every ``r1_interval`` minibatches on the reals as D sees them
(after the adaptive augmentation: NVIDIA's ADA differentiates through its augmentation, which needs a double
backward of grid_sample that CUDA lacks), scaled by the interval (and Adam's learning rate and betas adjusted
for the lazy schedule, as in the paper); optional
path-length regularisation (``pl_weight``, lazy every ``pl_interval``); generator EMA with a half-life in
kimg; optional adaptive discriminator augmentation (``engine.gans.ada``). One iteration: G makes a batch,
D is updated on it (detached) and on the reals, then G is updated through the just-updated D with the
same fakes (one G forward per iteration instead of two: on a CPU that is a third of the cost).

Simplifications against NVIDIA's code (which is not used here): bilinear resampling instead of the FIR
filters, no style mixing or truncation. On CUDA the main losses run under bf16 autocast (same exponent
range as float32, so the demodulation is safe) with channels_last; R1 and path length stay in float32.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.gans._registry import GanBatch, register_family
from engine.gans.ada import AdaptiveAugment
from engine.gans.layers import SQRT2, EqualConv2d, EqualLinear, MinibatchStdDev, lrelu, normalize_2nd_moment, one_hot
from engine.gans.noise import N_CLASSES, NoiseTrainer, channels, projection


def _levels(res: int) -> list[int]:
    return [2 ** k for k in range(2, int(math.log2(res)) + 1)]


class MappingNetwork(nn.Module):
    """(z, class) -> w: both normalised to unit second moment, concatenated, then an MLP at lr x 0.01."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01) -> None:
        super().__init__()
        self.embed = EqualLinear(N_CLASSES, w_dim)
        dims = [z_dim + w_dim] + [w_dim] * layers
        self.net = nn.Sequential(*(EqualLinear(a, b, lr_mul=lr_mul, act=True)
                                   for a, b in zip(dims, dims[1:], strict=False)))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = normalize_2nd_moment(self.embed(one_hot(labels, N_CLASSES, z.dtype)))
        return self.net(torch.cat([normalize_2nd_moment(z), y], dim=1))


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are modulated per sample by the style ``w`` and (optionally) demodulated.

    ``fused``: one grouped convolution with per-sample weights (the paper's formulation). Otherwise the
    mathematically identical scale-input / shared conv / scale-output form, which oneDNN runs faster on a CPU.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, w_dim: int, *, demodulate: bool = True,
                 up: bool = False, fused: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel * kernel)
        self.demodulate = demodulate
        self.up = up
        self.fused = fused
        self.padding = kernel // 2

    def styles(self, w: torch.Tensor) -> torch.Tensor:
        return self.affine(w)

    def effective_weight(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample weights (B, out, in, k, k) after modulation (and demodulation)."""
        wt = self.weight[None] * self.weight_gain * self.styles(w)[:, None, :, None, None]
        if self.demodulate:
            wt = wt * (wt.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
        return wt

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        b, c, h, wd = x.shape
        if self.fused:
            wt = self.effective_weight(w).to(x.dtype)
            out = F.conv2d(x.reshape(1, b * c, h, wd), wt.reshape(-1, c, *wt.shape[3:]), padding=self.padding,
                           groups=b)
            return out.reshape(b, -1, h, wd)
        s = self.styles(w)
        weight = self.weight * self.weight_gain
        out = F.conv2d(x * s[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # sum over (in, k, k) of (W * s)^2 = (s^2) @ (sum over k of W^2)^T
            d = (s.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()
            out = out * d[:, :, None, None].to(out.dtype)
        return out


class NoiseInput(nn.Module):
    """Per-pixel Gaussian noise, one map per sample shared by all channels, times a learned strength.

    ``mode``: "random" (training; drawn from ``gen``), "const" (a fixed map stored in the network, so an
    image is a function of z and class only: grids, metrics, pools) or "none".
    """

    def __init__(self, res: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("const", torch.randn(1, 1, res, res))

    def forward(self, x: torch.Tensor, mode: str, gen: torch.Generator | None) -> torch.Tensor:
        if mode == "none":
            return x
        if mode == "const":
            noise = self.const
        else:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], generator=gen, device=x.device)
        return x + noise.to(x.dtype) * self.strength.to(x.dtype)


class StyleLayer(nn.Module):
    """Modulated conv -> noise -> bias -> leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, res: int, w_dim: int, up: bool, fused: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up, fused=fused)
        self.noise = NoiseInput(res)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, gen: torch.Generator | None) -> torch.Tensor:
        x = self.noise(self.conv(x, w), noise_mode, gen)
        return lrelu(x + self.bias.to(x.dtype)[None, :, None, None])


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB, without demodulation (as in the paper)."""

    def __init__(self, in_channels: int, w_dim: int, fused: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, 3, 1, w_dim, demodulate=False, fused=fused)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.to(x.dtype)[None, :, None, None]


class Generator(nn.Module):
    """``G(z, labels) -> images`` in [-1, 1] (N, 3, res, res); ``noise_mode`` as in :class:`NoiseInput`."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        res, w_dim, fused = cfg["res"], cfg["w_dim"], cfg["fused_modconv"]
        self.res, self.z_dim = res, cfg["z_dim"]
        ch = {r: channels(r, cfg["channel_base"], cfg["channel_max"]) for r in _levels(res)}
        self.mapping = MappingNetwork(cfg["z_dim"], w_dim, cfg["map_layers"])
        self.const = nn.Parameter(torch.randn(1, ch[4], 4, 4))
        self.layers = nn.ModuleList([StyleLayer(ch[4], ch[4], 4, w_dim, False, fused)])
        self.to_rgb = nn.ModuleList([ToRGB(ch[4], w_dim, fused)])
        for r in _levels(res)[1:]:
            self.layers.append(StyleLayer(ch[r // 2], ch[r], r, w_dim, True, fused))
            self.layers.append(StyleLayer(ch[r], ch[r], r, w_dim, False, fused))
            self.to_rgb.append(ToRGB(ch[r], w_dim, fused))

    def synthesis(self, w: torch.Tensor, noise_mode: str = "const", gen: torch.Generator | None = None) -> torch.Tensor:
        x = self.const.to(w.dtype).expand(w.shape[0], -1, -1, -1)
        x = self.layers[0](x, w, noise_mode, gen)
        img = self.to_rgb[0](x, w)
        for i, to_rgb in enumerate(self.to_rgb[1:]):
            x = self.layers[1 + 2 * i](x, w, noise_mode, gen)
            x = self.layers[2 + 2 * i](x, w, noise_mode, gen)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + to_rgb(x, w)
        return img

    def forward(self, z: torch.Tensor, labels: torch.Tensor, noise_mode: str = "const",
                gen: torch.Generator | None = None) -> torch.Tensor:
        return self.synthesis(self.mapping(z, labels), noise_mode, gen)


class DBlock(nn.Module):
    """Residual discriminator block: (conv3x3, conv3x3 + down) + (1x1 + down), scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, act=True)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + lrelu(self.conv1(self.conv0(x)))) / SQRT2


class Discriminator(nn.Module):
    """``D(images, labels) -> logits (N,)`` with projection class conditioning."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        levels = _levels(cfg["res"])
        ch = {r: channels(r, cfg["channel_base"], cfg["channel_max"]) for r in levels}
        self.from_rgb = EqualConv2d(3, ch[cfg["res"]], 1, act=True)
        self.blocks = nn.Sequential(*(DBlock(ch[r], ch[r // 2]) for r in reversed(levels[1:])))
        self.mbstd = MinibatchStdDev(cfg["mbstd_group"])
        self.conv = EqualConv2d(ch[4] + 1, ch[4], 3, act=True)
        self.fc = EqualLinear(ch[4] * 16, ch[4], act=True)
        self.out = EqualLinear(ch[4], 1)
        self.embed = EqualLinear(N_CLASSES, ch[4], bias=False)

    def forward(self, img: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.mbstd(self.blocks(self.from_rgb(img))))
        h = self.fc(h.flatten(1))
        return self.out(h).squeeze(1) + projection(self.embed, labels, h)


class StyleGAN2Trainer(NoiseTrainer):
    """Optimisers, ADA, the regularisers and the training iteration of one class-conditional StyleGAN2."""

    family = "stylegan2"

    def __init__(self, config: dict[str, Any], device: torch.device) -> None:
        super().__init__(config, device, Generator(config), Discriminator(config))
        # Lazy regularisation: the optimiser of a network regularised every k minibatches sees k+1 steps in the
        # time of k, so lr and betas are rescaled by k/(k+1) (StyleGAN2, appendix B).
        self.opt_G = self._adam(self.G, config["lr_g"], config["pl_interval"] if config["pl_weight"] > 0 else 0)
        self.opt_D = self._adam(self.D, config["lr_d"], config["r1_interval"])
        self.ada = AdaptiveAugment(device, target=config["ada_target"], speed_kimg=config["ada_kimg"],
                                   interval=config["ada_interval"]) if config["ada"] else None
        self.pl_mean = torch.zeros((), device=device)

    def _adam(self, net: nn.Module, lr: float, lazy_interval: int) -> torch.optim.Adam:
        ratio = lazy_interval / (lazy_interval + 1) if lazy_interval > 0 else 1.0
        b1, b2 = self.config["betas"]
        return torch.optim.Adam(net.parameters(), lr=lr * ratio, betas=(b1 ** ratio, b2 ** ratio), eps=1e-8)

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.ada(x, gen) if self.ada is not None else x

    def train_step(self, batch: GanBatch, gen: torch.Generator) -> dict[str, float]:
        cfg, dev = self.config, self.device
        real, labels = batch.images.to(dev), batch.labels.to(dev)
        if self.cuda:
            real = real.contiguous(memory_format=torch.channels_last)
        n = real.shape[0]
        z = torch.randn(n, cfg["z_dim"], generator=gen, device=dev)
        with self.autocast():
            fake = self.G(z, labels, "random", gen)

        # -- D: logistic loss on fakes (detached) and reals; every r1_interval steps also lazy R1 on the reals.
        self.D.requires_grad_(True)
        do_r1 = cfg["r1_gamma"] > 0 and self.step % cfg["r1_interval"] == 0
        # R1 penalises D's gradient at the (augmented) reals it is shown: the augmentation is not differentiated
        # twice (CUDA's grid_sample has no double backward).
        real_in = self._augment(real, gen).detach().requires_grad_(do_r1)
        with self.autocast():
            fake_logits = self.D(self._augment(fake.detach(), gen), labels)
        with torch.autocast(device_type=dev.type, enabled=self.amp and not do_r1, dtype=torch.bfloat16):
            real_logits = self.D(real_in, labels)
        loss_d = F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()
        logs = {"loss_d": float(loss_d.detach())}
        total_d = loss_d
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.float().sum(), real_in, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            total_d = total_d + r1 * (cfg["r1_gamma"] / 2) * cfg["r1_interval"]
            logs["r1"] = float(r1.detach())
        self.opt_D.zero_grad(set_to_none=True)
        total_d.backward()
        self.opt_D.step()
        if self.ada is not None:
            self.ada.observe(real_logits)

        # -- G: non-saturating loss through the updated D, same fakes.
        self.D.requires_grad_(False)
        with self.autocast():
            loss_g = F.softplus(-self.D(self._augment(fake, gen), labels).float()).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        if cfg["pl_weight"] > 0 and self.step % cfg["pl_interval"] == 0:
            logs["pl"] = self._path_length(labels, gen)
        self.opt_G.step()
        logs["loss_g"] = float(loss_g.detach())

        self.images_seen += n
        self.step += 1
        self.update_ema(n)
        if self.ada is not None:
            logs["aug_p"] = self.ada.p
        return logs

    def _path_length(self, labels: torch.Tensor, gen: torch.Generator) -> float:
        """Path-length penalty (float32): gradients of random image projections w.r.t. w should have a constant
        length ``pl_mean`` (an EMA); adds its gradient to G's, scaled by the lazy interval. Returns the penalty."""
        cfg = self.config
        n = max(1, labels.shape[0] // cfg["pl_batch_shrink"])
        z = torch.randn(n, cfg["z_dim"], generator=gen, device=self.device)
        w = self.G.mapping(z, labels[:n])
        img = self.G.synthesis(w, "random", gen)
        noise = torch.randn(img.shape, generator=gen, device=self.device) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), w, create_graph=True)
        lengths = grad.square().sum(dim=1).sqrt()
        self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().detach(), 0.01))
        penalty = (lengths - self.pl_mean).square().mean()
        (penalty * cfg["pl_weight"] * cfg["pl_interval"]).backward()
        return float(penalty.detach())

    def extra_state(self) -> dict[str, Any]:
        return {"ada": self.ada.state_dict() if self.ada is not None else None, "pl_mean": self.pl_mean}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.ada is not None and state["ada"] is not None:
            self.ada.load_state_dict(state["ada"])
        self.pl_mean.copy_(state["pl_mean"])


_COMMON: dict[str, Any] = {
    "z_dim": 64, "w_dim": 64, "map_layers": 2, "fused_modconv": False, "mbstd_group": 4,
    "lr_g": 0.0025, "lr_d": 0.0025, "betas": [0.0, 0.99], "r1_gamma": 1.0, "r1_interval": 16,
    "pl_weight": 0.0, "pl_interval": 4, "pl_batch_shrink": 2, "ema_kimg": 2.0, "ema_rampup": 0.05,
    "ada": True, "ada_target": 0.6, "ada_kimg": 100.0, "ada_interval": 4, "amp": True,
}
PRESETS: dict[str, dict[str, Any]] = {
    # seconds on a CPU: tests
    "tiny": {**_COMMON, "res": 32, "channel_base": 256, "channel_max": 32, "batch": 8, "kimg": 2,
             "snapshot_kimg": 1},
    # a few CPU minutes for `ganaug demo`: G ~0.4M parameters, narrow 32/64 px levels (see design.md's sizing)
    "demo": {**_COMMON, "res": 64, "channel_base": 1024, "channel_max": 128, "batch": 16, "kimg": 12,
             "snapshot_kimg": 2, "map_layers": 2, "z_dim": 128, "w_dim": 128, "r1_gamma": 0.5},
    # the paper's scale (256 px, StyleGAN2-ADA's 256 px configuration): a GPU. 8,365 kimg = the paper's
    # 565 epochs (Table 4) of its 14,805 training images.
    "paper": {**_COMMON, "res": 256, "channel_base": 16384, "channel_max": 512, "batch": 64, "kimg": 8365,
              "snapshot_kimg": 200, "z_dim": 512, "w_dim": 512, "map_layers": 8, "lr_g": 0.0025,
              "lr_d": 0.0025, "r1_gamma": 1.0, "pl_weight": 2.0, "ema_kimg": 20.0, "ema_rampup": None,
              "ada_kimg": 500.0, "fused_modconv": True},
}


@register_family("stylegan2", conditioning="noise", presets=PRESETS, generator_of=lambda t: t.G,
                 ema_generator_of=lambda t: t.G_ema)
def build(config: dict[str, Any], device: torch.device) -> StyleGAN2Trainer:
    return StyleGAN2Trainer(config, device)
