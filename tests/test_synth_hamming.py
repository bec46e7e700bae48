"""Pool-scale pHash searches against brute force: radius pairs, greedy exclusion, nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from engine.synth.hamming import _plan, greedy, nearest, radius_pairs


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64)


def _clustered(rng: np.random.Generator, n: int, centres: int) -> np.ndarray:
    """Hashes in clusters (as pHashes of similar lesions are), each a centre with up to 3 bits flipped."""
    base = rng.integers(0, 2**63, centres, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    h = base[rng.integers(0, centres, n)]
    for _ in range(3):
        flip = rng.random(n) < 0.5
        h[flip] ^= np.uint64(1) << rng.integers(0, 64, int(flip.sum())).astype(np.uint64)
    return h


def test_radius_pairs_finds_exactly_the_brute_force_pairs() -> None:
    rng = np.random.default_rng(0)
    plans = set()
    for trial in range(24):
        h = np.unique(_clustered(rng, int(rng.integers(2, 600)), int(rng.integers(3, 40))))
        radius = trial % 12
        i, j, d = radius_pairs(h, radius)
        full = _distances(h, h)
        want = {(a, b) for a, b in zip(*np.nonzero(np.triu(full <= radius, 1)), strict=True)}
        assert set(zip(i.tolist(), j.tolist(), strict=True)) == want and len(i) == len(want)
        np.testing.assert_array_equal(d, full[i, j])
        q, subs, _ = _plan(h, radius)
        plans.add((len(subs), q))
    assert len(plans) >= 4  # several splittings were exercised
    with pytest.raises(ValueError, match="radius"):
        radius_pairs(np.zeros(3, np.uint64), 40)


def test_greedy_matches_the_sequential_definition() -> None:
    rng = np.random.default_rng(1)
    for trial in range(12):
        h = _clustered(rng, int(rng.integers(1, 400)), 15)
        h[: len(h) // 5] = h[0]  # many identical copies of one hash
        visit = rng.permutation(len(h))
        t = trial % 7
        kept: list[int] = []
        for v in visit.tolist():
            if not kept or _distances(h[[v]], h[kept]).min() > t:
                kept.append(v)
        ex = greedy(h, visit, t)
        assert ex.kept.tolist() == kept
        assert sorted([*ex.kept.tolist(), *ex.excluded.tolist()]) == list(range(len(h)))
        if len(ex.excluded):
            d = _distances(h[ex.excluded], h[ex.kept])
            np.testing.assert_array_equal(ex.distance, d.min(axis=1))
            np.testing.assert_array_equal(ex.distance, np.bitwise_count(h[ex.excluded] ^ h[ex.nearest]))


def test_nearest_is_exact_with_and_without_self() -> None:
    rng = np.random.default_rng(2)
    q, r = _clustered(rng, 300, 10), _clustered(rng, 5000, 30)
    idx, dist = nearest(q, r, workers=2)
    d = _distances(q, r)
    np.testing.assert_array_equal(dist, d.min(axis=1))
    np.testing.assert_array_equal(idx, d.argmin(axis=1))
    idx, dist = nearest(r[:50], r[:50], exclude_self=True)
    d = _distances(r[:50], r[:50])
    np.fill_diagonal(d, 99)
    np.testing.assert_array_equal(dist, d.min(axis=1))
    assert nearest(r[:1], r[:1], exclude_self=True)[0].tolist() == [-1]
