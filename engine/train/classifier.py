"""The fine-tuning loop of the paper: SGD, LR /10 on validation plateau, early stopping, best checkpoint.

Reproducibility and resume: every source of randomness of epoch e (shuffle order, augmentation
parameters, the global torch RNG used by dropout) is seeded from (run seed, e); the model's init is seeded
from the run seed. A checkpoint is written through the run context at the end of every epoch (model,
optimiser, scheduler, early-stop state, RNG states, history). A graceful stop mid-epoch drops the partial
epoch and returns; the resumed run repeats that epoch from its end-of-previous-epoch checkpoint with the
same seeds, so an interrupted+resumed CPU run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.fsutil import atomic_path
from engine.runner.kinds import RunContext
from engine.train.augment import Augmenter, make_generator
from engine.train.config import OptimConfig
from engine.train.evaluate import forward, predict_logits
from engine.train.pipeline import Prefetcher, host_batch


class RowView:
    """Selected rows of one or more memory-mapped (N_i, H, W, 3) arrays, gathered only per batch.

    The cache is loaded once per split (one shared file), and each run's real subset (plus the synthetic
    set) is a list of row numbers into it: no per-run copy of the pixels on disk or in memory.
    """

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        shapes = {a.shape[1:] for a, _ in parts}
        if len(shapes) != 1:
            raise ValueError(f"all parts need the same image shape, got {shapes}")
        self._arrays = [a for a, _ in parts]
        self._source = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(parts)])
        self._row = np.concatenate([np.asarray(r, dtype=np.int64) for _, r in parts])
        self.shape = (len(self._row), *shapes.pop())

    def __len__(self) -> int:
        return len(self._row)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)
        for i, arr in enumerate(self._arrays):
            mask = self._source[index] == i
            if mask.any():
                out[mask] = arr[self._row[index[mask]]]
        return out


@dataclass
class ArraySet:
    """Decoded images (N, H, W, 3) uint8 (an array, a memory map or a RowView) and labels (N,) (1 = melanoma)."""

    images: np.ndarray | RowView
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integer parts (numpy's SeedSequence: well mixed, stable across versions)."""
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


class Monitor:
    """LR plateau + early stopping + best-checkpoint choice, all driven by ONE validation metric and ONE rule.

    The LR schedule is torch's ReduceLROnPlateau (factor, patience, min_lr). An epoch "improves" by the
    scheduler's own rule: it beats the best so far by more than the relative threshold 1e-4. Early stopping
    and the best checkpoint use that same rule, so a tiny gain (below the threshold) resets no counter at
    all, rather than early stopping's counter alone. Early stopping fires after ``early_stop_patience``
    epochs without improvement.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> None:
        self.mode = "min" if cfg.monitor == "val_loss" else "max"
        self.patience = cfg.early_stop_patience
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=self.mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience,
            min_lr=cfg.min_lr)
        self.bad_epochs = 0

    @property
    def best(self) -> float:
        """The best value under the shared rule (the scheduler's)."""
        return float(self.scheduler.best)

    def step(self, value: float) -> tuple[bool, bool]:
        """Feed one epoch's metric; returns (improved, stop)."""
        before = self.scheduler.best
        self.scheduler.step(value)
        improved = self.scheduler.best != before  # the scheduler moves its best exactly when it sees a gain
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return improved, self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict(), "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self.bad_epochs = state["bad_epochs"]


@dataclass
class FitResult:
    best_epoch: int  # 1-based; 0 if no epoch finished
    val_auc: float  # validation AUC at the best epoch
    val_loss: float
    epochs: int  # epochs trained in total (over all attempts)
    stopped_early: bool
    interrupted: bool  # a graceful stop was requested: the run must return without results
    train_s: float
    images_per_s: float  # training throughput, mean over epochs
    history: list[dict[str, float]] = field(default_factory=list)


def _rng_state() -> dict[str, Any]:
    """All global RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                        has_gauss, gauss), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_order(labels: np.ndarray, balanced: bool, rng: np.random.Generator) -> np.ndarray:
    """A shuffled epoch (the paper), or the public code's class-balanced draw with replacement."""
    n = len(labels)
    if not balanced:
        return rng.permutation(n)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    weights = 1.0 / counts[labels]
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum())


def _val_metrics(model: torch.nn.Module, val: ArraySet, augmenter: Augmenter, batch: int,
                 amp: bool) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    logits = predict_logits(model, val.images, augmenter, batch, amp)
    target = torch.as_tensor(val.labels, device=logits.device, dtype=torch.long)
    loss = float(torch.nn.functional.cross_entropy(logits, target))
    auc = float(roc_auc_score(val.labels, torch.softmax(logits, 1)[:, 1].cpu().numpy()))
    return loss, auc


def fit(ctx: RunContext, model: torch.nn.Module, train: ArraySet, val: ArraySet, optim: OptimConfig,
        augmenter: Augmenter, seed: int, best_path: Path, amp: bool = True,
        compile_model: bool = False, prefetch: int | None = None) -> FitResult:
    """Fine-tune ``model`` (all weights) on ``train``; select on ``val``; best weights to ``best_path``.

    Test data is not a parameter: nothing here can see it. ``prefetch``: batches prepared ahead by the
    background thread (0: inline; None: the device's default, see ``Prefetcher``).
    """
    dev = augmenter.device
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        model = model.to(dev, memory_format=torch.channels_last)
    else:
        model = model.to(dev)
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=optim.momentum,
                                weight_decay=optim.weight_decay)
    monitor = Monitor(optimizer, optim)
    history: list[dict[str, float]] = []
    start_epoch, best_epoch, stopped_early, train_s = 0, 0, False, 0.0

    ckpt = ctx.load_checkpoint()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        monitor.load_state_dict(ckpt["monitor"])
        _set_rng_state(ckpt["rng"])
        start_epoch, best_epoch = ckpt["epoch"], ckpt["best_epoch"]
        stopped_early, history, train_s = ckpt["stopped_early"], ckpt["history"], ckpt["train_s"]
        ctx.log.info("resuming after epoch %d (best epoch %d)", start_epoch, best_epoch)

    labels_dev = torch.as_tensor(train.labels, dtype=torch.long)
    n_batches = math.ceil(len(train) / optim.batch_size)
    pin = cuda
    epoch = start_epoch
    while epoch < optim.max_epochs and not stopped_early:
        if ctx.stop_requested():
            return _result(history, best_epoch, epoch, stopped_early, True, train_s)
        epoch_seed = derive_seed(seed, epoch)
        torch.manual_seed(epoch_seed)  # dropout & co. in the main thread
        rng = np.random.default_rng(epoch_seed)
        order = epoch_order(train.labels, optim.balanced_sampler, rng)
        batches = [np.sort(order[i:i + optim.batch_size]) for i in range(0, len(order), optim.batch_size)]
        gen = make_generator(dev, epoch_seed)

        def prepare(index: np.ndarray, gen: torch.Generator = gen) -> tuple[torch.Tensor, torch.Tensor]:
            x = augmenter(host_batch(train.images, index, pin), gen)
            return x, labels_dev[index].to(dev, non_blocking=True)

        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        with Prefetcher(batches, prepare, dev, depth=prefetch) as stream:
            for i, (x, y) in enumerate(stream, 1):
                logits = forward(step_model, x, amp)
                loss = torch.nn.functional.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(y)
                ctx.progress(i, n_batches, f"epoch {epoch + 1}")
                if ctx.stop_requested() and i < n_batches:
                    ctx.log.info("stop requested in epoch %d: resuming will redo it", epoch + 1)
                    return _result(history, best_epoch, epoch, stopped_early, True, train_s)
        train_loss = float(loss_sum) / len(train)  # one host sync per epoch
        elapsed = time.perf_counter() - t0
        train_s += elapsed
        val_loss, val_auc = _val_metrics(model, val, augmenter, max(optim.batch_size, 64), amp)
        lr = optimizer.param_groups[0]["lr"]  # the LR this epoch trained with
        improved, stop = monitor.step(val_loss if optim.monitor == "val_loss" else val_auc)
        epoch += 1
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc, "lr": lr,
               "images_per_s": len(train) / elapsed}
        history.append(row)
        ctx.metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        ctx.log.info("epoch %d: train_loss %.4f val_loss %.4f val_auc %.4f lr %.2g %.0f img/s%s", epoch,
                     train_loss, val_loss, val_auc, lr, row["images_per_s"], " *best*" if improved else "")
        if improved:
            best_epoch = epoch
            with atomic_path(best_path) as tmp:
                torch.save({"model": model.state_dict(), "epoch": epoch}, tmp)
        stopped_early = stop and epoch < optim.max_epochs
        ctx.save_checkpoint({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "monitor": monitor.state_dict(),
            "rng": _rng_state(), "epoch": epoch, "best_epoch": best_epoch, "stopped_early": stopped_early,
            "history": history, "train_s": train_s,
        })
    return _result(history, best_epoch, epoch, stopped_early, False, train_s)


def _result(history: list[dict[str, float]], best_epoch: int, epochs: int, stopped_early: bool,
            interrupted: bool, train_s: float) -> FitResult:
    best = history[best_epoch - 1] if best_epoch else {"val_auc": math.nan, "val_loss": math.nan}
    ips = float(np.mean([h["images_per_s"] for h in history])) if history else 0.0
    return FitResult(best_epoch, best["val_auc"], best["val_loss"], epochs, stopped_early, interrupted,
                     train_s, ips, history)
