"""The ``RunContext`` protocol in memory, for tests that call a run kind's function directly (classify's fit,
gan-train, gan-pool): metrics into dicts, checkpoints through torch.save / a weights-only load like the
worker, and a stop requested after a given number of progress calls (an interruption at a chosen point)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch


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
