"""A GAN run's generator, ready to sample: a ``gan-train`` checkpoint or a ``gan-import``ed network.

Pools, ``ganaug gan sample`` and the imported runs' metrics all sample here, so an image is the same
function of its seed everywhere: ``z = randn(z_dim)`` from a ``torch.Generator`` seeded with the image's seed
(the ``seed`` column of ``pool.csv``), and the label as the class. Image ``i`` of class ``y`` gets the seed
``derive_seed(seed, y, i)``: ``gan sample --seed S`` shows exactly the first images of a pool made with
``--seed S``.

A translation GAN run's generator (pix2pixHD, SPADE) has no latent: ``translate`` turns label maps into
images, one per map (eval mode, so an image does not depend on the others of its batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import InputError


def checkpoint_name(kimg: int) -> str:
    return f"kimg-{kimg:06d}"


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float NCHW -> uint8 NHWC (round to nearest)."""
    x = ((images.float() + 1) * 127.5).clamp_(0, 255).round_().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def latents(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """One latent per seed (CPU generator, so the same on every device)."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]) \
        if len(seeds) else torch.zeros(0, z_dim)


def image_seeds(seed: int, label: int, indices: Sequence[int] | range) -> list[int]:
    """The seeds of images ``indices`` of class ``label`` (pools and ``gan sample`` alike)."""
    from engine.train.classifier import derive_seed

    return [derive_seed(seed, label, i) for i in indices]


@dataclass
class RunGenerator:
    """One checkpoint of one GAN run: ``fn(z, labels) -> [-1, 1] NCHW`` plus what a sampler needs to know."""

    run_id: str
    checkpoint: str  # "kimg-000012" or "imported"
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    z_dim: int
    res: int
    classes: list[int]  # the labels it can make (both, or one for an unconditional import)
    device: torch.device
    # Translation runs only: fn(maps) -> images; the GAN run's data config (its training masks) and whether
    # its input maps carry the boundary channel.
    data: dict[str, Any] | None = None
    boundary: bool = False

    @property
    def translation(self) -> bool:
        return self.data is not None

    @torch.no_grad()
    def translate(self, label_maps: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 (N, R, R, 3) images translated from uint8 (N, R, R) label maps (translation runs)."""
        from engine.gans.translation import encode_maps

        out = np.empty((len(label_maps), self.res, self.res, 3), dtype=np.uint8)
        for s in range(0, len(label_maps), batch_size):
            m = torch.from_numpy(np.ascontiguousarray(label_maps[s:s + batch_size])).to(self.device)
            out[s:s + len(m)] = to_uint8(self.fn(encode_maps(m, self.boundary)))
        return out

    @torch.no_grad()
    def images(self, labels: np.ndarray, seeds: Sequence[int], batch_size: int = 64) -> np.ndarray:
        """uint8 (N, R, R, 3) images of ``labels`` from per-image ``seeds``."""
        if self.translation:
            raise InputError(f"run {self.run_id}: a translation GAN makes one image per mask, not per seed")
        labels = np.asarray(labels, dtype=np.int64)
        unknown = sorted(set(labels.tolist()) - set(self.classes))
        if unknown:
            raise InputError(f"run {self.run_id}: its generator makes only class(es) {self.classes}, not {unknown}")
        out = np.empty((len(labels), self.res, self.res, 3), dtype=np.uint8)
        for s in range(0, len(labels), batch_size):
            z = latents(seeds[s:s + batch_size], self.z_dim).to(self.device)
            y = torch.from_numpy(labels[s:s + batch_size]).to(self.device)
            out[s:s + len(y)] = to_uint8(self.fn(z, y))
        return out


def read_result(run_dir: Path, run_id: str) -> dict[str, Any]:
    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        raise InputError(f"{run_dir}: no readable run.json; is {run_id!r} a run of this workspace?") from None
    if meta.get("kind") not in ("gan-train", "gan-import"):
        raise InputError(f"run {run_id}: is a {meta.get('kind')!r} run, not a GAN run (gan-train or gan-import)")
    path = run_dir / "result.json"
    if not path.is_file():
        raise InputError(f"run {run_id}: has no result.json (not finished?)")
    return {"meta": meta, **json.loads(path.read_text())}


def load_generator(workspace: Path, run_id: str, kimg: int | None = None,
                   device: str | torch.device = "cpu") -> RunGenerator:
    """The selected checkpoint of GAN run ``run_id`` (or the one at ``kimg``) on ``device``."""
    from engine.gans._registry import get_family

    run_dir = Path(workspace) / run_id
    doc = read_result(run_dir, run_id)
    entry = doc["selected"]
    if kimg is not None:
        entry = next((c for c in doc["checkpoints"] if c["kimg"] == kimg), None)
        if entry is None:
            have = ", ".join(str(c["kimg"]) for c in doc["checkpoints"])
            raise InputError(f"run {run_id}: no checkpoint at kimg {kimg} (it has {have})")
    dev = torch.device(device)
    config = doc["meta"]["config"]
    if doc["meta"]["kind"] == "gan-import":
        from engine.gans.external import open_generator, parse_class_index

        gen, info = open_generator(run_dir / entry["path"], config["format"], code=config.get("code"),
                                   class_index=parse_class_index(config.get("class_index")),
                                   as_class=config.get("as_class"), truncation_psi=config["truncation_psi"],
                                   z_dim=config.get("z_dim"), c_dim=config.get("c_dim"))
        return RunGenerator(run_id, "imported", gen.to(dev), info["z_dim"], info["res"], info["classes"], dev)
    net = load_snapshot(run_dir / entry["path"]).to(dev)
    if get_family(config["family"]).conditioning == "translation":
        return RunGenerator(run_id, checkpoint_name(entry["kimg"]), net, 0, config["gan"]["res"], [0, 1], dev,
                            data=config["data"], boundary=config["gan"]["boundary"])
    return RunGenerator(run_id, checkpoint_name(entry["kimg"]), net, net.z_dim, net.res, [0, 1], dev)


def load_snapshot(path: Path) -> torch.nn.Module:
    """A ``gan-train`` checkpoint file -> its (EMA) generator network, eval mode, CPU (weights only)."""
    from engine.gans._registry import create_generator

    try:
        snap = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint file missing") from None
    net = create_generator(snap["family"], snap["preset"], **snap["config"])
    net.load_state_dict(snap["generator"])
    return net.eval().requires_grad_(False)
