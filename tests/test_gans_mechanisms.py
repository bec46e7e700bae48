"""One test per signature mechanism of the GAN families (tiny networks, random init unless trained)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.gans import GanBatch, create_gan, create_generator, resolve_config
from engine.gans.ada import AdaptiveAugment
from engine.gans.layers import MinibatchStdDev, ema_beta
from engine.gans.pgan import PDiscriminator, PGenerator, growth_at, reals_at, split_growth
from engine.gans.stylegan2 import ModulatedConv2d


def test_demodulation_normalises_the_effective_weights() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(8, 6, 3, w_dim=16)
    w = torch.randn(4, 16) * torch.tensor([0.1, 1.0, 5.0, 50.0])[:, None]  # styles of very different scale
    wt = conv.effective_weight(w)
    norms = wt.square().sum(dim=(2, 3, 4)).sqrt()
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    plain = ModulatedConv2d(8, 6, 3, w_dim=16, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    raw = plain.effective_weight(w).square().sum(dim=(2, 3, 4)).sqrt()
    assert raw.std() > 0.1  # without demodulation the norm follows the style
    # so the output does not follow the style's scale either (styles x 20 through the affine layer)
    x = torch.randn(2, 8, 8, 8)
    louder = ModulatedConv2d(8, 6, 3, w_dim=16)
    louder.load_state_dict({k: v * 20 if k.startswith("affine") else v for k, v in conv.state_dict().items()})
    assert torch.allclose(louder.styles(w[:2]), 20 * conv.styles(w[:2]), rtol=1e-5)
    assert torch.allclose(conv(x, w[:2]), louder(x, w[:2]), atol=1e-4)


@pytest.mark.parametrize("up", [False, True])
def test_grouped_and_split_modulated_convolutions_agree(up: bool) -> None:
    torch.manual_seed(1)
    fused = ModulatedConv2d(5, 7, 3, w_dim=8, up=up, fused=True)
    split = ModulatedConv2d(5, 7, 3, w_dim=8, up=up, fused=False)
    split.load_state_dict(fused.state_dict())
    x, w = torch.randn(3, 5, 8, 8), torch.randn(3, 8)
    assert torch.allclose(fused(x, w), split(x, w), atol=1e-5)


def _highpass_share(img: torch.Tensor) -> float:
    """Share of an image difference's energy above a 4x4 box low-pass."""
    low = F.interpolate(F.avg_pool2d(img, 4), scale_factor=4, mode="nearest")
    return float((img - low).square().sum() / img.square().sum())


def test_noise_inputs_change_fine_detail_only() -> None:
    G = create_generator("stylegan2", "tiny", seed=0)
    with torch.no_grad():
        for layer in G.layers:
            layer.noise.strength.fill_(0.05)
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        a = G(z, y, "random", torch.Generator().manual_seed(1))
        b = G(z, y, "random", torch.Generator().manual_seed(2))
        other = G(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(3)), y, "random",
                  torch.Generator().manual_seed(1))
        const = G(z, y, "const"), G(z, y, "const")
    by_noise, by_z = a - b, other - a
    assert by_noise.abs().max() > 0  # the noise does something...
    assert by_noise.square().mean() < 0.25 * by_z.square().mean()  # ...much less than the latent...
    assert _highpass_share(by_noise) > 3 * _highpass_share(by_z)  # ...and mostly in the fine detail
    assert torch.equal(*const)  # const noise: an image is a function of (z, class)


def test_pgan_fade_in_is_the_old_path_at_alpha_0_and_the_new_at_alpha_1() -> None:
    cfg = resolve_config("pgan", "tiny")
    torch.manual_seed(0)
    G, D = PGenerator(cfg), PDiscriminator(cfg)
    z, y = torch.randn(3, cfg["z_dim"]), torch.tensor([0, 1, 1])
    with torch.no_grad():
        old = G(z, y, growth=1.0, full_res=False)  # 8 px, stable
        new = G(z, y, growth=2.0, full_res=False)  # 16 px, stable
        start = G(z, y, growth=1.0 + 1e-9, full_res=False)  # fading into 16 px, alpha ~ 0
        end = G(z, y, growth=2.0 - 1e-9, full_res=False)
        half = G(z, y, growth=1.5, full_res=False)
    up_old = F.interpolate(old, scale_factor=2, mode="nearest")
    assert start.shape == new.shape == (3, 3, 16, 16)
    assert torch.allclose(start, up_old, atol=1e-5) and torch.allclose(end, new, atol=1e-5)
    assert torch.allclose(half, 0.5 * up_old + 0.5 * new, atol=1e-5)
    # the discriminator blends the same way: alpha ~ 0 reads the downsampled image with the old block
    img = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        d_start = D(img, 1.0 + 1e-9, y)[0]
        d_old = D(F.avg_pool2d(img, 2), 1.0, y)[0]
        d_end, d_new = D(img, 2.0 - 1e-9, y)[0], D(img, 2.0, y)[0]
    assert torch.allclose(d_start, d_old, atol=1e-4) and torch.allclose(d_end, d_new, atol=1e-4)
    # reals are blended alike, and the schedule walks through the levels
    r = torch.randn(2, 3, 32, 32)
    assert torch.allclose(reals_at(r, 2.0), F.adaptive_avg_pool2d(r, 16))
    assert split_growth(1.25) == (2, 0.25) and split_growth(2.0) == (2, 1.0)
    sched = {"res": 32, "channel_base": 512, "channel_max": 32, "stab_kimg": 1.0, "fade_kimg": 2.0}
    assert [growth_at(n, sched) for n in (0, 1000, 2000, 3000, 4000, 6000, 100_000)] == [0, 0, 0.5, 1, 1, 2, 3]


def test_minibatch_stddev_responds_to_batch_diversity() -> None:
    layer = MinibatchStdDev(group_size=4)
    same = torch.randn(1, 6, 4, 4).repeat(8, 1, 1, 1)
    varied = torch.randn(8, 6, 4, 4)
    out_same, out_varied = layer(same), layer(varied)
    assert out_same.shape == (8, 7, 4, 4)
    assert torch.equal(out_same[:, :6], same)
    assert out_same[:, 6].max() < 1e-3 < 0.5 < out_varied[:, 6].min()
    assert layer(varied * 3)[:, 6].mean() == pytest.approx(3 * out_varied[:, 6].mean().item(), rel=1e-3)


@pytest.mark.parametrize("family", ["stylegan2", "pgan"])
def test_ema_generator_differs_from_the_raw_one_and_lags_it(family: str) -> None:
    trainer = create_gan(family, "tiny", seed=0, res=16, batch=8)
    start = {k: v.clone() for k, v in trainer.G_ema.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 2
    for _ in range(6):
        trainer.train_step(GanBatch(x, y), gen)
    name = next(n for n, p in trainer.G.named_parameters() if p.ndim > 1)
    raw, ema, init = dict(trainer.G.named_parameters())[name], trainer.G_ema.state_dict()[name], start[name]
    assert not torch.equal(raw, ema) and not torch.equal(ema, init)
    assert (ema - init).norm() < (raw - init).norm()  # the average moves, more slowly than the raw weights
    assert ema_beta(8, 2.0, 10**9, None) == pytest.approx(0.5 ** (8 / 2000))
    assert ema_beta(8, 2.0, 80, 0.05) < ema_beta(8, 2.0, 10**9, 0.05)  # ramp-up: short history, short half-life


def test_ada_probability_follows_the_overfitting_heuristic() -> None:
    ada = AdaptiveAugment(torch.device("cpu"), target=0.6, speed_kimg=1.0, interval=2)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(ada(x, gen), x)  # p = 0: identity
    for _ in range(4):
        ada.observe(torch.ones(64))  # r_t = 1 > 0.6: D is overconfident on reals
    assert ada.p == pytest.approx(2 * 128 / 1000)
    for _ in range(2):
        ada.observe(torch.tensor([1.0, -1.0] * 32))  # r_t = 0 < 0.6
    assert ada.p == pytest.approx(128 / 1000)
    ada.p = 1.0
    xg = x.clone().requires_grad_(True)
    out = ada(xg, gen)
    assert out.shape == x.shape and not torch.allclose(out, x)
    (grad,) = torch.autograd.grad(out.square().sum(), xg)  # differentiable: G learns through it
    assert grad.abs().sum() > 0
    ada.p = 0.1  # each of 5 groups on with p: ~41 % of the images changed
    changed = [not torch.allclose(ada(x, gen)[i], x[i]) for _ in range(20) for i in range(4)]
    assert 0.15 < sum(changed) / len(changed) < 0.7


@pytest.mark.parametrize("family, extra", [("stylegan2", {}), ("pgan", {}),
                                           ("pgan", {"d_conditioning": "projection"})])
def test_a_few_tiny_steps_give_finite_changing_losses(family: str, extra: dict) -> None:
    trainer = create_gan(family, "tiny", seed=0, res=16, **extra)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 2
    logs = [trainer.train_step(GanBatch(x, y), gen) for _ in range(5)]
    for key in ("loss_g", "loss_d"):
        values = [entry[key] for entry in logs]
        assert all(math.isfinite(v) for v in values) and len(set(values)) > 1
    assert trainer.images_seen == 40 and trainer.step == 5
    if family == "stylegan2":
        assert "r1" in logs[0] and "r1" not in logs[1]  # lazy: every r1_interval (16) steps
        assert logs[-1]["aug_p"] == trainer.ada.p
    else:
        assert all(math.isfinite(entry["gp"]) for entry in logs)


def test_path_length_regularisation_updates_its_mean_and_the_generator() -> None:
    a = create_gan("stylegan2", "tiny", seed=0, res=16, pl_weight=2.0, pl_interval=1, ada=False)
    b = create_gan("stylegan2", "tiny", seed=0, res=16, pl_weight=0.0, ada=False)
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 2
    logs = a.train_step(GanBatch(x, y), torch.Generator().manual_seed(0))
    b.train_step(GanBatch(x, y), torch.Generator().manual_seed(0))
    assert logs["pl"] >= 0 and float(a.pl_mean) > 0
    assert not torch.equal(a.G.mapping.net[0].weight, b.G.mapping.net[0].weight)


@pytest.mark.parametrize("family", ["stylegan2", "pgan"])
def test_class_conditional_samples_differ_by_class(family: str) -> None:
    trainer = create_gan(family, "tiny", seed=0)
    z = torch.randn(6, trainer.G.z_dim, generator=torch.Generator().manual_seed(0))
    benign = trainer.generate(labels=torch.zeros(6, dtype=torch.long), z=z)
    melanoma = trainer.generate(labels=torch.ones(6, dtype=torch.long), z=z)
    again = trainer.generate(labels=torch.zeros(6, dtype=torch.long), z=z)
    assert benign.shape == (6, 3, 32, 32)
    assert torch.equal(benign, again)
    assert (benign - melanoma).abs().mean() > 1e-3
