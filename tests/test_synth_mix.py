"""The classifier's synthetic sources (engine/synth/mix.py): parsing, enqueue checks, resolution, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.synth.mix import (
    CsvSource,
    PoolSource,
    TakeRows,
    check_synthetic,
    describe,
    parse_sources,
    resolve_synthetic,
)
from engine.synth.pool import PoolRow, PoolWriter, pool_id
from engine.train.config import parse_config


def _pool(ws: Path, run: str, n_benign: int, n_mel: int, gan_run: str, info: dict | None = None) -> None:
    rows = [PoolRow(pool_id(0, i), 0, gan_run, "kimg-000004", seed=i) for i in range(n_benign)]
    rows += [PoolRow(pool_id(1, i), 1, gan_run, "kimg-000004", seed=100 + i) for i in range(n_mel)]
    images = np.stack([np.full((4, 4, 3), i, dtype=np.uint8) for i in range(len(rows))])
    writer = PoolWriter(ws / run, res=4, shard_size=len(rows))
    writer.write_shard(0, images, rows)
    writer.finish(1, info)


def test_parse_sources_accepts_every_form_and_names_a_bad_entry() -> None:
    assert parse_sources(None) == [] and parse_sources("a.csv") == [CsvSource(csv="a.csv")]
    assert parse_sources(["a.csv", {"csv": "b.csv"}, {"pool": "r"}, {"pool": "r", "ids": "i.csv"}]) == [
        CsvSource(csv="a.csv"), CsvSource(csv="b.csv"), PoolSource(pool="r"), PoolSource(pool="r", ids="i.csv")]
    with pytest.raises(InputError, match=r"^classify config: synthetic\[1\]: expected a CSV path"):
        parse_config({"data": {"format": "csv", "root": "/x"}, "synthetic": ["a.csv", {"gan": "x"}]})
    with pytest.raises(ValueError, match=r"\[0\]\.idz: Extra inputs are not permitted"):
        parse_sources([{"pool": "r", "idz": "i.csv"}])
    cfg = parse_config({"data": {"format": "csv", "root": "/x"}, "synthetic": ["a.csv", {"pool": "r"}]})
    assert cfg.to_json()["synthetic"] == [{"csv": "a.csv"}, {"pool": "r", "ids": None}]
    assert parse_config(cfg.to_json()) == cfg


def test_take_rows_reads_only_the_picked_rows_in_the_asked_order() -> None:
    base = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    rows = np.array([7, 2, 9, 2])
    view = TakeRows(base, rows)
    assert view.shape == (4, 2, 2, 3) and len(view) == 4 and view.dtype == np.uint8
    np.testing.assert_array_equal(view[np.array([3, 0, 2])], base[[2, 7, 9]])
    np.testing.assert_array_equal(view[1:3], base[[2, 9]])
    np.testing.assert_array_equal(view[np.int64(2)], base[9])


def test_pools_resolve_with_their_provenance(tmp_path: Path) -> None:
    ws = tmp_path
    _pool(ws, "pool-a", 3, 2, "gan-a", {"family": "stylegan2"})
    _pool(ws, "pool-b", 1, 4, "gan-b")  # no family in pool.json: read from the gan run's config
    (ws / "gan-b").mkdir()
    (ws / "gan-b" / "run.json").write_text(json.dumps({"kind": "gan-train", "config": {"family": "pgan"}}))
    (tmp_path / "ids.csv").write_text("id\nm000003\nm000000\n")
    sources = parse_sources([{"pool": "pool-a"}, {"pool": "pool-b", "ids": str(tmp_path / "ids.csv")}])
    a, b = resolve_synthetic(ws, sources)
    assert (a.ids, a.labels.tolist(), a.counts()) == (["b000000", "b000001", "b000002", "m000000", "m000001"],
                                                      [0, 0, 0, 1, 1], {"benign": 3, "melanoma": 2})
    assert b.ids == ["m000003", "m000000"] and b.counts() == {"benign": 0, "melanoma": 2}  # one class is fine
    assert (b.provenance["family"], b.provenance["gan_run"], b.provenance["pool_run"]) == ("pgan", "gan-b", "pool-b")
    doc = describe([a, b])
    assert doc["gan"] == {"family": "all", "gan_runs": ["gan-a", "gan-b"], "pool_runs": ["pool-a", "pool-b"]}
    assert doc["sampler"] is None and [s["melanoma"] for s in doc["sources"]] == [2, 2]
    assert describe([a])["gan"]["family"] == "stylegan2"


def test_enqueue_check_accepts_an_unfinished_pool_but_not_a_missing_one(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "pool-run").mkdir(parents=True)  # queued or running: no pool.json yet
    ids = tmp_path / "ids.csv"
    ids.write_text("id\nb000001\nb000001\n")
    check_synthetic(ws, parse_sources([{"pool": "pool-run"}]))
    with pytest.raises(InputError, match=r"ids\.csv, line 3: pool id 'b000001' listed twice"):
        check_synthetic(ws, parse_sources([{"pool": "pool-run", "ids": str(ids)}]))
    with pytest.raises(InputError, match="synthetic\\[1\\].pool: no run '../x'"):
        check_synthetic(ws, parse_sources([{"pool": "pool-run"}, {"pool": "../x"}]))
    with pytest.raises(InputError, match="not a complete pool"):
        resolve_synthetic(ws, parse_sources([{"pool": "pool-run"}]))
