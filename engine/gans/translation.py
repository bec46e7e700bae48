"""What the translation families (pix2pixHD, SPADE) share: their input encoding, the joint augmentation of
image and map, the trainer machinery around their networks, and the map / real / synthetic sample grid.

Input: a uint8 label map (0 pad ... 7 globules, ``engine.data.masks``) becomes 8 one-hot channels, plus
pix2pixHD's boundary channel when the family's ``boundary`` config says so. pix2pixHD derives its boundary
map from instance ids; the regions of an ISIC label map are its instances, and two regions meet exactly
where the label changes, so the boundary is where a 4-neighbour has another label.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.data.masks import LABEL_NAMES, colour
from engine.gans.layers import VGGLoss

N_LABELS = len(LABEL_NAMES)


def map_channels(config: dict[str, Any]) -> int:
    """Channels of a family's input maps: one-hot labels, plus the boundary map where the config asks."""
    return N_LABELS + int(bool(config["boundary"]))


def boundary_map(labels: torch.Tensor) -> torch.Tensor:
    """(B, H, W) integer labels -> (B, 1, H, W) float, 1 where a 4-neighbour has another label."""
    edge = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    dx = labels[:, :, 1:] != labels[:, :, :-1]
    dy = labels[:, 1:, :] != labels[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge.unsqueeze(1).float()


def encode_maps(labels: torch.Tensor, boundary: bool) -> torch.Tensor:
    """(B, H, W) uint8/long label maps -> a family's float input (B, C, H, W): one-hot labels, plus the
    boundary map when its config's ``boundary`` says so (see the module doc)."""
    labels = labels.long()
    if bool(((labels < 0) | (labels >= N_LABELS)).any()):
        raise ValueError(f"label maps hold values outside 0..{N_LABELS - 1}")
    onehot = torch.nn.functional.one_hot(labels, N_LABELS).permute(0, 3, 1, 2).float()
    return torch.cat([onehot, boundary_map(labels)], 1) if boundary else onehot


def paired_flip(images: torch.Tensor, maps: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal and vertical flips, drawn per sample from ``gen``, applied alike to image and map
    (a dermoscopic image has no canonical orientation; the map must stay aligned with its image)."""
    coins = torch.rand(2, images.shape[0], generator=gen, device=gen.device).to(images.device) < 0.5
    x = torch.cat([images, maps], 1)
    x = torch.where(coins[0].view(-1, 1, 1, 1), x.flip(3), x)
    x = torch.where(coins[1].view(-1, 1, 1, 1), x.flip(2), x)
    return x[:, :3], x[:, 3:]


class TranslationTrainer(ABC):
    """Networks, Adam optimisers, the optional VGG loss and bit-exact state of a translation family.

    A family subclass builds ``nets`` ("G", "D", optionally "E") and implements ``translate`` (maps -> images)
    and ``train_step``. ``opts["G"]`` trains every net but D (G and SPADE's encoder), ``opts["D"]`` the
    discriminator, with their own learning rates (SPADE's TTUR) and betas. These families keep no EMA
    generator (neither paper uses one): ``generate(ema=True)`` is the trained generator in eval mode.
    """

    family: str

    def __init__(self, config: dict[str, Any], device: torch.device, nets: dict[str, nn.Module]) -> None:
        self.config = config
        self.device = device
        self.res = int(config["res"])
        self.images_seen = 0
        self.step = 0  # train_step calls so far
        self.cuda = device.type == "cuda"
        fmt = torch.channels_last if self.cuda else torch.contiguous_format
        self.nets = {k: n.to(device=device, memory_format=fmt) for k, n in nets.items()}
        betas = (config["beta1"], config["beta2"])
        g_params = [p for k, n in self.nets.items() if k != "D" for p in n.parameters()]
        self.opts = {"G": torch.optim.Adam(g_params, lr=config["lr_g"], betas=betas),
                     "D": torch.optim.Adam(self.nets["D"].parameters(), lr=config["lr_d"], betas=betas)}
        weights = config["vgg_weights"]
        self._vgg: VGGLoss | None = None  # loaded at the first training step: sampling never needs it
        self.notes = [f"VGG perceptual loss on (weights {Path(weights).name}, lambda {config['lambda_vgg']})"
                      if weights else "VGG perceptual loss off: no local VGG19 weights file given (vgg_weights)"]

    @property
    def G(self) -> nn.Module:  # noqa: N802 - the papers' names
        return self.nets["G"]

    @property
    def D(self) -> nn.Module:  # noqa: N802
        return self.nets["D"]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA when ``amp`` (losses are computed in float32); nothing on CPU."""
        if self.cuda and self.config["amp"]:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def inputs(self, batch: Any, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's images and maps, jointly flipped when ``flip``; counts the step and its images."""
        if batch.maps is None:
            raise ValueError(f"{self.family} translates label maps: the batch has no maps")
        images, maps = batch.images, batch.maps
        if self.config["flip"]:
            images, maps = paired_flip(images, maps, gen)
        self.images_seen += images.shape[0]
        self.step += 1
        if self.cuda:
            images, maps = (t.contiguous(memory_format=torch.channels_last) for t in (images, maps))
        return images, maps

    def perceptual(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``lambda_vgg`` x the VGG19 perceptual loss, or 0 without a ``vgg_weights`` file."""
        if not self.config["vgg_weights"]:
            return torch.zeros((), device=fake.device)
        if self._vgg is None:
            self._vgg = VGGLoss(self.config["vgg_weights"]).to(self.device)
        return self._vgg(fake, real) * self.config["lambda_vgg"]

    def update(self, net: str, loss: torch.Tensor) -> None:
        opt = self.opts[net]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @abstractmethod
    def translate(self, maps: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The generator's images for ``maps`` (and SPADE's style code ``z``), in the current mode."""

    @abstractmethod
    def train_step(self, batch: Any, gen: torch.Generator) -> dict[str, float]:
        """One generator and one discriminator update (``GanTrainer.train_step``)."""

    def generate(self, *, labels: torch.Tensor | None = None, z: torch.Tensor | None = None,
                 maps: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        """Images (N, 3, R, R) in [-1, 1] for ``maps`` (N, C, R, R); ``labels`` are not an input of these
        families (an image's class is its source mask's). Eval mode: batch statistics are not used, so an
        image does not depend on the others of its batch, and spectral norm does not iterate."""
        if maps is None:
            raise ValueError(f"{self.family} generates from label maps: pass maps")
        was_training = self.G.training
        self.G.eval()
        try:
            with torch.no_grad(), self.autocast():
                return self.translate(maps.to(self.device), z).float()
        finally:
            self.G.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {"nets": {k: n.state_dict() for k, n in self.nets.items()},
                "opts": {k: o.state_dict() for k, o in self.opts.items()},
                "images_seen": self.images_seen, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, n in self.nets.items():
            n.load_state_dict(state["nets"][k])
        for k, o in self.opts.items():
            o.load_state_dict(state["opts"][k])
        self.images_seen, self.step = int(state["images_seen"]), int(state["step"])


def triplet_grid(labels: np.ndarray, real: np.ndarray, fake: np.ndarray, gap: int = 2) -> np.ndarray:
    """One uint8 RGB image: for each mask, its label map (``PALETTE`` colours), the real image and the
    synthetic one side by side; triplets fill a roughly square grid, white gaps between tiles."""
    n, h, w = labels.shape
    per_row = max(1, round(math.sqrt(n / 3)))
    rows = math.ceil(n / per_row)
    tile_w = 3 * w + 2 * gap
    out = np.full((rows * (h + gap) - gap, per_row * (tile_w + 2 * gap) - 2 * gap, 3), 255, dtype=np.uint8)
    tiles = np.stack([colour(labels), real, fake], 1)  # (n, 3, h, w, 3)
    for i in range(n):
        y, x = (i // per_row) * (h + gap), (i % per_row) * (tile_w + 2 * gap)
        for j in range(3):
            out[y:y + h, x + j * (w + gap):x + j * (w + gap) + w] = tiles[i, j]
    return out
