"""Classifier throughput, side by side in one process (same model, resolution, batch, device).

(a) training images/s: model-only on random device tensors  vs  ours (``engine.train.classifier.fit``:
    uint8 cache -> background thread -> device augmentation -> model)  vs  a paper-style reference
    (PIL decode of image files + per-image torchvision transforms in DataLoader workers);
(b) TTA images/s (image x replica forward passes): ours (``tta_scores``) vs model-only inference;
(c) with ``--device cuda``: the same at the paper's setting (default inception_v4 @ 299, bf16, channels_last).

    python bench/bench_train.py                               # CPU: test_resnet @ 48 px, batch 32
    python bench/bench_train.py --model mobilenetv3_small_050
    python bench/bench_train.py --device cuda                 # inception_v4 @ 299
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from engine.train.augment import Augmenter, make_generator  # noqa: E402
from engine.train.classifier import ArraySet, fit  # noqa: E402
from engine.train.config import AugmentConfig, ModelConfig, OptimConfig  # noqa: E402
from engine.train.evaluate import forward, tta_scores  # noqa: E402
from engine.train.model import create_model  # noqa: E402


class _BenchContext:
    """Minimal RunContext: no store, no checkpoints kept."""

    def __init__(self, run_dir: Path, device: str) -> None:
        self.run_id, self.run_dir, self.workspace, self.config = "bench", run_dir, run_dir, {}
        self.seed, self.device, self.log = 0, device, logging.getLogger("bench")

    def metric(self, name: str, value: float, step: int) -> None: ...
    def metrics(self, values: dict[str, float], step: int) -> None: ...
    def progress(self, done: int, total: int, desc: str = "") -> None: ...
    def save_checkpoint(self, state: dict[str, Any]) -> None: ...
    def load_checkpoint(self) -> dict[str, Any] | None:
        return None

    def stop_requested(self) -> bool:
        return False


class _FileDataset(torch.utils.data.Dataset):
    """The paper-style input pipeline: decode the file with PIL, transform one image at a time."""

    def __init__(self, files: list[Path], labels: np.ndarray, res: int) -> None:
        from torchvision import transforms as T

        self.files, self.labels = files, labels
        self.tf = T.Compose([
            T.RandomResizedCrop(res, scale=(0.75, 1.0)), T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
            T.RandomRotation(45), T.ColorJitter(hue=0.1), T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as im:
            return self.tf(im.convert("RGB")), int(self.labels[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(name: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(ModelConfig(name=name, pretrained=False))
    return model.to(device, memory_format=torch.channels_last) if device.type == "cuda" else model.to(device)


def _train_steps(model: torch.nn.Module, batches: Any, device: torch.device, warmup: int) -> float:
    """images/s of SGD steps over ``batches`` (an iterable of (x, y)), after ``warmup`` untimed steps."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-3)
    model.train()
    n, t0 = 0, 0.0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            _sync(device)
            t0, n = time.perf_counter(), 0
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(forward(model, x, amp=True), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    _sync(device)
    return n / (time.perf_counter() - t0)


def model_only_train(name: str, res: int, batch: int, steps: int, device: torch.device) -> float:
    x = torch.randn(batch, 3, res, res, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    return _train_steps(_model(name, device), ((x, y) for _ in range(steps + 3)), device, warmup=3)


def model_only_infer(name: str, res: int, batch: int, steps: int, device: torch.device) -> float:
    model = _model(name, device).eval()
    x = torch.randn(batch, 3, res, res, device=device)
    with torch.no_grad():
        for i in range(steps + 3):
            if i == 3:
                _sync(device)
                t0 = time.perf_counter()
            forward(model, x, amp=True)
    _sync(device)
    return batch * steps / (time.perf_counter() - t0)


def ours_train(name: str, images: np.ndarray, labels: np.ndarray, batch: int, device: torch.device,
               tmp: Path) -> float:
    """The real training loop; the second epoch's images/s (the first includes warm-up)."""
    ctx = _BenchContext(tmp, device.type)
    val = ArraySet(images[:64], labels[:64])
    result = fit(ctx, _model(name, device), ArraySet(images, labels), val,
                 OptimConfig(batch_size=batch, max_epochs=2), Augmenter(AugmentConfig(), device=device), 0,
                 tmp / "best.pt")
    return result.history[-1]["images_per_s"]


def reference_train(name: str, files: list[Path], labels: np.ndarray, res: int, batch: int, workers: int,
                    device: torch.device) -> float:
    loader = torch.utils.data.DataLoader(_FileDataset(files, labels, res), batch_size=batch, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0, drop_last=True)
    it = (b for _ in range(2) for b in loader)  # two epochs; the first steps are warm-up
    return _train_steps(_model(name, device), it, device, warmup=3)


def ours_tta(name: str, images: np.ndarray, replicas: int, batch: int, device: torch.device) -> float:
    model = _model(name, device).eval()
    aug = Augmenter(AugmentConfig(), device=device)
    tta_scores(model, images[:8], aug, replicas, batch, make_generator(device, 0))  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    tta_scores(model, images, aug, replicas, batch, make_generator(device, 1))
    _sync(device)
    return len(images) * replicas / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", default=None, help="timm model (cpu: test_resnet, cuda: inception_v4)")
    ap.add_argument("--res", type=int, default=None, help="input px (cpu: 48, cuda: 299)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n", type=int, default=None, help="training images (cpu: 640, cuda: 3200)")
    ap.add_argument("--src-res", type=int, default=None, help="reference: stored JPEG size (default 2 x res)")
    ap.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    ap.add_argument("--replicas", type=int, default=50)
    ap.add_argument("--tta-batch", type=int, default=256)
    args = ap.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("bench_train: --device cuda but no CUDA GPU is visible")
    device = torch.device(args.device)
    name = args.model or ("inception_v4" if cuda else "test_resnet")
    res = args.res or (299 if cuda else 48)
    n = args.n or (3200 if cuda else 640)
    src = args.src_res or 2 * res
    steps = max(10, n // args.batch)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, res, res, 3), dtype=np.uint8)
    labels = (np.arange(n) % 2).astype(np.int64)
    print(f"device {device} ({torch.cuda.get_device_name(device) if cuda else f'{os.cpu_count()} CPU cores'}), "
          f"model {name}, {res} px, batch {args.batch}, {n} images, torch {torch.__version__}"
          f"{', bf16 autocast + channels_last' if cuda else ''}")

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        files = []
        for i in range(n):
            path = tmp / f"{i}.jpg"
            Image.fromarray(images[i]).resize((src, src)).save(path, quality=90)
            files.append(path)
        base = model_only_train(name, res, args.batch, steps, device)
        ours = ours_train(name, images, labels, args.batch, device, tmp)
        ref = reference_train(name, files, labels, res, args.batch, args.workers, device)
        print(f"(a) train img/s  model-only {base:9.1f} | ours {ours:9.1f} ({ours / base:.2f} x model-only) | "
              f"reference PIL+torchvision, {args.workers} workers, {src} px JPEG {ref:9.1f} "
              f"({ref / base:.2f} x model-only; ours {ours / ref:.2f} x reference)")
        infer = model_only_infer(name, res, args.tta_batch, max(5, steps // 4), device)
        tta = ours_tta(name, images[: max(16, n // 4)], args.replicas, args.tta_batch, device)
        print(f"(b) TTA img/s ({args.replicas} replicas, batch {args.tta_batch})  model-only inference "
              f"{infer:9.1f} | ours {tta:9.1f} ({tta / infer:.2f} x model-only)")


if __name__ == "__main__":
    main()
