"""A finished ``classify`` run as a tool for the other steps: its best checkpoint, reloaded.

Three steps of the paper lean on a trained classifier rather than on a test set: the GANs' domain FID
(penultimate-layer features), the best/worst samplers (the per-image cross-entropy of the intended class) and
the memorization audit (feature distances). They all load it here, with the run's own model settings and
input normalisation, so a feature means the same thing wherever it is computed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import InputError
from engine.train.config import ClassifyConfig, parse_config

BEST = Path("checkpoints") / "best.pt"


@dataclass
class TrainedClassifier:
    """The best checkpoint of one classify run, in eval mode on ``device``."""

    run_id: str
    config: ClassifyConfig
    model: torch.nn.Module
    mean: torch.Tensor  # (1, 3, 1, 1) on device
    std: torch.Tensor
    device: torch.device

    @property
    def res(self) -> int:
        return self.config.model.res

    def _input(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) at any size -> normalised float NCHW at the model's resolution (antialiased)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255
        if x.shape[-1] != self.res or x.shape[-2] != self.res:
            x = F.interpolate(x, size=(self.res, self.res), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def _batched(self, images: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor],
                 batch_size: int) -> np.ndarray:
        out = [fn(self._input(images[s:s + batch_size])).float().cpu()
               for s in range(0, len(images), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0,), dtype=np.float32)

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Penultimate-layer features (timm's pre-logits), float32 (N, D)."""
        m = self.model
        return self._batched(images, lambda x: m.forward_head(m.forward_features(x), pre_logits=True), batch_size)

    def logits(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, 2) logits (index 1 = melanoma)."""
        return self._batched(images, self.model, batch_size)

    def melanoma_prob(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.logits(images, batch_size)), 1)[:, 1].numpy()

    def cross_entropy(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Per-image cross-entropy of the intended class: the error the best/worst samplers rank by."""
        logits = torch.from_numpy(self.logits(images, batch_size))
        return F.cross_entropy(logits, torch.as_tensor(labels, dtype=torch.long), reduction="none").numpy()


def load_classifier(workspace: Path, run_id: str, device: str | torch.device = "cpu") -> TrainedClassifier:
    """The best checkpoint of classify run ``run_id`` (its folder under ``workspace``); InputError if it has none."""
    from engine.train.model import create_model, norm_stats

    run_dir = Path(workspace) / run_id
    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        raise InputError(f"{run_dir}: no readable run.json; is {run_id!r} a run of this workspace?") from None
    if meta.get("kind") != "classify":
        raise InputError(f"run {run_id}: is a {meta.get('kind')!r} run, not a classify run")
    if not (run_dir / BEST).is_file():
        raise InputError(f"run {run_id}: has no {BEST} (not finished, or pruned)")
    cfg = parse_config(meta["config"])
    model_cfg = cfg.model.model_copy(update={"pretrained": False})  # the checkpoint holds every weight
    model = create_model(model_cfg)
    model.load_state_dict(torch.load(run_dir / BEST, map_location="cpu", weights_only=True)["model"])
    dev = torch.device(device)
    model.to(dev).eval()
    mean, std = norm_stats(cfg.model, model)
    return TrainedClassifier(run_id, cfg, model, torch.tensor(mean, device=dev).view(1, 3, 1, 1),
                             torch.tensor(std, device=dev).view(1, 3, 1, 1), dev)
