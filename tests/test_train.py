"""The target classifier's pieces on tiny in-memory data: augmentation, TTA, monitor, training, resume."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import FakeContext

from engine.errors import InputError
from engine.train.augment import Augmenter, make_generator
from engine.train.classifier import ArraySet, Monitor, derive_seed, epoch_order, fit
from engine.train.config import AugmentConfig, ClassifyConfig, OptimConfig, parse_config
from engine.train.evaluate import predict_logits, tta_scores
from engine.train.model import create_model

RES = 32


def lesions(n: int, seed: int) -> ArraySet:
    """Learnable toy images: melanomas carry a dark blob in a random place, benign ones a light one."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(120, 180, size=(n, RES, RES, 3)).astype(np.uint8)
    for i, y in enumerate(labels):
        r, c = rng.integers(6, RES - 14, size=2)
        images[i, r:r + 10, c:c + 10] = 30 if y else 230
    return ArraySet(images, labels.astype(np.int64))


def tiny_model(seed: int = 0) -> torch.nn.Module:
    from engine.train.config import ModelConfig

    torch.manual_seed(seed)
    return create_model(ModelConfig(name="test_resnet", pretrained=False, res=RES))


def test_config_defaults_are_the_paper() -> None:
    cfg = parse_config({"data": {"format": "isic2019", "root": "/x"}})
    o = cfg.optim
    assert (o.lr, o.momentum, o.weight_decay, o.batch_size, o.max_epochs) == (1e-3, 0.9, 1e-3, 32, 100)
    assert (o.plateau_factor, o.plateau_patience, o.min_lr, o.early_stop_patience) == (0.1, 10, 1e-5, 22)
    assert (cfg.model.name, cfg.model.res, cfg.model.norm, cfg.tta.replicas) == ("inception_v4", 299, "imagenet", 50)
    a = cfg.augment
    # hue: the authors' code ran ColorJitter(hue=0.5*0.1) = +-0.05 (the one place where the code wins)
    assert (a.hflip, a.vflip, a.crop_scale, a.rotation, a.hue, a.brightness) == (True, True, (0.75, 1.0), 45, 0.05, 0)
    assert a.source_scale == 1
    assert parse_config(cfg.to_json()) == cfg


@pytest.mark.parametrize("raw, where", [
    ({"data": {"format": "isic2019", "root": "/x"}, "real_fraction": "3/2"}, "real_fraction"),
    ({"data": {"format": "isic2019", "root": "/x"}, "optim": {"monitor": "test_auc"}}, "optim.monitor"),
    ({"data": {"format": "nope", "root": "/x"}}, "data.format"),
    ({"data": {"format": "isic2019", "root": "/x"}, "tests": [{"format": "isic2019", "root": "/y"}]}, "duplicated"),
])
def test_config_errors_are_one_line(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(InputError, match=where) as err:
        parse_config(raw)
    assert "\n" not in str(err.value)


def test_augmentation_parameters_differ_per_image() -> None:
    aug = Augmenter(AugmentConfig(preset="code"))
    p = aug.sample(16, RES, RES, make_generator("cpu", 0))
    assert len({tuple(t.flatten().tolist()) for t in p.theta}) == 16
    for factor in (p.brightness, p.contrast, p.saturation, p.hue):
        assert len(set(factor.tolist())) == 16
    # the same picture repeated gives 16 different augmented images
    batch = torch.from_numpy(np.repeat(lesions(1, 0).images, 16, axis=0))
    out = aug(batch, make_generator("cpu", 1))
    assert out.shape == (16, 3, RES, RES)
    assert len({tuple(o.flatten()[:200].tolist()) for o in out}) == 16


def test_augmentation_ranges_follow_the_paper() -> None:
    aug = Augmenter(AugmentConfig(preset="paper"))
    p = aug.sample(4000, RES, RES, make_generator("cpu", 3))
    area = torch.linalg.det(p.theta[:, :, :2]).abs()  # crop area fraction (rotation/flip keep |det|)
    assert area.min() >= 0.75 - 1e-5 and area.max() <= 1 + 1e-5
    h = p.theta[:, 1, :2].norm(dim=1)  # row norms are the crop's half-extents: row 1 = h * (sin, cos)
    angle = torch.rad2deg(torch.asin((p.theta[:, 1, 0].abs() / h).clamp(max=1)))
    assert angle.abs().max() <= 45 + 1e-3 and angle.abs().max() > 40
    assert p.hue.abs().max() <= 0.05 and p.hue.abs().max() > 0.049
    assert torch.all(p.brightness == 1)


def test_paper_hue_default_shifts_each_image_by_at_most_18_degrees() -> None:
    """Measured on the pixels: a saturated colour's hue moves by at most 0.05 of the circle, and nearly that."""
    import colorsys

    aug = Augmenter(AugmentConfig(preset="paper", hflip=False, vflip=False, crop_scale=(1.0, 1.0), rotation=0),
                    mean=(0, 0, 0), std=(1, 1, 1))
    colour = (200, 60, 30)
    batch = torch.tensor(colour, dtype=torch.uint8).view(1, 1, 1, 3).expand(2000, 8, 8, 3).contiguous()
    out = aug(batch, make_generator("cpu", 4))[:, :, 4, 4]
    h0 = colorsys.rgb_to_hsv(*(c / 255 for c in colour))[0]
    shifts = torch.tensor([(colorsys.rgb_to_hsv(*px.tolist())[0] - h0 + 0.5) % 1 - 0.5 for px in out])
    assert shifts.abs().max() <= 0.05 + 1e-4 and shifts.abs().max() > 0.045
    assert shifts.min() < -0.04 and shifts.max() > 0.04  # both directions


def test_hue_shift_matches_torchvision_per_image() -> None:
    import torchvision.transforms.v2.functional as TF

    from engine.train.augment import shift_hue

    x = torch.rand(6, 3, 16, 16)
    x[0, :, :4] = 0.5  # grey pixels: no hue
    x[1, 0], x[1, 1] = 0.9, 0.9  # ties between channels
    shift = torch.tensor([0.1, -0.1, 0.5, -0.5, 0.0, 0.03])
    expected = torch.stack([TF.adjust_hue(img, float(s)) for img, s in zip(x, shift, strict=True)])
    torch.testing.assert_close(shift_hue(x, shift), expected, atol=2e-6, rtol=0)


def test_augmentation_is_reproducible_from_the_generator() -> None:
    aug = Augmenter(AugmentConfig())
    batch = torch.from_numpy(lesions(8, 0).images)
    a = aug(batch, make_generator("cpu", 5))
    assert torch.equal(a, aug(batch, make_generator("cpu", 5)))
    assert not torch.equal(a, aug(batch, make_generator("cpu", 6)))


def test_tta_with_one_replica_and_no_augmentation_is_plain_inference() -> None:
    model = tiny_model().eval()
    data = lesions(20, 1)
    aug = Augmenter(AugmentConfig(preset="none"))
    plain = torch.softmax(predict_logits(model, data.images, aug, batch_size=7), 1)[:, 1].numpy()
    tta = tta_scores(model, data.images, aug, replicas=1, batch_size=6, gen=make_generator("cpu", 0))
    np.testing.assert_allclose(tta, plain, rtol=1e-5, atol=1e-6)


def test_tta_averages_replicas_of_each_image() -> None:
    model = tiny_model().eval()
    data = lesions(5, 2)
    aug = Augmenter(AugmentConfig())
    a = tta_scores(model, data.images, aug, replicas=7, batch_size=35, gen=make_generator("cpu", 0))
    x = aug(torch.from_numpy(np.repeat(data.images, 7, axis=0)), make_generator("cpu", 0))
    with torch.no_grad():
        ref = torch.softmax(model(x), 1)[:, 1].view(5, 7).mean(1).numpy()
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-6)
    # blocks that split an image's replicas over several forward passes still give one mean per image
    none = Augmenter(AugmentConfig(preset="none"))
    split = tta_scores(model, data.images, none, replicas=7, batch_size=4, gen=make_generator("cpu", 0))
    plain = tta_scores(model, data.images, none, replicas=1, batch_size=64, gen=make_generator("cpu", 0))
    np.testing.assert_allclose(split, plain, rtol=1e-5, atol=1e-6)
    threaded = tta_scores(model, data.images, aug, replicas=7, batch_size=4, gen=make_generator("cpu", 0),
                          prefetch=2)
    inline = tta_scores(model, data.images, aug, replicas=7, batch_size=4, gen=make_generator("cpu", 0),
                        prefetch=0)
    np.testing.assert_array_equal(threaded, inline)


def test_monitor_plateau_and_early_stopping_on_a_scripted_curve() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1e-3)
    monitor = Monitor(opt, OptimConfig(plateau_patience=2, early_stop_patience=5, min_lr=1e-5))
    curve = [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.9, 0.8, 0.8, 0.8]
    lrs, stops, improved = [], [], []
    for v in curve:
        imp, stop = monitor.step(v)
        improved.append(imp)
        stops.append(stop)
        lrs.append(opt.param_groups[0]["lr"])
    assert improved == [True, True, True] + [False] * 7
    # 3 bad epochs (> patience 2) after the best at epoch 3 -> /10 at epoch 6, again 3 epochs later
    assert lrs[:5] == [1e-3] * 5 and lrs[5] == pytest.approx(1e-4) and lrs[8] == pytest.approx(1e-5)
    assert stops.index(True) == 7  # 5 epochs without improvement after epoch 3
    # AUC is maximised
    monitor = Monitor(torch.optim.SGD([param], lr=1e-3), OptimConfig(monitor="val_auc", early_stop_patience=2))
    assert [monitor.step(v) for v in (0.6, 0.7, 0.65, 0.69)] == [(True, False), (True, False), (False, False),
                                                                  (False, True)]


@pytest.mark.parametrize("monitor, base, better", [("val_loss", 1.0, -1.0), ("val_auc", 0.8, 1.0)])
def test_one_improvement_rule_for_plateau_early_stopping_and_best(monitor: str, base: float, better: float) -> None:
    """A gain below the scheduler's relative threshold (1e-4) resets neither counter nor moves the best."""
    def run(gains: list[float]) -> tuple[list[bool], list[float], list[bool]]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        mon = Monitor(opt, OptimConfig(monitor=monitor, plateau_patience=2, early_stop_patience=4))
        improved, lrs, stops = [], [], []
        for gain in gains:
            imp, stop = mon.step(base + better * gain)
            improved.append(imp)
            lrs.append(opt.param_groups[0]["lr"])
            stops.append(stop)
        return improved, lrs, stops

    flat = [0.0] * 6
    tiny = [0.0, 1e-6, 2e-6, 3e-6, 4e-6, 5e-6]  # each epoch strictly better than the last, by 1e-6
    assert run(tiny) == run(flat)
    improved, lrs, stops = run(tiny)
    assert improved == [True] + [False] * 5  # the best checkpoint stays at epoch 1
    assert lrs[3] == pytest.approx(1e-4) and stops.index(True) == 4  # both counters ran on
    real_gain = [0.0, 0.0, 0.0, 0.01, 0.0, 0.0]  # 1 % of the value: resets both
    improved, lrs, stops = run(real_gain)
    assert improved == [True, False, False, True, False, False] and lrs == [1e-3] * 6 and not any(stops)


def test_balanced_sampler_balances_classes() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    order = epoch_order(labels, balanced=True, rng=np.random.default_rng(0))
    assert len(order) == 100 and 0.35 < labels[order].mean() < 0.65
    assert sorted(epoch_order(labels, balanced=False, rng=np.random.default_rng(0))) == list(range(100))


def _fit(tmp_path: Path, name: str, epochs: int, stop_after: int | None = None, prefetch: int | None = None,
         **optim: Any) -> tuple[Any, ...]:
    run_dir = tmp_path / name
    run_dir.mkdir(exist_ok=True)
    ctx = FakeContext(run_dir, stop_after=stop_after)
    model = tiny_model(derive_seed(0, 0))
    cfg = OptimConfig(lr=0.05, batch_size=16, max_epochs=epochs, **optim)
    result = fit(ctx, model, lesions(96, 10), lesions(40, 11), cfg, Augmenter(AugmentConfig()), seed=7,
                 best_path=run_dir / "checkpoints" / "best.pt", prefetch=prefetch)
    return result, model, ctx


def test_prefetch_thread_trains_exactly_like_the_inline_loop(tmp_path: Path) -> None:
    """The CUDA path's background thread must not change a single batch (own generator, ordered queue)."""
    inline, m_inline, _ = _fit(tmp_path, "inline", epochs=2, prefetch=0)
    threaded, m_threaded, _ = _fit(tmp_path, "threaded", epochs=2, prefetch=2)
    for a, b in zip(m_inline.state_dict().values(), m_threaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # and a graceful stop mid-epoch shuts the thread down cleanly
    stopped, _, _ = _fit(tmp_path, "stopped", epochs=2, stop_after=3, prefetch=2)
    assert stopped.interrupted and stopped.epochs == 0


def test_prefetcher_surfaces_errors_of_the_preparing_thread() -> None:
    from engine.train.pipeline import Prefetcher

    def prepare(i: int) -> tuple[torch.Tensor]:
        if i == 3:
            raise InputError("corrupt image 3")
        return (torch.tensor([i]),)

    seen = []
    with pytest.raises(InputError, match="corrupt image 3"), Prefetcher(range(10), prepare, torch.device("cpu"),
                                                                      depth=2) as stream:
        seen.extend(int(x) for (x,) in stream)
    assert seen == [0, 1, 2]


def test_fit_learns_and_records_metrics(tmp_path: Path) -> None:
    result, _, ctx = _fit(tmp_path, "a", epochs=6)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.val_auc > 0.7
    assert set(ctx.series) == {"train_loss", "val_loss", "val_auc", "lr", "images_per_s"}
    assert sorted(ctx.series["val_auc"]) == list(range(1, 7))
    assert result.epochs == 6 and 1 <= result.best_epoch <= 6 and not result.interrupted
    best = torch.load(tmp_path / "a" / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == result.best_epoch


def test_interrupted_and_resumed_fit_equals_uninterrupted(tmp_path: Path) -> None:
    ref, ref_model, _ = _fit(tmp_path, "ref", epochs=3)
    # 6 batches per epoch: stop in the middle of epoch 2
    first, _, _ = _fit(tmp_path, "resumed", epochs=3, stop_after=9)
    assert first.interrupted and first.epochs == 1
    second, model, _ = _fit(tmp_path, "resumed", epochs=3)
    assert not second.interrupted and second.epochs == 3
    for (k, a), b in zip(ref_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [h["val_auc"] for h in second.history] == [h["val_auc"] for h in ref.history]
    assert second.best_epoch == ref.best_epoch


def test_early_stopping_ends_training(tmp_path: Path) -> None:
    result, _, _ = _fit(tmp_path, "es", epochs=30, early_stop_patience=1, monitor="val_auc")
    assert result.stopped_early and result.epochs < 30
    assert result.epochs == result.best_epoch + 1


def test_missing_weights_file_says_how_to_fix(tmp_path: Path) -> None:
    from engine.train.config import ModelConfig

    with pytest.raises(InputError, match="--weights FILE.*--no-pretrained"):
        create_model(ModelConfig(name="test_resnet", weights=str(tmp_path / "missing.pth")))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot load"):
        create_model(ModelConfig(name="test_resnet", weights=str(garbage)))
    with pytest.raises(InputError, match="unknown timm model"):
        create_model(ModelConfig(name="no_such_net", pretrained=False))


def test_local_weights_file_is_loaded_with_a_new_head(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(1)
    imagenet = timm.create_model("test_resnet", num_classes=1000)
    path = tmp_path / "w.pth"
    torch.save(imagenet.state_dict(), path)
    from engine.train.config import ModelConfig

    model = create_model(ModelConfig(name="test_resnet", weights=str(path)))
    assert model.get_classifier().out_features == 2
    body = {k: v for k, v in imagenet.state_dict().items() if not k.startswith("fc.")}
    for k, v in body.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_classify_config_is_frozen_and_complete() -> None:
    cfg = ClassifyConfig.model_validate({"data": {"format": "csv", "root": "/x"}, "real_fraction": 0.25})
    assert str(cfg.real_fraction) == "1/4"
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.seed = 3  # type: ignore[misc]


def test_protocol_diff_ignores_what_a_configuration_may_vary() -> None:
    from engine.train import protocol_diff

    base = {"data": {"format": "isic2019", "root": "/d"},
            "tests": [{"format": "isic2020", "root": "/e"}, {"format": "dermofit", "root": "/f"}]}
    allowed = {**base, "real_fraction": "1/4", "replicate": 3, "synthetic": [{"pool": "p", "ids": "/i.csv"}],
               "device": "cpu", "amp": False, "compile": True, "tta": {"batch_size": 64},
               "tests": list(reversed(base["tests"]))}  # the order of the test sets does not matter
    assert protocol_diff(base, allowed) == []
    assert protocol_diff(base, parse_config(base)) == []  # a validated config and its raw form agree
    forbidden = {**allowed, "optim": {"lr": 0.01}, "augment": {"hue": 0.1}, "tta": {"replicas": 10},
                 "seed": 1, "data": {"format": "isic2019", "root": "/d", "split_file": "/paper.csv"},
                 "tests": [{"format": "isic2020", "root": "/e", "subset": "/s.csv"}]}
    assert protocol_diff(base, forbidden) == ["augment.hue", "data.split_file", "optim.lr", "seed",
                                              "tests.dermofit", "tests.isic20.subset", "tta.replicas"]


def test_crop_from_a_larger_cached_copy_outputs_the_model_resolution() -> None:
    """``augment.source_scale``: the cache holds 1.25 R; augmented and plain batches both come out at R."""
    import torch.nn.functional as F

    big = torch.randint(0, 256, (4, 40, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cfg = AugmentConfig(source_scale=1.25)
    aug = Augmenter(cfg, mean=(0, 0, 0), std=(1, 1, 1), out_res=RES)
    assert aug(big, make_generator("cpu", 0)).shape == (4, 3, RES, RES)
    plain = aug(big, None, augment=False)
    expected = F.interpolate(big.permute(0, 3, 1, 2).float() / 255, size=(RES, RES), mode="bilinear",
                             antialias=True, align_corners=False)
    torch.testing.assert_close(plain, expected)
    # at scale 1 (no out_res) the input size is kept, as before
    assert Augmenter(AugmentConfig(), out_res=None)(big, make_generator("cpu", 0)).shape == (4, 3, 40, 40)


def test_cli_test_and_synthetic_specs(tmp_path: Path) -> None:
    from engine.cli.train import _synthetic, _test_sets

    root, subset, ids = tmp_path / "isic 2020@x", tmp_path / "subset.csv", tmp_path / "ids.csv"
    for p in (root, subset, ids):
        p.mkdir() if p is root else p.write_text("image\n")
    assert _test_sets([f"isic2020={root}@{subset}", f"extra:csv={root}"]) == [
        {"name": "", "format": "isic2020", "root": str(root), "subset": str(subset)},  # the subset after the LAST @
        {"name": "extra", "format": "csv", "root": str(root), "subset": None}]
    with pytest.raises(InputError, match="@SUBSET.csv"):
        _test_sets([f"isic2020={root}@"])
    assert _synthetic([str(ids), f"pool:run-1@{ids}", "pool:run-2"]) == [
        {"csv": str(ids)}, {"pool": "run-1", "ids": str(ids)}, {"pool": "run-2", "ids": None}]
    with pytest.raises(InputError, match="pool:RUN"):
        _synthetic(["pool:"])


def test_a_large_isic2020_test_set_without_subset_warns(tmp_path: Path, write_image: Any,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    import engine.train.kind as kind
    from engine.train.config import TestSetConfig

    root = tmp_path / "isic2020"
    lines = ["image_name,patient_id,diagnosis,target"]
    for i in range(6):
        write_image(root / "train" / f"ISIC_{i:07d}.jpg", seed=i)
        lines.append(f"ISIC_{i:07d},P{i},{'melanoma' if i % 2 else 'nevus'},{i % 2}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "subset.csv").write_text("image\nISIC_0000000\nISIC_0000001\n")
    monkeypatch.setattr(kind, "ISIC2020_SUBSET_HINT", 5)
    log = logging.getLogger("test-isic20")
    with caplog.at_level(logging.WARNING, logger="test-isic20"):
        assert kind._test_set(TestSetConfig(format="isic2020", root=str(root)), log).n == 6
        assert "no subset; the paper scored a 1,743-image subset" in caplog.text
        caplog.clear()
        sub = kind._test_set(TestSetConfig(format="isic2020", root=str(root), subset=str(tmp_path / "subset.csv")), log)
        assert [r.image_id for r in sub.records] == ["ISIC_0000000", "ISIC_0000001"] and caplog.text == ""
