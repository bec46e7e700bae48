"""The pool format: shards + rows round-trip, resumable writing, stable ids, array-like reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.synth.pool import Pool, PoolRow, PoolWriter, pool_id


def _write(run_dir: Path, n_benign: int, n_melanoma: int, shard_size: int, stop_after: int | None = None) -> int:
    rows = [PoolRow(pool_id(0, i), 0, "gan-1", "kimg-000010", seed=i) for i in range(n_benign)]
    rows += [PoolRow(pool_id(1, i), 1, "gan-1", "kimg-000010", seed=1000 + i) for i in range(n_melanoma)]
    images = np.stack([np.full((8, 8, 3), i % 256, dtype=np.uint8) for i in range(len(rows))])
    writer = PoolWriter(run_dir, res=8, shard_size=shard_size)
    n_shards = -(-len(rows) // shard_size)
    for k in range(writer.next_shard, n_shards if stop_after is None else stop_after):
        sl = slice(k * shard_size, (k + 1) * shard_size)
        writer.write_shard(k, images[sl], rows[sl])
    if stop_after is None:
        writer.finish(n_shards, {"gan_run": "gan-1"})
    return writer.next_shard


def test_pool_round_trip_and_resume(tmp_path: Path) -> None:
    assert _write(tmp_path, 7, 4, shard_size=3, stop_after=2) == 2
    with pytest.raises(InputError, match="not a complete pool"):
        Pool(tmp_path)
    _write(tmp_path, 7, 4, shard_size=3)  # resumes at shard 2
    pool = Pool(tmp_path)
    assert len(pool) == 11 and pool.info["per_class"] == {"benign": 7, "melanoma": 4}
    assert pool.ids[:2] == ["b000000", "b000001"] and pool.ids[7] == "m000000"
    assert pool.labels.tolist() == [0] * 7 + [1] * 4
    rows = pool.rows_of(["m000003", "b000002", "b000005"])
    got = pool.images[rows]
    assert got.shape == (3, 8, 8, 3) and got[:, 0, 0, 0].tolist() == [10, 2, 5]
    assert pool.rows[7]["class"] == "melanoma" and pool.rows[7]["seed"] == "1000"
    with pytest.raises(InputError, match="m000009"):
        pool.rows_of(["m000009"])
