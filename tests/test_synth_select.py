"""Samplers and the select run: Table 2 counts, nesting and fixity, diverse exclusion, best/worst, all, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from synth_helpers import blob, cli, csv_set, pool_run

from engine.config import Configuration
from engine.errors import InputError
from engine.synth.samplers import ClassItems, create_sampler, needs, sampler_names
from engine.synth.select import plan_counts

PAPER = (11684, 3121)  # the paper's real training set: benign, melanoma
BIG = {"stylegan2": (100_000, 100_000), "pgan": (100_000, 100_000)}
# Table 2's synthetic counts per class on the paper's class sizes (round half to even, as pandas.sample).
TABLE2 = {
    "1:1/4": (2921, 780), "1:1/2": (5842, 1560), "1:1": (11684, 3121), "(1:1/2:1/2)": (5842, 1560),
    "(1:1/2:3/4)": (5842, 2341), "(1:1/2:1)": (5842, 3121), "1/16:1/16": (730, 195), "1/16:15/16": (10954, 2926),
    "1/8:1/8": (1460, 390), "1/8:7/8": (10224, 2731), "1/4:1/4": (2921, 780), "1/4:3/4": (8763, 2341),
    "1/2:1/2": (5842, 1560),
}


def hamming_matrix(h: np.ndarray, self_distance: int | None = None) -> np.ndarray:
    """Brute-force reference: every pairwise Hamming distance (the diagonal set to ``self_distance``)."""
    d = np.bitwise_count(h[:, None] ^ h[None, :]).astype(np.int64)
    if self_distance is not None:
        np.fill_diagonal(d, self_distance)
    return d


def _want(label: str) -> tuple[int, int]:
    c = Configuration.parse(label).ratio.counts(*PAPER)
    return c.synth_benign, c.synth_melanoma


def test_table2_counts_on_the_paper_class_sizes() -> None:
    for label, expected in TABLE2.items():
        plan = plan_counts(_want(label), {"stylegan2": BIG["stylegan2"]}, set(), all_gans=False, cap=False)
        assert plan == {"stylegan2": expected}, label
    # the paper's 1:1/2 all: translation GANs at their capacity (1,861 + 485 masks), noise GANs the label's count
    masks = (1861, 485)
    union = plan_counts(_want("1:1/2 all"), {**BIG, "pix2pixhd": masks, "spade": masks}, {"pix2pixhd", "spade"},
                        all_gans=True, cap=False)
    assert union == {"pix2pixhd": masks, "spade": masks, "pgan": (5842, 1560), "stylegan2": (5842, 1560)}
    assert sum(sum(v) for v in union.values()) == 19_496


def test_all_share_splits_the_label_count_and_caps_translation_gans() -> None:
    avail = {"pix2pixhd": (10, 40), "spade": (30, 40), "pgan": (1000, 1000), "stylegan2": (1000, 1000)}
    plan = plan_counts((100, 7), avail, {"pix2pixhd", "spade"}, all_gans=True, cap=False, all_mode="share")
    assert plan == {"pix2pixhd": (10, 2), "spade": (30, 2), "pgan": (30, 2), "stylegan2": (30, 1)}
    assert sum(b for b, _ in plan.values()) == 100 and sum(m for _, m in plan.values()) == 7


def test_requests_beyond_a_pool_or_a_translation_gan_are_refused_or_capped() -> None:
    with pytest.raises(InputError, match="stylegan2 pool holds 100 melanoma images but the selection asks for 3121"):
        plan_counts(_want("1:1"), {"stylegan2": (20_000, 100)}, set(), all_gans=False, cap=False)
    with pytest.raises(InputError, match="pix2pixhd has 1861 benign images .* set cap = true"):
        plan_counts(_want("1:1/2"), {"pix2pixhd": (1861, 485)}, {"pix2pixhd"}, all_gans=False, cap=False)
    assert plan_counts(_want("1:1/2"), {"pix2pixhd": (1861, 485)}, {"pix2pixhd"}, all_gans=False,
                       cap=True) == {"pix2pixhd": (1861, 485)}


def test_registry_in_timms_shape() -> None:
    assert sampler_names() == ["best", "diverse", "random", "worst"]
    assert needs("diverse") == {"seed", "diverse_threshold"} and needs("best") == set()
    with pytest.raises(KeyError, match="unknown sampler 'nope'"):
        create_sampler("nope")
    items = ClassItems([f"b{i:06d}" for i in range(50)], 0, lambda: np.zeros(50, np.uint64), lambda: np.zeros(50))
    a = create_sampler("random", seed=3, all_mode="union")(items)  # settings it does not take are ignored
    b = create_sampler("random", seed=3)(items)
    np.testing.assert_array_equal(a.order, b.order)
    assert sorted(a.order.tolist()) == list(range(50))
    assert not np.array_equal(a.order, create_sampler("random", seed=4)(items).order)


def test_best_and_worst_order_by_the_scripted_error() -> None:
    errors = np.array([0.5, 0.1, 2.0, 0.1, 1.0])
    items = ClassItems([f"m{i:06d}" for i in range(5)], 1, lambda: np.zeros(5, np.uint64), lambda: errors)
    best = create_sampler("best")(items)
    worst = create_sampler("worst")(items)
    assert best.order.tolist() == [1, 3, 0, 4, 2] and worst.order.tolist() == [2, 4, 0, 1, 3]  # ties: pool order
    np.testing.assert_array_equal(best.take(3)[1], [0.1, 0.1, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        create_sampler("best")(ClassItems(["b0"], 0, lambda: np.zeros(1, np.uint64), lambda: np.array([np.nan])))


def _hash_items(hashes: np.ndarray) -> ClassItems:
    return ClassItems([f"b{i:06d}" for i in range(len(hashes))], 0, lambda: hashes, lambda: np.zeros(len(hashes)))


def test_diverse_removes_near_duplicates_and_keeps_distinct_images() -> None:
    rng = np.random.default_rng(0)
    distinct = rng.integers(0, 2**63, 300, dtype=np.uint64)  # random 64-bit hashes: ~32 bits apart
    assert hamming_matrix(distinct).min(initial=64, where=~np.eye(300, dtype=bool)) > 8
    copies = distinct[:60].copy()
    for k, c in enumerate(copies):  # planted near-duplicates: 0 to 4 bits flipped
        for b in rng.choice(64, size=k % 5, replace=False):
            copies[k] = c ^ (np.uint64(1) << np.uint64(b))
    hashes = np.concatenate([distinct, copies])
    ordering = create_sampler("diverse", seed=1, diverse_threshold=4)(_hash_items(hashes))
    assert ordering.preferred == 300
    rejected = ordering.rejected
    assert rejected is not None and len(rejected.positions) == 60
    for pos, near, dist in zip(rejected.positions, rejected.nearest, rejected.distance, strict=True):
        twin = pos - 300 if pos >= 300 else pos + 300  # each pair keeps exactly one of the two
        assert near == twin and dist == hamming_matrix(hashes[[pos, near]])[0, 1] <= 4
    kept = ordering.order[:300]
    assert hamming_matrix(hashes[kept]).min(initial=64, where=~np.eye(300, dtype=bool)) > 4
    # diverse = the random order with the near-duplicates taken out
    random_order = create_sampler("random", seed=1)(_hash_items(hashes)).order
    assert kept.tolist() == [p for p in random_order.tolist() if p not in set(rejected.positions.tolist())]
    # beyond the kept images the order goes on with the excluded ones, farthest from a kept image first
    rest = ordering.order[300:]
    assert sorted(rest.tolist()) == sorted(rejected.positions.tolist())
    d = dict(zip(rejected.positions.tolist(), rejected.distance.tolist(), strict=True))
    assert [d[p] for p in rest.tolist()] == sorted(d.values(), reverse=True)
    positions, scores = ordering.take(5)  # score: distance to the nearest other selected image
    np.testing.assert_array_equal(scores, hamming_matrix(hashes[positions], self_distance=65).min(axis=1))


def _real_set(tmp_path: Path) -> Path:
    return csv_set(tmp_path / "real", 90)


def _train_sizes(real: Path) -> tuple[int, int]:
    """(benign, melanoma) of the training part of the real set's split (what the ratios scale)."""
    from engine.data import load_dataset
    from engine.data.split import split_dataset

    labels = [r.label for r in split_dataset(load_dataset("csv", real).records).train]
    return labels.count(0), labels.count(1)


def _pool_images(n: int, rng: np.random.Generator, res: int = 16) -> tuple[np.ndarray, list[int]]:
    labels = [i % 2 for i in range(n)]
    return np.stack([blob(rng, res, lab) for lab in labels]), labels


def _selection(ws: Path, run_id: str) -> list[dict[str, str]]:
    with open(ws / run_id / "selection.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _select(ws: Path, real: Path, *args: str) -> tuple[int, dict]:
    code, out = cli(ws, "select", *args, "--data", str(real), "--format", "csv", "--json")
    return code, (json.loads(out) if code == 0 else {"error": out})


def test_select_runs_are_nested_across_ratios_and_the_same_every_time(tmp_path: Path) -> None:
    ws, real = tmp_path / "ws", _real_set(tmp_path)
    pool = pool_run(ws, *_pool_images(200, np.random.default_rng(1)))
    runs = {}
    for label in ("1:1/4", "1:1/2", "1:1", "1:1/2 div"):
        code, doc = _select(ws, real, pool, "--label", label)
        assert code == 0 and doc["status"] == "succeeded", doc
        runs[label] = doc["run_id"]
    result = json.loads((ws / runs["1:1/2"] / "result.json").read_text())
    n_b, n_m = _train_sizes(real)
    assert result["real"] == {"benign": n_b, "melanoma": n_m}
    assert result["counts"] == {"benign": round(n_b / 2), "melanoma": round(n_m / 2)}
    assert result["gan"] == "stylegan2" and result["sampler"] == "random"
    sel = {label: _selection(ws, run) for label, run in runs.items()}
    assert [r.keys() for r in sel["1:1"]][0] == {"pool_id", "gan", "label", "rank", "score"}
    for cls in ("0", "1"):
        quarter, half, full = ([r["pool_id"] for r in sel[k] if r["label"] == cls] for k in ("1:1/4", "1:1/2", "1:1"))
        assert half[:len(quarter)] == quarter and full[:len(half)] == half
    assert all(r["score"] == "" for r in sel["1:1"])  # random has no score
    assert {r["gan"] for r in sel["1:1"]} == {"stylegan2"}
    # the selection never depends on anything but its config: a second run chooses the very same images
    code, doc = _select(ws, real, pool, "--label", "1:1/2")
    assert (ws / doc["run_id"] / "selection.csv").read_text() == (ws / runs["1:1/2"] / "selection.csv").read_text()
    # diverse: its own order, ids-<gan>.csv for the classifier, rejected.csv with the contract's columns
    div = json.loads((ws / runs["1:1/2 div"] / "result.json").read_text())
    assert div["sampler"] == "diverse" and div["parts"][0]["preferred"]["benign"] <= 100
    with open(ws / runs["1:1/2 div"] / "rejected.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["pool_id", "label", "nearest_kept", "distance"]
    ids = (ws / runs["1:1/2 div"] / "ids-stylegan2.csv").read_text().split()
    assert ids[0] == "id" and ids[1:] == [r["pool_id"] for r in _selection(ws, runs["1:1/2 div"])]


def test_select_all_mixes_noise_and_translation_pools(tmp_path: Path) -> None:
    ws, real = tmp_path / "ws", _real_set(tmp_path)
    rng = np.random.default_rng(2)
    sgn = pool_run(ws, *_pool_images(120, rng), family="stylegan2")
    p2p = pool_run(ws, *_pool_images(30, rng), family="pix2pixhd", translation=True)
    code, doc = _select(ws, real, sgn, p2p, "--label", "1:1/2 all")
    assert code == 0, doc
    result = json.loads((ws / doc["run_id"] / "result.json").read_text())
    parts = {p["gan"]: p for p in result["parts"]}
    n_b, n_m = _train_sizes(real)
    want = {"benign": round(n_b / 2), "melanoma": round(n_m / 2)}
    assert want["benign"] > 15 > want["melanoma"]  # so the translation pool is both capped and sampled
    assert parts["pix2pixhd"]["counts"] == {"benign": 15, "melanoma": want["melanoma"]}  # at most its capacity
    assert parts["stylegan2"]["counts"] == want  # each noise GAN: the label's count
    assert parts["pix2pixhd"]["sampler"] == "random" and parts["stylegan2"]["sampler"] == "random"
    assert result["counts"] == {"benign": 15 + want["benign"], "melanoma": 2 * want["melanoma"]}
    rows = _selection(ws, doc["run_id"])
    n_p2p = 15 + want["melanoma"]
    assert [r["gan"] for r in rows] == ["pix2pixhd"] * n_p2p + ["stylegan2"] * sum(want.values())  # paper order
    # a pool asked for more than it holds: one clear line, exit 2, no run
    code, doc = _select(ws, real, p2p, "--label", "1:1 p2p")
    assert code == 2 and f"pix2pixhd has 15 benign images (one per mask) but the selection asks for {n_b}" in doc[
        "error"]
    small = pool_run(ws, *_pool_images(20, rng))
    code, doc = _select(ws, real, small, "--label", "1:1")
    assert code == 2 and doc["error"].endswith(f"the stylegan2 pool holds 10 benign images but the selection asks "
                                               f"for {n_b}; sample a bigger pool")


def test_select_refuses_bad_input_before_anything_runs(tmp_path: Path) -> None:
    ws, real = tmp_path / "ws", _real_set(tmp_path)
    pool = pool_run(ws, *_pool_images(40, np.random.default_rng(3)))
    for args, message in [
        (("--label", "1:2"), "--label: bad ratio '1:2'"),
        (("--label", "1:0"), "has no synthetic images to select"),
        (("--label", "1:1/2 pgn"), "needs the pool of pgan (and only that), got stylegan2"),
        (("--label", "1:1/2 bst"), "--helper: best sampling needs a helper classifier"),
        (("--label", "1:1/2 div", "--diverse-threshold", "40"), "samplers.diverse_threshold"),
    ]:
        code, doc = _select(ws, real, pool, *args)
        assert code == 2 and message in doc["error"], (args, doc)
    code, doc = _select(ws, real, "pgan=" + pool, "--label", "1:1/2 pgn", "--helper", "nope")
    assert code == 2


def test_best_and_worst_select_by_the_helper_and_scoring_resumes(tmp_path: Path, monkeypatch) -> None:
    from synth_helpers import ScriptedHelper, helper_run

    from engine.synth import derived
    from engine.synth.pool import Pool

    ws, real = tmp_path / "ws", _real_set(tmp_path)
    rng = np.random.default_rng(4)
    images, labels = _pool_images(120, rng)
    images = np.clip(images.astype(int) + rng.integers(-60, 60, (120, 1, 1, 1)), 0, 255).astype(np.uint8)
    pool = pool_run(ws, images, labels)
    scripted = ScriptedHelper()
    helper = helper_run(ws, monkeypatch, scripted)
    brightness = Pool(ws / pool).images[np.arange(120)].astype(np.float64).mean(axis=(1, 2, 3)) / 255
    picked = {}
    for tag in ("bst", "wst"):
        code, doc = _select(ws, real, pool, "--label", f"1:1/2 {tag}", "--helper", helper)
        assert code == 0, doc
        picked[tag] = _selection(ws, doc["run_id"])
    assert scripted.scored == 120  # bst and wst score the pool once: the second reads the workspace cache
    pool_labels = Pool(ws / pool).labels
    for tag, rows in picked.items():
        for cls in (0, 1):
            mine = [r for r in rows if r["label"] == str(cls)]
            rows_of = Pool(ws / pool).rows_of([r["pool_id"] for r in mine])
            expected = np.sort(brightness[pool_labels == cls])
            expected = expected if tag == "bst" else expected[::-1]
            np.testing.assert_allclose([float(r["score"]) for r in mine], expected[:len(mine)], rtol=1e-5)
            np.testing.assert_allclose(brightness[rows_of], expected[:len(mine)])
    # scoring is resumable: stopped after the first chunk, resumed, it equals one uninterrupted pass
    fresh = ScriptedHelper()
    monkeypatch.setattr("engine.train.trained.load_classifier", lambda workspace, run, device="cpu": fresh)
    monkeypatch.setattr(derived, "_dir", lambda workspace, run: Path(workspace) / "other-cache")
    (ws / "other-cache").mkdir()
    calls = iter([False, True])
    assert derived.pool_errors(ws, pool, Pool(ws / pool), helper, "cpu", batch_size=4,
                               stop=lambda: next(calls, True)) is None
    assert fresh.scored == 64 and len(list((ws / "other-cache").glob("*.partial.npy"))) == 1
    errors = derived.pool_errors(ws, pool, Pool(ws / pool), helper, "cpu", batch_size=4)
    assert fresh.scored == 120 and not list((ws / "other-cache").glob("*.partial.npy"))
    np.testing.assert_allclose(errors, brightness, rtol=1e-6)


def test_a_classify_run_trains_on_a_selection_and_records_it(tmp_path: Path) -> None:
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    ws, real = tmp_path / "ws", _real_set(tmp_path)
    pool = pool_run(ws, *_pool_images(120, np.random.default_rng(5)))
    code, doc = _select(ws, real, pool, "--label", "1:1/2 div")
    assert code == 0, doc
    select_run = doc["run_id"]
    selected = json.loads((ws / select_run / "result.json").read_text())["counts"]
    code, out = cli(ws, "train", "--data", str(real), "--format", "csv", "--model", "test_resnet", "--res", "32",
                    "--no-pretrained", "--batch-size", "256", "--epochs", "1", "--tta", "1", "--json",
                    "--synthetic", f"select:{select_run}")
    assert code == 0, out
    result = json.loads((ws / json.loads(out)["run_id"] / "result.json").read_text())
    assert result["gan"]["family"] == "stylegan2" and result["gan"]["pool_runs"] == [pool]
    assert result["sampler"] == "diverse"
    assert result["counts"]["synthetic"] == selected
    (source,) = result["synthetic"]
    assert (source["source"], source["select_run"], source["selected_by"]) == ("select", select_run, "diverse")
    code, out = cli(ws, "train", "--data", str(real), "--format", "csv", "--model", "test_resnet", "--res", "32",
                    "--no-pretrained", "--epochs", "1", "--synthetic", "select:no-such-run")
    assert code == 2 and "synthetic[0].select: no run 'no-such-run'" in out
    # a selection scaled by another real training split (split seed 0) is refused for a run on split seed 3
    code, out = cli(ws, "train", "--data", str(real), "--format", "csv", "--model", "test_resnet", "--res", "32",
                    "--no-pretrained", "--epochs", "1", "--split-seed", "3", "--synthetic", f"select:{select_run}")
    assert code == 2 and f"run {select_run} chose its images for the training split of" in out and "seed 0" in out


def test_a_selection_resolves_to_one_pool_part_per_gan(tmp_path: Path) -> None:
    from engine.synth.mix import SelectSource, check_synthetic, describe, parse_sources, resolve_synthetic

    ws, real = tmp_path / "ws", _real_set(tmp_path)
    rng = np.random.default_rng(6)
    pgn = pool_run(ws, *_pool_images(100, rng), family="pgan")
    sgn = pool_run(ws, *_pool_images(100, rng), family="stylegan2")
    code, doc = _select(ws, real, pgn, sgn, "--label", "1:1/4 all div")
    assert code == 0, doc
    sources = parse_sources([{"select": doc["run_id"]}])
    assert sources == [SelectSource(select=doc["run_id"])]
    check_synthetic(ws, sources)
    parts = resolve_synthetic(ws, sources)
    rows = _selection(ws, doc["run_id"])
    assert [p.provenance["family"] for p in parts] == ["pgan", "stylegan2"]
    for part, gan in zip(parts, ("pgan", "stylegan2"), strict=True):
        assert part.ids == [r["pool_id"] for r in rows if r["gan"] == gan]
        assert part.labels.tolist() == [int(r["label"]) for r in rows if r["gan"] == gan]
    summary = describe(parts)
    assert summary["gan"]["family"] == "all" and summary["sampler"] == "diverse"
    assert summary["gan"]["pool_runs"] == sorted([pgn, sgn])
    pending = tmp_path / "ws" / "not-yet"
    pending.mkdir()
    check_synthetic(ws, [SelectSource(select="not-yet")])  # queued behind its select run: fine at enqueue
    with pytest.raises(InputError, match="no selection"):
        resolve_synthetic(ws, [SelectSource(select="not-yet")])
