"""Per-image arrays derived from a pool, computed once per workspace: pHashes and a helper classifier's errors.

Several runs read the same numbers (``1:1/4 div`` and ``1:1/2 div`` hash the same pool; ``bst`` and ``wst``
score it with the same helper; the audit hashes it again), so they are cached under
``<workspace>/cache/synth/<pool-run>/``, keyed by the content of the pool's ``pool.csv`` and of the helper's
best checkpoint: a pool or helper that changed is a miss, never a stale hit. Files are written to a temporary
name and renamed. Scoring a 200,000-image pool is long, so it is resumable: a partial file holds the scores
done so far (in whole batches, so a resumed pass computes every batch exactly as an uninterrupted one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.fsutil import atomic_path
from engine.synth.phash import phash
from engine.synth.pool import Pool

Progress = Callable[[int, int, str], None]
_HASH_CHUNK = 16384
_SAVE_EVERY_S = 30.0


def _dir(workspace: Path, pool_run: str) -> Path:
    d = Path(workspace) / "cache" / "synth" / pool_run
    d.mkdir(parents=True, exist_ok=True)
    return d


def _key(path: Path) -> str:
    from engine.data.cache import file_key

    return file_key(path)[:16]


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def pool_hashes(workspace: Path, pool_run: str, pool: Pool, progress: Progress | None = None) -> np.ndarray:
    """uint64 pHash of every pool image, in storage order (cached)."""
    path = _dir(workspace, pool_run) / f"phash-{_key(pool.dir / 'pool.csv')}.npy"
    if path.is_file():
        return np.load(path)
    n = len(pool)
    parts = []
    for start in range(0, n, _HASH_CHUNK):
        parts.append(phash(pool.images[start:start + _HASH_CHUNK]))
        if progress is not None:
            progress(min(start + _HASH_CHUNK, n), n, "pHash")
    hashes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    _save(path, hashes)
    return hashes


def pool_errors(workspace: Path, pool_run: str, pool: Pool, helper_run: str, device: str, batch_size: int = 256,
                progress: Progress | None = None, stop: Callable[[], bool] | None = None) -> np.ndarray | None:
    """float32 cross-entropy of each pool image's own label under ``helper_run``'s best checkpoint, in
    storage order (cached); None when ``stop`` asked to stop first (the scores so far are kept)."""
    import time

    from engine.train.trained import BEST, load_classifier

    helper_key = _key(Path(workspace) / helper_run / BEST)
    stem = f"errors-{helper_run}-{helper_key}-{_key(pool.dir / 'pool.csv')}"
    path = _dir(workspace, pool_run) / f"{stem}.npy"
    partial = path.with_name(f"{stem}.partial.npy")
    if path.is_file():
        return np.load(path)
    n = len(pool)
    errors = np.full(n, np.nan, dtype=np.float32)
    if partial.is_file():
        saved = np.load(partial)
        if len(saved) == n:
            errors = saved
    done = int(np.argmax(np.isnan(errors))) if np.isnan(errors).any() else n
    done -= done % batch_size  # resume on a batch boundary
    helper = load_classifier(workspace, helper_run, device)
    chunk = batch_size * 16
    last_save = time.monotonic()
    for start in range(done, n, chunk):
        if stop is not None and stop():
            _save(partial, errors)
            return None
        stop_at = min(start + chunk, n)
        errors[start:stop_at] = helper.cross_entropy(pool.images[start:stop_at], pool.labels[start:stop_at],
                                                     batch_size)
        if progress is not None:
            progress(stop_at, n, f"scoring with {helper_run}")
        if time.monotonic() - last_save > _SAVE_EVERY_S:
            _save(partial, errors)
            last_save = time.monotonic()
    _save(path, errors)
    partial.unlink(missing_ok=True)
    return errors
