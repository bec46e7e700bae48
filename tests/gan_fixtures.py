"""Shared by the GAN run tests: a toy lesion data set, a tiny classify run whose features the metrics use, the
resume-equality check, and the in-memory run context (``fake_context``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from helpers import FakeContext, cli, write_generic_csv

RES = 32


def write_lesions(root: Path, n: int, seed: int) -> Path:
    """Generic-CSV set of toy lesions: benign = small light-brown disc, melanoma = large dark blotch."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:RES, 0:RES]

    def lesion(label: int) -> np.ndarray:
        img = np.empty((RES, RES, 3))
        img[:] = [220, 180, 160] + rng.normal(0, 6, size=3)
        cy, cx = rng.uniform(12, 20, size=2)
        radius = rng.uniform(9, 12) if label else rng.uniform(4, 7)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        img[inside] = [60, 35, 40] if label else [150, 100, 70]
        img += rng.normal(0, 4, size=img.shape)
        return img.clip(0, 255).astype(np.uint8)

    labels = [int(i % 3 == 0) for i in range(n)]
    return write_generic_csv(root, ((f"l{seed}_{i:03d}.png", lesion(y), y) for i, y in enumerate(labels)))


def train_classifier(ws: Path, data: Path, fmt: str = "csv") -> str:
    """A short classify run (test_resnet, random init): the domain feature extractor of the GAN metrics."""
    code, out = cli("train", "--data", str(data), "--format", fmt, "--model", "test_resnet", "--res", str(RES),
                    "--no-pretrained", "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--tta", "1",
                    "--workspace", str(ws), "--json")
    assert code == 0, out
    return json.loads(out)["run_id"]


def assert_resume_equals_uninterrupted(base: Path, workspace: Path, config: dict[str, Any],
                                       stop_after: int) -> dict[str, FakeContext]:
    """Train ``config`` once uninterrupted (``ref``) and once stopped after ``stop_after`` progress calls
    (``stopped``), then resumed (``resumed``): both must end with the same checkpoints, choice, generator weights
    and loss curve. Returns the three contexts for the caller's own checks."""
    from engine.gans.kind import run_gan_train

    ref = FakeContext(base / "ref", workspace, config)
    run_gan_train(ref)
    stopped = FakeContext(base / "resumed", workspace, config, stop_after=stop_after)
    run_gan_train(stopped)
    assert not (stopped.run_dir / "result.json").exists()
    resumed = FakeContext(base / "resumed", workspace, config)
    run_gan_train(resumed)
    a = json.loads((ref.run_dir / "result.json").read_text())
    b = json.loads((resumed.run_dir / "result.json").read_text())
    assert a["checkpoints"] == b["checkpoints"] and a["selected"] == b["selected"]
    for entry in a["checkpoints"]:
        snap_a = torch.load(ref.run_dir / entry["path"], weights_only=True)["generator"]
        snap_b = torch.load(resumed.run_dir / entry["path"], weights_only=True)["generator"]
        assert snap_a.keys() == snap_b.keys()
        for key, value in snap_a.items():
            assert torch.equal(value, snap_b[key]), key
    for name, series in ref.series.items():  # the loss curve too: stopped + resumed = uninterrupted
        assert {**stopped.series.get(name, {}), **resumed.series[name]} == series, name
    return {"ref": ref, "stopped": stopped, "resumed": resumed}
