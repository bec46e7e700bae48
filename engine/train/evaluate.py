"""Scoring: plain inference (validation) and test-time augmentation (the paper: mean melanoma probability
over 50 augmented replicas of each test image), both as batched device work.

TTA walks the flat (image, replica) index space in blocks of ``batch_size``: each block loads the few
images it touches once, repeats them on the device, augments every copy with its own parameters, runs one
forward pass and scatter-adds the probabilities per image. That is N*R/batch forward passes at full batch
size, never R passes over a data loader.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from engine.fsutil import atomic_write_text
from engine.train.augment import Augmenter
from engine.train.pipeline import Prefetcher, host_batch


def forward(model: torch.nn.Module, x: torch.Tensor, amp: bool) -> torch.Tensor:
    """Logits in float32; bf16 autocast on CUDA when ``amp``; channels_last on CUDA."""
    if x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp and x.device.type == "cuda"):
        return model(x).float()


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: np.ndarray, augmenter: Augmenter, batch_size: int,
                   amp: bool = True) -> torch.Tensor:
    """(N, 2) logits of the un-augmented images (validation: deterministic, cheap every epoch)."""
    model.eval()
    dev = augmenter.device
    pin = dev.type == "cuda"
    jobs = (np.arange(s, min(s + batch_size, len(images))) for s in range(0, len(images), batch_size))

    def prepare(index: np.ndarray) -> tuple[torch.Tensor]:
        return (augmenter(host_batch(images, index, pin), None, augment=False),)

    with Prefetcher(jobs, prepare, dev) as batches:
        out = [forward(model, x, amp) for (x,) in batches]
    return torch.cat(out) if out else torch.empty(0, 2, device=dev)


def _tta_blocks(n: int, replicas: int, batch_size: int) -> Iterator[tuple[int, int]]:
    total = n * replicas
    for start in range(0, total, batch_size):
        yield start, min(start + batch_size, total)


@torch.no_grad()
def tta_scores(model: torch.nn.Module, images: np.ndarray, augmenter: Augmenter, replicas: int,
               batch_size: int, gen: torch.Generator, amp: bool = True,
               progress: Callable[[int, int], None] | None = None, prefetch: int | None = None) -> np.ndarray:
    """Mean melanoma probability over ``replicas`` independently augmented copies of each image.

    ``progress(done, total)`` is called after each forward pass (done/total in image x replica slots).
    """
    model.eval()
    dev = augmenter.device
    pin = dev.type == "cuda"

    def prepare(block: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        flat = torch.arange(*block, device=dev)
        owner = flat // replicas  # image index of each (image, replica) slot
        first, last = block[0] // replicas, (block[1] - 1) // replicas
        uint8 = host_batch(images, np.arange(first, last + 1), pin).to(dev, non_blocking=True)
        return augmenter(uint8[owner - first], gen), owner

    sums = torch.zeros(len(images), device=dev)
    with Prefetcher(_tta_blocks(len(images), replicas, batch_size), prepare, dev, prefetch) as batches:
        done, total = 0, len(images) * replicas
        for x, owner in batches:
            prob = torch.softmax(forward(model, x, amp), dim=1)[:, 1]
            sums.index_add_(0, owner, prob)
            done += len(owner)
            if progress is not None:
                progress(done, total)
    return (sums / replicas).cpu().numpy().astype(np.float64)


@dataclass
class TestScores:
    """The scores of one test set, in the order of its records."""

    name: str
    images: list[str]
    labels: np.ndarray
    scores: np.ndarray

    def auc(self) -> float:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(self.labels, self.scores))


def write_predictions(path: str, results: list[TestScores]) -> None:
    """``predictions.csv``: ``test_set,image,label,score``, one row per test image per test set."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["test_set", "image", "label", "score"])
    for res in results:
        for image, label, score in zip(res.images, res.labels.tolist(), res.scores.tolist(), strict=True):
            writer.writerow([res.name, image, int(label), repr(float(score))])
    atomic_write_text(path, buf.getvalue())
