"""Searches over 64-bit pHashes at pool scale: near-duplicate pairs, greedy exclusion, nearest neighbours.

Comparing every pair of a 200,000-image pool is 2e10 XOR/popcounts (~37 s on one core). Near-duplicate pairs
within ``r`` bits are found instead by multi-index hashing (Norouzi et al., CVPR 2012): cut the 64 bits into
``m`` substrings; two hashes within ``r`` bits differ in at most ``q = r // m`` bits on at least one of them
(pigeonhole), so each hash looks up, per substring, the buckets of every key within ``q`` bits of its own and
only those candidates are checked on all 64 bits. Every pair is found; ``m`` is chosen per call from measured
bucket sizes. Identical hashes are merged first, so a collapsed GAN's thousand copies of one image cost one
entry, not a million pairs.

Nearest neighbours between two sets (the audit: synthetic vs training images) are exact blocked
XOR/popcount on threads: the sets there are a pool against ~15,000 training images.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

_PAIR_BUDGET = 1 << 22  # candidate pairs generated per step (bounds memory to ~100 MB)
_BLOCK_CELLS = 1 << 21  # query x reference distances per block of the nearest-neighbour search
_MAX_WIDTH = 22  # widest substring indexed by a direct-address table (8 * 2**22 bytes of offsets)
_PROBE_BUDGET = 1 << 20  # bucket probes per step
_PROBE_NS, _CANDIDATE_NS = 20.0, 23.0  # measured costs of one bucket probe and one candidate pair


def _masks(width: int, q: int) -> np.ndarray:
    """Every ``width``-bit XOR mask with at most ``q`` bits set (the keys within ``q`` bits of a key)."""
    from itertools import combinations

    return np.array([sum(1 << b for b in bits) for k in range(q + 1) for bits in combinations(range(width), k)],
                    dtype=np.int64)


def _substrings(bits: np.ndarray, m: int) -> list[np.ndarray]:
    """The bit positions of ``m`` substrings: bits sorted by how balanced they are over these hashes, dealt
    round-robin, so no substring collects the near-constant bits (pHash's DC bit is always 1)."""
    order = np.argsort(np.abs(bits.mean(axis=0) - 0.5), kind="stable")
    return [np.sort(order[k::m]) for k in range(m)]


def _keys(bits: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The bits at ``positions`` of each hash packed into an int64 key (bit k = position k)."""
    return bits[:, positions].astype(np.int64) @ (np.int64(1) << np.arange(len(positions), dtype=np.int64))


def _plan(h: np.ndarray, radius: int) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """Per-substring radius ``q``, substrings and their keys: of the splittings into ``m`` substrings with
    ``m (q + 1) > radius`` (a pair within ``radius`` is within ``q`` on at least one substring), the one with
    the least probes + candidates, candidates estimated on a sample (pHashes of similar images are far from
    uniform, so the bucket sizes must be measured, not assumed)."""
    n = len(h)
    bits = ((h[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    sample = np.random.default_rng(0).choice(n, size=min(n, 2000), replace=False)
    best: tuple[float, int, list[np.ndarray], list[np.ndarray]] | None = None
    for m in range(-(-64 // _MAX_WIDTH), 9):
        q = radius // m
        subs = _substrings(bits, m)
        probes = len(_masks(len(subs[0]), q))
        if probes * n * m > 2e9:
            continue
        keys = [_keys(bits, pos) for pos in subs]
        cost = 0.0
        for pos, key in zip(subs, keys, strict=True):
            counts = np.bincount(key, minlength=1 << len(pos))
            hits = counts[key[sample, None] ^ _masks(len(pos), q)[None, :]].sum()
            cost += n * probes * _PROBE_NS + hits * (n / len(sample)) * _CANDIDATE_NS
        if best is None or cost < best[0]:
            best = (cost, q, subs, keys)
    if best is None:
        raise ValueError(f"radius {radius} is too large for an indexed search over {n} hashes")
    return best[1], best[2], best[3]


def radius_pairs(hashes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` of positions whose hashes differ in at most ``radius`` bits, as arrays
    ``(i, j, distance)`` (unordered; each pair once).

    Multi-index hashing: ``m`` substrings of ~64/m bits, each in a direct-address table; every item probes,
    per substring, the buckets of all keys within ``q`` bits of its own, and candidates are checked on all
    64 bits. Pass distinct hashes (``greedy`` does): identical copies are pairs of every substring.
    """
    if not 0 <= radius < 32:
        raise ValueError(f"radius must be in [0, 31], got {radius}")
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    out_i, out_j, out_d = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], [np.zeros(0, np.uint8)]
    if n < 2:
        return out_i[0], out_j[0], out_d[0]
    q, subs, keys = _plan(h, radius)
    for s, pos in enumerate(subs):
        key = keys[s]
        masks = _masks(len(pos), q)
        counts = np.bincount(key, minlength=1 << len(pos))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        members = np.argsort(key, kind="stable")
        for start in range(0, n, max(1, _PROBE_BUDGET // len(masks))):
            items = np.arange(start, min(start + max(1, _PROBE_BUDGET // len(masks)), n))
            probe = (key[items, None] ^ masks[None, :]).ravel()
            sizes = counts[probe]
            hit = np.flatnonzero(sizes)  # most probes of a wide substring find an empty bucket
            probe, sizes, owners = probe[hit], sizes[hit], items[hit // len(masks)]
            cum = np.cumsum(sizes)
            lo = 0
            while lo < len(hit):  # steps of about _PAIR_BUDGET candidate pairs (at least one probe)
                base = cum[lo - 1] if lo else 0
                hi = max(lo + 1, int(np.searchsorted(cum, base + _PAIR_BUDGET, side="right")))
                sz = sizes[lo:hi]
                owner = np.repeat(owners[lo:hi], sz)
                first = np.repeat(offsets[probe[lo:hi]], sz)
                within = np.arange(len(owner)) - np.repeat(cum[lo:hi] - sz - base, sz)
                other = members[first + within]
                lo = hi
                keep = other > owner  # each pair once (it is found from both ends)
                a, b = owner[keep], other[keep]
                d = np.bitwise_count(h[a] ^ h[b])
                close = d <= radius
                a, b, d = a[close], b[close], d[close]
                for earlier in range(s):  # found on an earlier substring already
                    new = np.bitwise_count(keys[earlier][a] ^ keys[earlier][b]) > q
                    a, b, d = a[new], b[new], d[new]
                out_i.append(a)
                out_j.append(b)
                out_d.append(d)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


@dataclass(frozen=True)
class Exclusion:
    """Result of the greedy near-duplicate exclusion over ``n`` items.

    ``kept``: item positions kept, in visiting order. ``excluded``: the other positions, in visiting order;
    ``nearest``/``distance``: for each excluded item, the kept item closest to it (ties: visited first) and
    their Hamming distance (<= the threshold by construction).
    """

    kept: np.ndarray
    excluded: np.ndarray
    nearest: np.ndarray
    distance: np.ndarray


def greedy(hashes: np.ndarray, visit: np.ndarray, threshold: int) -> Exclusion:
    """Visit items in the order ``visit`` (a permutation of positions); keep an item unless an already kept
    one lies within ``threshold`` bits. Exact: every pair within the threshold is found (``radius_pairs``)."""
    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    rank = np.empty(n, dtype=np.int64)
    rank[visit] = np.arange(n)
    uniq, inverse = np.unique(h, return_inverse=True)
    u_count = len(uniq)
    first = np.full(u_count, n, dtype=np.int64)  # earliest visit rank among the items of each distinct hash
    np.minimum.at(first, inverse, rank)
    first_item = visit[first]
    i, j, d = radius_pairs(uniq, threshold)
    # Distinct hashes decide in the order of their first visit; identical copies follow their first.
    earlier_first = first[i] < first[j]
    src = np.where(earlier_first, i, j)  # visited first
    dst = np.where(earlier_first, j, i)
    by_dst = np.argsort(first[dst], kind="stable")
    src, dst_sorted = src[by_dst], dst[by_dst]
    bounds = np.flatnonzero(np.concatenate([[True], dst_sorted[1:] != dst_sorted[:-1], [True]]))
    src_list, dst_list = src.tolist(), dst_sorted.tolist()
    kept_list = [True] * u_count  # sequential by nature: an item's fate depends on those decided before it
    for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=False):
        if s < e and any(kept_list[v] for v in src_list[s:e]):
            kept_list[dst_list[s]] = False
    kept_u = np.array(kept_list, dtype=bool)
    kept_item = np.zeros(n, dtype=bool)
    kept_item[first_item[kept_u]] = True
    # Nearest kept item of each excluded item.
    nearest = np.full(n, -1, dtype=np.int64)
    dist = np.zeros(n, dtype=np.uint8)
    dup = ~kept_item & kept_u[inverse]  # a later copy of a kept hash: distance 0 to its first
    nearest[dup] = first_item[inverse[dup]]
    # Distinct hashes excluded: the kept neighbour at the smallest distance, then the earliest visited.
    pair_a = np.concatenate([i, j])
    pair_b = np.concatenate([j, i])
    pair_d = np.concatenate([d, d])
    use = ~kept_u[pair_a] & kept_u[pair_b]
    pair_a, pair_b, pair_d = pair_a[use], pair_b[use], pair_d[use]
    best = np.lexsort((first[pair_b], pair_d, pair_a))
    pair_a, pair_b, pair_d = pair_a[best], pair_b[best], pair_d[best]
    lead = np.concatenate([[True], pair_a[1:] != pair_a[:-1]]) if len(pair_a) else np.zeros(0, bool)
    u_nearest = np.full(u_count, -1, dtype=np.int64)
    u_dist = np.zeros(u_count, dtype=np.uint8)
    u_nearest[pair_a[lead]] = first_item[pair_b[lead]]
    u_dist[pair_a[lead]] = pair_d[lead]
    excl_hash = ~kept_u[inverse]
    nearest[excl_hash] = u_nearest[inverse[excl_hash]]
    dist[excl_hash] = u_dist[inverse[excl_hash]]
    order_kept = visit[kept_item[visit]]
    order_excl = visit[~kept_item[visit]]
    return Exclusion(order_kept, order_excl, nearest[order_excl], dist[order_excl])


def nearest(query: np.ndarray, reference: np.ndarray, *, exclude_self: bool = False,
            workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each query hash, the index of its nearest reference hash (ties: the lowest index) and the distance.

    ``exclude_self``: query and reference are the same set; an item is not its own neighbour (a set of one
    gets distance 65 and index -1).
    """
    from engine.synth.phash import default_workers

    q = np.ascontiguousarray(query, dtype=np.uint64)
    r = np.ascontiguousarray(reference, dtype=np.uint64)
    if exclude_self and len(q) != len(r):
        raise ValueError("exclude_self needs query and reference to be the same set")
    if not len(r):
        return np.full(len(q), -1, dtype=np.int64), np.full(len(q), 65, dtype=np.uint8)
    step = max(1, _BLOCK_CELLS // len(r))

    def block(start: int) -> tuple[np.ndarray, np.ndarray]:
        d = np.bitwise_count(q[start:start + step, None] ^ r[None, :])
        if exclude_self:
            rows = np.arange(len(d))
            d[rows, start + rows] = 65
        idx = d.argmin(axis=1)
        dist = d[np.arange(len(d)), idx]
        return np.where(dist > 64, -1, idx), dist

    starts = list(range(0, len(q), step))
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        parts = list(pool.map(block, starts))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
