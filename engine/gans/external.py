"""Generators trained elsewhere: NVlabs StyleGAN2 / StyleGAN2-ADA / StyleGAN3 network pickles and TorchScript.

NVlabs pickles hold ``{"G", "D", "G_ema", ...}``; ``G_ema`` is called ``G(z, c, truncation_psi=..., noise_mode=
"const")`` and returns NCHW images in [-1, 1]; its ``z_dim``, ``c_dim`` and ``img_resolution`` say how. Unpickling
imports the classes named in the file, i.e. runs code: a pickle is only loaded when the user says ``--trust``,
and the code it needs (the user's clone of NVIDIA's repository: ``dnnlib``, ``torch_utils``) is put on the path
with ``--code PATH``. A TorchScript generator ``G(z, c)`` holds its own code and no Python objects, so it
needs no trust. ganaug's own checkpoints are never pickles (``torch.load(weights_only=True)``).

Class vector: one-hot of size ``c_dim``; index 1 = melanoma and 0 = benign unless ``class_index`` says
otherwise. An unconditional generator (``c_dim`` 0) makes one class, named with ``as_class``.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from engine.errors import InputError

Format = Literal["pickle", "torchscript"]
CLASS_NAMES = ("benign", "melanoma")


def file_format(path: Path) -> Format:
    """TorchScript archives carry their code (``<name>/code/``) and ``constants.pkl``; anything else is a pickle
    (NVlabs' plain pickles, and ``torch.save`` archives of whole modules, which are pickles inside a zip)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
    return "pickle"


def check_trust(path: Path, trust: bool) -> Format:
    """The file's format; a pickle without ``trust`` is refused in one line."""
    if not path.is_file():
        raise InputError(f"{path}: no such generator file")
    fmt = file_format(path)
    if fmt == "pickle" and not trust:
        raise InputError(f"{path}: is a pickle, and loading a pickle runs code from it; pass --trust if you trust "
                         f"where it came from")
    return fmt


@contextlib.contextmanager
def _code_on_path(code: str | None) -> Iterator[None]:
    if code is None:
        yield
        return
    sys.path.insert(0, str(code))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(code))


def load_module(path: Path, fmt: Format, code: str | None = None) -> torch.nn.Module:
    """The generator network in ``path`` on the CPU, in eval mode (``G_ema`` of a dict, or the object itself)."""
    if fmt == "torchscript":
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; generators exported with it still load
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as exc:
            raise InputError(f"{path}: not a loadable TorchScript file ({str(exc).splitlines()[0]})") from None
    where = f"not under --code {code}" if code else "pass the folder of the code it was saved with as --code PATH"
    try:
        with _code_on_path(code):
            if zipfile.is_zipfile(path):
                obj = torch.load(path, map_location="cpu", weights_only=False)
            else:
                with open(path, "rb") as fh:
                    obj = pickle.load(fh)
    except ModuleNotFoundError as exc:
        raise InputError(f"{path}: loading it needs the module {exc.name!r}, which is not installed here and "
                         f"{where}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise InputError(f"{path}: cannot unpickle it ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict):
        if "G_ema" not in obj:
            raise InputError(f"{path}: the pickle holds a dict without 'G_ema' (keys: {', '.join(map(str, obj))})")
        obj = obj["G_ema"]
    if not isinstance(obj, torch.nn.Module):
        raise InputError(f"{path}: expected a generator network (torch.nn.Module), found {type(obj).__name__}")
    return obj.eval()


@dataclass
class ExternalGenerator:
    """Calls an imported network like ganaug's own generators: ``G(z, labels) -> [-1, 1] NCHW``."""

    module: torch.nn.Module
    fmt: Format
    z_dim: int
    c_dim: int
    class_index: dict[str, int]
    truncation_psi: float = 1.0

    def class_vector(self, labels: torch.Tensor) -> torch.Tensor:
        c = torch.zeros(len(labels), self.c_dim, device=labels.device)
        if self.c_dim:
            index = torch.tensor([self.class_index[CLASS_NAMES[i]] for i in range(2)], device=labels.device)
            c[torch.arange(len(labels), device=labels.device), index[labels.long()]] = 1
        return c

    @torch.no_grad()
    def __call__(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = self.class_vector(labels).to(z.device)
        if self.fmt == "torchscript":
            out = self.module(z, c)
        else:
            out = self.module(z, c, truncation_psi=self.truncation_psi, noise_mode="const")
        return out.float()

    def to(self, device: torch.device) -> ExternalGenerator:
        self.module = self.module.to(device)
        return self


def parse_class_index(specs: list[str] | None) -> dict[str, int]:
    """``["melanoma=3"]`` -> {"benign": 0, "melanoma": 3}; the defaults are benign 0, melanoma 1."""
    out = {"benign": 0, "melanoma": 1}
    given: set[str] = set()
    for spec in specs or []:
        name, sep, value = spec.partition("=")
        if not sep or name not in CLASS_NAMES or not value.strip().isdigit():
            raise InputError(f"--class-index {spec!r}: expected benign=K or melanoma=K with K a class index")
        out[name] = int(value)
        given.add(name)
    if "benign" not in given and "melanoma" in given and out["melanoma"] == 0:
        out["benign"] = 1  # melanoma moved to 0: benign takes the other slot of a two-class generator
    if out["benign"] == out["melanoma"]:
        raise InputError(f"--class-index: benign and melanoma both map to index {out['benign']}")
    return out


def open_generator(path: Path, fmt: Format, *, code: str | None, class_index: dict[str, int],
                   as_class: str | None, truncation_psi: float = 1.0, z_dim: int | None = None,
                   c_dim: int | None = None) -> tuple[ExternalGenerator, dict[str, Any]]:
    """Load and probe an external generator: one call on two latents must give square RGB images.

    Returns the callable and what was learnt: ``{"z_dim", "c_dim", "res", "classes"}`` (the labels it makes).
    """
    module = load_module(path, fmt, code)
    z_dim = z_dim if z_dim is not None else getattr(module, "z_dim", None)
    c_dim = c_dim if c_dim is not None else getattr(module, "c_dim", None)
    if z_dim is None or c_dim is None:
        raise InputError(f"{path}: the network has no z_dim/c_dim attributes; give them with --z-dim and --c-dim")
    z_dim, c_dim = int(z_dim), int(c_dim)
    if c_dim == 0:
        if as_class not in CLASS_NAMES:
            raise InputError(f"{path}: the generator is unconditional (c_dim 0); say which class it makes with "
                             f"--as-class benign|melanoma")
        classes = [CLASS_NAMES.index(as_class)]
    else:
        if as_class is not None:
            raise InputError(f"{path}: --as-class is for unconditional generators; this one has c_dim {c_dim}")
        bad = [f"{k}={v}" for k, v in class_index.items() if not 0 <= v < c_dim]
        if bad:
            raise InputError(f"--class-index {bad[0]}: the generator has c_dim {c_dim}")
        classes = [0, 1]
    gen = ExternalGenerator(module, fmt, z_dim, c_dim, class_index, truncation_psi)
    try:
        out = gen(torch.randn(2, z_dim, generator=torch.Generator().manual_seed(0)),
                  torch.tensor([classes[0], classes[-1]]))
    except Exception as exc:
        raise InputError(f"{path}: calling the generator failed ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0]})") from None
    if out.ndim != 4 or out.shape[1] != 3 or out.shape[2] != out.shape[3]:
        raise InputError(f"{path}: the generator returned shape {tuple(out.shape)}; expected (N, 3, R, R)")
    return gen, {"z_dim": z_dim, "c_dim": c_dim, "res": int(out.shape[-1]), "classes": classes}
