"""Shared by the GAN run tests: a toy lesion data set and a tiny classify run whose features the metrics use."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import InputError

RES = 32


def write_lesions(root: Path, n: int, seed: int) -> Path:
    """Generic-CSV set of toy lesions: benign = small light-brown disc, melanoma = large dark blotch."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:RES, 0:RES]
    rows = []
    for i in range(n):
        label = int(i % 3 == 0)
        img = np.empty((RES, RES, 3))
        img[:] = [220, 180, 160] + rng.normal(0, 6, size=3)
        cy, cx = rng.uniform(12, 20, size=2)
        radius = rng.uniform(9, 12) if label else rng.uniform(4, 7)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        img[inside] = [60, 35, 40] if label else [150, 100, 70]
        img += rng.normal(0, 4, size=img.shape)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / f"l{seed}_{i:03d}.png")
        rows.append((f"l{seed}_{i:03d}.png", label))
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label"])
        w.writerows(rows)
    return root


def cli(*args: str) -> tuple[int, str]:
    """Invoke ``ganaug`` in-process; an InputError is (2, its message) like the console script prints it."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, InputError):
        return 2, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def train_classifier(ws: Path, data: Path, fmt: str = "csv") -> str:
    """A short classify run (test_resnet, random init): the domain feature extractor of the GAN metrics."""
    code, out = cli("train", "--data", str(data), "--format", fmt, "--model", "test_resnet", "--res", str(RES),
                    "--no-pretrained", "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--tta", "1",
                    "--workspace", str(ws), "--json")
    assert code == 0, out
    return json.loads(out)["run_id"]


class FakeContext:
    """The RunContext protocol in memory (checkpoints through torch.save / weights-only load, like the worker)."""

    def __init__(self, run_dir: Path, workspace: Path, config: dict[str, Any], stop_after: int | None = None) -> None:
        self.run_id = run_dir.name
        self.run_dir = run_dir
        self.workspace = workspace
        self.config = config
        self.seed = 0
        self.device = "cpu"
        self.log = logging.getLogger("test-gans")
        self.series: dict[str, dict[int, float]] = {}
        self.steps = 0
        self.stop_after = stop_after
        run_dir.mkdir(parents=True, exist_ok=True)

    def metric(self, name: str, value: float, step: int) -> None:
        self.series.setdefault(name, {})[step] = value

    def metrics(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.metric(k, v, step)

    def progress(self, done: int, total: int, desc: str = "") -> None:
        self.steps += 1

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        torch.save(state, self.run_dir / "last.pt")

    def load_checkpoint(self) -> dict[str, Any] | None:
        path = self.run_dir / "last.pt"
        return torch.load(path, weights_only=True) if path.exists() else None

    def stop_requested(self) -> bool:
        return self.stop_after is not None and self.steps >= self.stop_after
