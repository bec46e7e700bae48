"""How good is a GAN checkpoint: FID, precision and recall on one feature space, and the paper's checkpoint rule.

Features (:func:`feature_extractor`): the standard FID Inception-v3 (torch-fidelity's port of the TF graph,
2048-d pool features) when its weights file is given locally — reported as ``fid``, ``precision``,
``recall`` — otherwise the penultimate layer of a finished ``classify`` run's best checkpoint — reported as
``fid_domain``, ``precision_domain``, ``recall_domain``, never called FID. There is no third option: a
randomly initialised network gives meaningless distances.

FID (Heusel et al. 2017): ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^1/2)``, with the trace of the
matrix square root computed from the eigenvalues of ``S_r^1/2 S_g S_r^1/2`` (symmetric PSD, so exact and
stable in float64).

Precision and recall (Kynkaenniemi et al. 2019, k = 3): each real feature gets a ball whose radius is the
distance to its 3rd nearest real neighbour; precision is the fraction of generated samples inside some
real ball (are the fakes realistic?), recall the fraction of reals inside some generated ball (made from
the generated set the same way: is the real distribution covered?). FID folds both into one number; the
critical review's point is that diversity (recall) is what augmentation needs, so all three are stored.

The checkpoint rule (paper, section 4.1: "preferring later checkpoints (longer training) for similar FID
(< 0.3 difference)"): the latest checkpoint whose value differs from the best by less than the margin.
0.3 is on the Inception-FID scale; domain features have another scale, so there the margin is relative
(default 1 % of the best value).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError

Extractor = Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W, 3) -> float (N, D)
K_NEAREST = 3
FID_MARGIN = 0.3
DOMAIN_MARGIN = 0.01


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    vals, vecs = np.linalg.eigh(cov_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    tr_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(np.square(mu_a - mu_b).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)


def _distances(x: np.ndarray, y: np.ndarray, chunk: int = 2048) -> Any:
    """Yield (row offset, pairwise Euclidean distances of a chunk of x to all of y) as float32 tensors."""
    import torch

    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    for s in range(0, len(x), chunk):
        xt = torch.from_numpy(np.ascontiguousarray(x[s:s + chunk], dtype=np.float32))
        yield s, torch.cdist(xt, yt, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(x: np.ndarray, k: int = K_NEAREST) -> np.ndarray:
    """Distance of every row of ``x`` to its k-th nearest other row."""
    out = np.empty(len(x), dtype=np.float32)
    for s, d in _distances(x, x):
        out[s:s + len(d)] = d.topk(k + 1, dim=1, largest=False).values[:, k].numpy()  # column 0 is the row itself
    return out


def coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``points`` inside at least one ball (``centres``, ``radii``)."""
    import torch

    r = torch.from_numpy(radii)
    inside = np.zeros(len(points), dtype=bool)
    for s, d in _distances(points, centres):
        inside[s:s + len(d)] = (d <= r[None, :]).any(dim=1).numpy()
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K_NEAREST) -> tuple[float, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019) of ``fake`` against ``real`` features."""
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    precision = coverage(fake, real, knn_radii(real, k))
    recall = coverage(real, fake, knn_radii(fake, k))
    return precision, recall


@dataclass(frozen=True)
class Features:
    """A feature space for the metrics: ``extract`` plus the suffix of the metric names (``""``/``"_domain"``)."""

    kind: str  # "inception" | "domain:<classify run id>" (result.json's "features")
    extract: Extractor

    @property
    def suffix(self) -> str:
        return "" if self.kind == "inception" else "_domain"

    def names(self) -> tuple[str, str, str]:
        return f"fid{self.suffix}", f"precision{self.suffix}", f"recall{self.suffix}"

    def scores(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        """FID, precision and recall of generated against real features (both already extracted)."""
        fid, prec, rec = self.names()
        p, r = precision_recall(real, fake)
        return {fid: frechet_distance(real, fake), prec: p, rec: r}


def inception_extractor(weights: str | Path, device: str = "cpu", batch_size: int = 64) -> Extractor:
    """The standard FID Inception-v3 from a local weights file (torch-fidelity's
    ``weights-inception-2015-12-05-6726825d.pth``); the file must be a plain tensor state dict."""
    import torch

    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(f"fid_weights: {str(path)!r} not found")
    try:  # refuse anything that is not plain tensors before torch-fidelity unpickles it
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"fid_weights: {path} is not a plain weights file ({type(exc).__name__})") from None
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    except RuntimeError as exc:
        raise InputError(f"fid_weights: {path} does not fit the FID Inception-v3 "
                         f"({str(exc).splitlines()[0]})") from None
    net = net.to(device).eval()

    @torch.no_grad()
    def extract(images: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])).permute(0, 3, 1, 2).to(device)
            out.append(net(x)[0].float().cpu())
        return torch.cat(out).numpy()

    return extract


def feature_extractor(*, workspace: Path, features: str | None = None, fid_weights: str | None = None,
                      device: str = "cpu") -> Features:
    """The run's feature space: Inception with ``fid_weights``, else the classify run ``features``."""
    if fid_weights:
        return Features("inception", inception_extractor(fid_weights, device))
    if features:
        from engine.train.trained import load_classifier

        clf = load_classifier(workspace, features, device)
        return Features(f"domain:{features}", clf.features)
    raise InputError("metrics need --features RUN (a finished classify run: domain features) or --fid-weights FILE "
                     "(the FID Inception weights): a randomly initialised network gives meaningless distances")


def default_margin(features_kind: str) -> tuple[float, bool]:
    """(margin, relative): the paper's 0.3 for Inception FID, 1 % of the best value for domain features."""
    return (FID_MARGIN, False) if features_kind == "inception" else (DOMAIN_MARGIN, True)


def select_checkpoint(curve: Sequence[tuple[int, float]], margin: float, relative: bool,
                      metric: str = "fid") -> tuple[int, str]:
    """The paper's rule on ``curve`` = [(kimg, value), ...]: the latest checkpoint whose value is within the
    margin of the best (``value - best < margin``, or ``< margin * best`` when relative); the best itself
    always qualifies. Returns (kimg, the rule in words, with the numbers it used)."""
    finite = [(k, v) for k, v in curve if np.isfinite(v)]
    if not finite:
        raise ValueError("no checkpoint has a finite metric value")
    best_kimg, best = min(finite, key=lambda kv: (kv[1], -kv[0]))
    allowed = margin * abs(best) if relative else margin
    chosen = max(k for k, v in finite if v - best < allowed or v == best)
    how = f"{margin:g} x best ({allowed:.4g})" if relative else f"{margin:g}"
    rule = (f"latest checkpoint with {metric} within {how} of the best ({best:.4g} at kimg {best_kimg}): "
            f"kimg {chosen}")
    return chosen, rule
