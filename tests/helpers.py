"""Helpers the test files share: ganaug's CLI in-process, small data sets in the generic CSV layout, and the
``RunContext`` protocol in memory for tests that call a run kind's function directly."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from engine.errors import InputError


def cli(*args: str) -> tuple[int, str]:
    """Invoke ``ganaug ARGS`` in-process (offline); an InputError comes back as (2, its message) like the console
    script prints it, any other exception is raised (a crash is never mistaken for an exit code)."""
    from engine.cli import app

    os.environ["HF_HUB_OFFLINE"] = "1"
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, InputError):
        return 2, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def write_generic_csv(root: Path, items: Iterable[tuple[str, np.ndarray, int]]) -> Path:
    """``items`` = (file name, uint8 HxWx3 image, label) -> ``root`` with the PNGs and ``labels.csv``."""
    root.mkdir(parents=True)
    rows = []
    for name, image, label in items:
        Image.fromarray(image).save(root / name)
        rows.append((name, label))
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label"])
        w.writerows(rows)
    return root


# The RunContext protocol in memory: metrics into dicts, checkpoints through torch.save / a weights-only load like
# the worker, and a stop requested after a given number of progress calls (an interruption at a chosen point).
class FakeContext:
    """One run's context: its folder ``run_dir``, its ``workspace`` (default: the folder above) and ``config``."""

    def __init__(self, run_dir: Path, workspace: Path | None = None, config: dict[str, Any] | None = None,
                 stop_after: int | None = None) -> None:
        self.run_id = run_dir.name
        self.run_dir = run_dir
        self.workspace = workspace if workspace is not None else run_dir.parent
        self.config = config or {}
        self.label: str | None = None
        self.experiment: str | None = None
        self.seed = 0
        self.device = "cpu"
        self.log = logging.getLogger("test-run")
        self.series: dict[str, dict[int, float]] = {}
        self.progress_calls = 0
        self.stop_after = stop_after
        run_dir.mkdir(parents=True, exist_ok=True)

    def metric(self, name: str, value: float, step: int) -> None:
        self.series.setdefault(name, {})[step] = value

    def metrics(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.metric(k, v, step)

    def progress(self, done: int, total: int, desc: str = "") -> None:
        self.progress_calls += 1

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        torch.save(state, self.run_dir / "last.pt")

    def load_checkpoint(self) -> dict[str, Any] | None:
        path = self.run_dir / "last.pt"
        return torch.load(path, weights_only=True) if path.exists() else None

    def stop_requested(self) -> bool:
        return self.stop_after is not None and self.progress_calls >= self.stop_after
