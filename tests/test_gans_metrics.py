"""FID, precision/recall and the paper's checkpoint rule on constructed feature sets and scripted curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import InputError
from engine.gans.metrics import (
    Features,
    default_margin,
    feature_extractor,
    frechet_distance,
    inception_extractor,
    precision_recall,
    select_checkpoint,
)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_added_noise() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(600, 16)) @ rng.normal(size=(16, 16))
    assert frechet_distance(real, real) == pytest.approx(0, abs=1e-6)
    noise = rng.normal(size=real.shape)
    fids = [frechet_distance(real, real + s * noise) for s in (0.1, 0.3, 1.0, 3.0)]
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False))
    # the closed form for two Gaussians with diagonal covariance: |mu|^2 + sum (s1 - s2)^2
    a = rng.normal(size=(200_000, 2)) * [1.0, 2.0]
    b = rng.normal(size=(200_000, 2)) * [3.0, 2.0] + [1.0, 0.0]
    assert frechet_distance(a, b) == pytest.approx(1 + (1 - 3) ** 2, rel=0.02)


def test_precision_recall_see_mode_dropping() -> None:
    rng = np.random.default_rng(1)
    modes = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    real = np.concatenate([m + rng.normal(size=(150, 2)) for m in modes])
    full = np.concatenate([m + rng.normal(size=(150, 2)) for m in modes])
    dropped = np.concatenate([m + rng.normal(size=(300, 2)) for m in modes[:2]])  # two of four modes
    off = full + 30  # nowhere near the reals
    p_full, r_full = precision_recall(real, full)
    p_drop, r_drop = precision_recall(real, dropped)
    p_off, r_off = precision_recall(real, off)
    assert p_full > 0.9 and r_full > 0.9
    assert p_drop > 0.9 and 0.4 < r_drop < 0.6  # realistic but half the distribution is missing
    assert p_off == 0 and r_off == 0


def test_checkpoint_rule_prefers_the_latest_checkpoint_within_the_margin() -> None:
    curve = [(2, 40.0), (4, 20.0), (6, 15.1), (8, 15.0), (10, 15.25), (12, 15.31), (14, 18.0)]
    kimg, rule = select_checkpoint(curve, 0.3, relative=False)
    assert kimg == 10  # 15.25 is within 0.3 of the best 15.0, 15.31 is not, later ones are worse
    assert "15 at kimg 8" in rule and "kimg 10" in rule
    assert select_checkpoint(curve, 0.0, relative=False)[0] == 8  # margin 0: the best itself
    assert select_checkpoint(curve, 0.25, relative=False)[0] == 8  # a difference of exactly the margin is out
    # relative margin (domain features): 1 % of 15.0 = 0.15, 2 % = 0.3, 3 % = 0.45
    assert select_checkpoint(curve, 0.01, relative=True)[0] == 8
    assert select_checkpoint(curve, 0.02, relative=True)[0] == 10
    assert select_checkpoint(curve, 0.03, relative=True)[0] == 12
    # ties: the later of two equal best values; NaN checkpoints are skipped
    assert select_checkpoint([(1, 5.0), (2, 5.0), (3, float("nan"))], 0.0, relative=False)[0] == 2
    assert default_margin("inception") == (0.3, False) and default_margin("domain:x") == (0.01, True)


def test_domain_features_are_named_apart_from_inception_fid() -> None:
    domain = Features("domain:abc", lambda x: x.reshape(len(x), -1).astype(np.float32))
    inception = Features("inception", domain.extract)
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    assert set(domain.scores(real, fake)) == {"fid_domain", "precision_domain", "recall_domain"}
    assert set(inception.scores(real, fake)) == {"fid", "precision", "recall"}


def test_metrics_without_a_feature_source_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--features RUN .* or --fid-weights FILE"):
        feature_extractor(workspace=tmp_path)
    with pytest.raises(InputError, match="no readable run.json"):
        feature_extractor(workspace=tmp_path, features="nope")


def _random_inception_weights(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A weights file of the right layout (random values: only the loading path is under test here)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(dict(net.state_dict()), path)
    monkeypatch.undo()


def test_inception_weights_load_from_a_local_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="not found"):
        inception_extractor(tmp_path / "missing.pth")
    pickled = tmp_path / "evil.pth"
    torch.save({"x": object()}, pickled)
    with pytest.raises(InputError, match="not a plain weights file"):
        inception_extractor(pickled)
    weights = tmp_path / "inception.pth"
    _random_inception_weights(weights, monkeypatch)
    extract = inception_extractor(weights)
    images = np.random.default_rng(0).integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8)
    feats = extract(images)
    assert feats.shape == (1, 2048) and np.isfinite(feats).all()
