"""pix2pixHD and SPADE: their defining mechanisms, losses, input encoding, and bit-exact resume (tiny sizes)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from engine.data.masks import PALETTE
from engine.errors import InputError
from engine.gans import GanBatch, create_gan, get_family, resolve_config
from engine.gans.layers import MultiScaleDiscriminator, VGGLoss, feature_matching_loss
from engine.gans.spade import SPADE
from engine.gans.translation import boundary_map, encode_maps, paired_flip, triplet_grid

FAMILIES = ("pix2pixhd", "spade")
R = 32


def _labels(seed: int, n: int = 4, res: int = R) -> torch.Tensor:
    """Lesion-like label maps: skin, a disc of lesion, a patch of one attribute, pad in one corner."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    out = torch.ones(n, res, res, dtype=torch.long)
    for i in range(n):
        cy, cx, r = (torch.randint(res // 3, 2 * res // 3, (2,), generator=g).tolist()
                     + [int(torch.randint(res // 6, res // 3, (1,), generator=g))])
        out[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
        out[i][cy - 2:cy + 2, cx - 2:cx + 2] = int(torch.randint(3, 8, (1,), generator=g))
        out[i][:3, :3] = 0
    return out


def _batch(config: dict, seed: int = 0, n: int = 4) -> GanBatch:
    labels = _labels(seed, n, config["res"])
    images = torch.tanh(torch.randn(n, 3, config["res"], config["res"], generator=torch.Generator().manual_seed(seed)))
    maps = encode_maps(labels, config["boundary"])
    return GanBatch(images=images, labels=torch.zeros(n, dtype=torch.long), maps=maps)


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_steps_have_finite_changing_losses(family: str) -> None:
    torch.manual_seed(0)
    trainer = create_gan(family, "tiny")
    batch = _batch(trainer.config)
    g0 = [p.detach().clone() for p in trainer.G.parameters()]
    gen = torch.Generator().manual_seed(1)
    logs = [trainer.train_step(batch, gen) for _ in range(3)]
    for key in ("loss_g", "loss_d", "loss_fm"):
        values = [entry[key] for entry in logs]
        assert all(np.isfinite(values)), (key, values)
        assert len(set(values)) == 3, (key, values)
    assert trainer.images_seen == 12
    assert any(not torch.equal(a, b) for a, b in zip(g0, trainer.G.parameters(), strict=True))
    assert get_family(family).conditioning == "translation"


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_equals_uninterrupted(family: str) -> None:
    """Two steps, a checkpoint through torch.save / weights_only load into a fresh trainer, two more steps:
    bit-identical to four uninterrupted steps (CPU)."""
    config = resolve_config(family, "tiny")
    batches = [_batch(config, seed=s) for s in range(4)]
    torch.manual_seed(0)
    straight = create_gan(family, "tiny")
    gen = torch.Generator().manual_seed(7)
    for b in batches:
        straight.train_step(b, gen)

    torch.manual_seed(0)
    first = create_gan(family, "tiny")
    gen = torch.Generator().manual_seed(7)
    for b in batches[:2]:
        first.train_step(b, gen)
    buf = io.BytesIO()
    torch.save({"trainer": first.state_dict(), "gen": gen.get_state()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    resumed = create_gan(family, "tiny", seed=123)  # another init: everything must come from the checkpoint
    resumed.load_state_dict(state["trainer"])
    gen = torch.Generator()
    gen.set_state(state["gen"])
    for b in batches[2:]:
        resumed.train_step(b, gen)

    assert resumed.images_seen == straight.images_seen == 16 and resumed.step == 4
    for name in ("G", "D"):
        a, b = straight.nets[name].state_dict(), resumed.nets[name].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    maps = batches[0].maps
    assert torch.equal(straight.generate(maps=maps), resumed.generate(maps=maps))


@pytest.mark.parametrize("family", FAMILIES)
def test_output_follows_the_map_and_not_the_batch(family: str) -> None:
    torch.manual_seed(0)
    trainer = create_gan(family, "tiny")
    batch = _batch(trainer.config)
    trainer.train_step(batch, torch.Generator().manual_seed(0))  # batch-norm statistics are no longer the init
    out = trainer.generate(maps=batch.maps)
    assert out.shape == (4, 3, R, R) and out.abs().max() <= 1
    # One image per mask: an image does not depend on the other masks of its batch.
    assert torch.allclose(trainer.generate(maps=batch.maps[1:2]), out[1:2], atol=1e-5)
    other = encode_maps(_labels(99, 1), trainer.config["boundary"])
    assert (trainer.generate(maps=other) - out[:1]).abs().mean() > 1e-3


def test_spade_modulation_and_locality() -> None:
    torch.manual_seed(0)
    norm = SPADE(6, 8, 16, "instance")
    x = torch.randn(2, 6, 16, 16)
    seg_a = encode_maps(_labels(0, 2, 16), False)
    seg_b = seg_a.clone()
    seg_b[:, :, 12:, 12:] = 0
    seg_b[:, 7, 12:, 12:] = 1  # globules in the bottom-right corner
    out_a, out_b = norm(x, seg_a), norm(x, seg_b)
    changed = (out_a - out_b).abs().amax(dim=(0, 1)) > 0
    # gamma/beta are two 3x3 convs deep: a change at rows/cols >= 12 reaches rows/cols >= 10, nothing else.
    assert changed[12:, 12:].all()
    assert not changed[:10, :].any() and not changed[:, :10].any()
    # Where the normalisation is not modulated (gamma = beta = 0) the map has no effect: plain instance norm.
    for conv in (norm.gamma, norm.beta):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    plain = torch.nn.functional.instance_norm(x)
    assert torch.allclose(norm(x, seg_a), plain, atol=1e-6) and torch.equal(norm(x, seg_a), norm(x, seg_b))


def test_spade_map_reaches_every_scale() -> None:
    trainer = create_gan("spade", "tiny")
    seen: list[int] = []
    for module in trainer.G.modules():
        if isinstance(module, SPADE):
            module.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[-1]))
    trainer.generate(maps=_batch(trainer.config).maps)
    assert sorted(set(seen)) == [4, 8, 16, 32]  # every resolution of the generator is modulated by the map


def test_spade_vae_encoder() -> None:
    torch.manual_seed(0)
    trainer = create_gan("spade", "tiny", vae=True)
    assert "E" in trainer.nets
    batch = _batch(trainer.config)
    logs = trainer.train_step(batch, torch.Generator().manual_seed(0))
    assert logs["loss_kld"] > 0
    z = torch.randn(4, trainer.config["z_dim"], generator=torch.Generator().manual_seed(1))
    prior_mode = trainer.generate(maps=batch.maps)
    assert torch.equal(prior_mode, trainer.generate(maps=batch.maps))  # z = 0 by default: deterministic
    assert (trainer.generate(maps=batch.maps, z=z) - prior_mode).abs().mean() > 1e-4
    e0 = [p.detach().clone() for p in trainer.nets["E"].parameters()]
    trainer.train_step(batch, torch.Generator().manual_seed(1))
    assert any(not torch.equal(a, b) for a, b in zip(e0, trainer.nets["E"].parameters(), strict=True))


def test_spade_ttur_and_spectral_norm() -> None:
    trainer = create_gan("spade", "tiny")
    assert trainer.opts["G"].param_groups[0]["lr"] == 1e-4 and trainer.opts["D"].param_groups[0]["lr"] == 4e-4
    assert trainer.opts["G"].param_groups[0]["betas"] == (0.0, 0.9)
    spectral = [m for m in (*trainer.G.modules(), *trainer.D.modules())
                if torch.nn.utils.parametrize.is_parametrized(m, "weight")]
    assert len(spectral) >= 10
    # Spectral norm: the effective weight's largest singular value is ~1 after power iterations.
    conv = trainer.D.scales[0].blocks[1][0]
    conv.train()
    for _ in range(30):
        w = conv.weight
    assert abs(torch.linalg.matrix_norm(w.flatten(1), ord=2).item() - 1) < 0.05


def test_multiscale_discriminator_features_and_feature_matching() -> None:
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(in_ch=12, ndf=8, n_down=3, num_d=3)
    x = torch.randn(2, 12, 64, 64)
    feats = d(x)
    assert len(feats) == 3
    widths = []
    for scale in feats:
        assert len(scale) == 3 + 2  # every block's activation, the patch logits last
        assert scale[-1].shape[1] == 1
        widths.append(scale[0].shape[-1])
    assert widths[0] > widths[1] > widths[2]
    assert feature_matching_loss(feats, d(x.clone())).item() == 0.0
    y = x + 0.1 * torch.randn_like(x)
    assert feature_matching_loss(d(y), feats).item() > 0


def test_pix2pixhd_local_enhancer() -> None:
    assert resolve_config("pix2pixhd", "paper")["n_local"] >= 1 and resolve_config("pix2pixhd", "paper")["res"] >= 256
    trainer = create_gan("pix2pixhd", "tiny", n_local=1)
    g = trainer.G
    assert len(g.local) == 1
    global_in: list[int] = []
    g.global_g.register_forward_hook(lambda m, args, out: global_in.append(args[0].shape[-1]))
    out = trainer.generate(maps=_batch(trainer.config).maps)
    assert out.shape == (4, 3, R, R) and global_in == [R // 2]  # the global generator works at half resolution
    logs = trainer.train_step(_batch(trainer.config), torch.Generator().manual_seed(0))
    assert np.isfinite(logs["loss_g"])
    with pytest.raises(ValueError, match="not divisible"):
        create_gan("pix2pixhd", "tiny", res=30)


def _vgg_file(tmp_path) -> str:
    import torchvision

    torch.manual_seed(0)
    with torch.device("meta"):
        features = torchvision.models.vgg19(weights=None).features
    features = features.to_empty(device="cpu")
    for p in features.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return str(path)


def test_vgg_loss_only_from_a_local_file(tmp_path) -> None:
    off = create_gan("pix2pixhd", "tiny")
    assert "VGG perceptual loss off" in off.notes[0]
    assert off.train_step(_batch(off.config), torch.Generator().manual_seed(0))["loss_vgg"] == 0.0

    weights = _vgg_file(tmp_path)
    on = create_gan("pix2pixhd", "tiny", vgg_weights=weights)
    assert "VGG perceptual loss on" in on.notes[0]
    assert on.train_step(_batch(on.config), torch.Generator().manual_seed(0))["loss_vgg"] > 0
    loss = VGGLoss(weights)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0 and loss(x, x.flip(3)).item() > 0
    assert not any(p.requires_grad for p in loss.parameters())

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(InputError, match="bad.pth: not a torch state dict"):
        spade = create_gan("spade", "tiny", vgg_weights=str(bad))
        spade.train_step(_batch(spade.config), torch.Generator())
    with pytest.raises(InputError, match="VGG19 weights file not found"):
        VGGLoss(tmp_path / "missing.pth")
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(InputError, match="not torchvision's VGG19 weights"):
        VGGLoss(bad)


def test_encode_maps_one_hot_and_boundary() -> None:
    labels = torch.tensor([[[1, 1, 1, 1], [1, 2, 2, 1], [1, 2, 7, 1], [0, 1, 1, 1]]])
    maps = encode_maps(labels, True)
    assert maps.shape == (1, 9, 4, 4)
    assert torch.equal(maps[:, :8].argmax(1), labels) and torch.equal(maps[:, :8].sum(1), torch.ones(1, 4, 4))
    edge = boundary_map(labels)[0, 0]
    expected = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.float)
    assert torch.equal(edge, expected)
    assert encode_maps(labels, False).shape[1] == 8
    with pytest.raises(ValueError, match="outside 0..7"):
        encode_maps(labels + 1, False)


def test_paired_flip_keeps_map_and_image_aligned() -> None:
    labels = _labels(3, 16)
    maps = encode_maps(labels, True)
    images = maps[:, :3] * 2 - 1  # an image that is a function of its map
    flipped_images, flipped_maps = paired_flip(images, maps, torch.Generator().manual_seed(0))
    assert torch.equal(flipped_images, flipped_maps[:, :3] * 2 - 1)
    moved = [not torch.equal(flipped_maps[i], maps[i]) for i in range(16)]
    assert 0 < sum(moved) < 16  # flips drawn per sample


def test_triplet_grid_places_map_real_and_fake() -> None:
    labels = np.zeros((4, 8, 8), dtype=np.uint8)
    labels[:, 2:6, 2:6] = 7
    real = np.full((4, 8, 8, 3), 10, dtype=np.uint8)
    fake = np.full((4, 8, 8, 3), 200, dtype=np.uint8)
    grid = triplet_grid(labels, real, fake, gap=2)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    np.testing.assert_array_equal(grid[0, 0], PALETTE[0])
    np.testing.assert_array_equal(grid[3, 3], PALETTE[7])
    np.testing.assert_array_equal(grid[0, 8 + 2], [10, 10, 10])
    np.testing.assert_array_equal(grid[0, 2 * (8 + 2)], [200, 200, 200])
    assert (grid == 255).all(axis=2).any()  # gaps
