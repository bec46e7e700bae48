"""The Builder on the experiment grid and the Preview's images, on the deterministic workspace of
tests/tui_fixtures.py plus a tiny ISIC 2019 layout, an experiments file, a selection and an audit (generated
images, no training)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from textual.widgets import Button, Input, Select, Static
from tui_fixtures import make_app, make_workspace, settle

from engine import grid
from engine import store as st
from engine.config import load_experiments
from engine.synth.audit import data_of, reference_records, run_meta
from engine.synth.pool import Pool
from ganaug_tui import reads
from ganaug_tui.app import GanaugApp
from ganaug_tui.screens.builder import BuilderScreen, plan_text
from ganaug_tui.screens.modals import Confirm
from ganaug_tui.screens.preview import PreviewScreen

EXPERIMENTS = """
[data.train]
format = "isic2019"
root = "isic"

[protocol]
model = {{ name = "test_resnet", pretrained = false, res = 32 }}

[gans.sgn]
family = "stylegan2"
preset = "tiny"
features = "baseline"
pool_per_class = 40

[[experiment]]
name = "small"
baseline = "1:0"
replicates = 2

[experiment.groups]
baseline = ["1:0"]
ratio = ["1:1/4", "1:1/2"]
"""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_isic2019) -> tuple[Path, dict[str, str]]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANAUG_TUI_IMAGES", "halfcell")
    make_isic2019(tmp_path / "isic", [(f"ISIC_{i:07d}", "MEL" if i % 4 == 0 else "NV") for i in range(40)])
    (tmp_path / "experiments.toml").write_text(EXPERIMENTS.format())
    workspace = tmp_path / "runs"
    return workspace, make_workspace(workspace)




async def open_builder(app: GanaugApp, pilot) -> BuilderScreen:
    await settle(app, pilot)
    await pilot.press("1")
    await settle(app, pilot)
    screen = app.screen
    assert isinstance(screen, BuilderScreen)
    return screen


def text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


# ------------------------------------------------------------------------------------------ builder
async def test_an_invalid_ratio_is_flagged_while_typing_and_cannot_be_enqueued(ws) -> None:
    workspace, _ = ws
    before = len(st.open_store(workspace, readonly=True).list_runs())
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        ratio = screen.query_one("#ratio", Input)
        ratio.focus()
        ratio.value = ""
        await pilot.press(*"1:1/")
        await settle(app, pilot)
        assert ratio.has_class("-invalid")
        assert "bad ratio '1:1/'" in text(screen, "#ratio-check")
        assert "cannot enqueue: bad ratio" in text(screen, "#plan")
        assert screen.query_one("#enqueue", Button).disabled
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await pilot.press("4")  # now 1:1/4
        await settle(app, pilot)
        assert not ratio.has_class("-invalid")
        assert "✓ 1:1/4" in text(screen, "#ratio-check")
        assert not screen.query_one("#enqueue", Button).disabled
    assert len(st.open_store(workspace, readonly=True).list_runs()) == before


async def test_a_replicate_count_beyond_the_cap_is_refused_before_any_plan(ws) -> None:
    """The preview plans at every keystroke: a typo of millions of replicates must not start an endless plan."""
    workspace, _ = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        screen.query_one("#replicates", Input).value = "99999999"
        await settle(app, pilot)
        assert "replicates must be an integer from 1 to 1,000" in text(screen, "#plan")
        assert screen.query_one("#enqueue", Button).disabled
        screen.query_one("#replicates", Input).value = "2"
        await settle(app, pilot)
        assert not screen.query_one("#enqueue", Button).disabled and "replicates must" not in text(screen, "#plan")


async def test_the_preview_is_the_grids_and_enqueue_stores_the_experiment(ws) -> None:
    workspace, _ = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        assert screen.query_one("#template", Select).value == "small"
        screen.query_one("#gan", Select).value = "new"
        screen.query_one("#sampler", Select).value = "best"
        screen.query_one("#ratio", Input).value = "1:1/2"
        screen.query_one("#experiment", Input).value = "mine"
        await settle(app, pilot)
        build, why = screen.build()
        assert build is not None, why
        exp = build.experiment(workspace, None)
        assert exp.labels == ["1:0", "1:1/2 bst"] and exp.gans["sgn"].preset == "tiny"
        planned = grid.preview(workspace, exp)
        assert text(screen, "#plan") == plan_text(planned, build)
        summary = planned.summary()
        assert summary["classify"] == {"runs": 4, "new": 4, "reused": 0}
        assert {"gan-train", "gan-pool", "select"} <= set(summary)
        c = exp.configurations[1].ratio.counts(planned.sizes.benign, planned.sizes.melanoma)
        assert f"synthetic  {c.synth_benign:>7,} benign  {c.synth_melanoma:>6,} melanoma" in text(screen, "#counts")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await pilot.press("ctrl+s")  # again: everything is reused, nothing is duplicated
        await settle(app, pilot)
    with st.open_store(workspace, readonly=True) as store:
        runs = store.list_runs(experiment="mine")
        spec = store.experiment_spec("mine")
    assert len(runs) == len(planned.new)
    assert sorted((r.kind, r.label) for r in runs) == sorted((planned.runs[i].kind, planned.runs[i].label)
                                                             for i in planned.new)
    assert spec == exp.to_spec()


async def test_a_whole_experiment_or_some_of_its_labels(ws) -> None:
    workspace, _ = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        screen.query_one("#what", Select).value = "whole"
        await settle(app, pilot)
        labels = screen.query_one("#labels")
        labels.deselect("1:1/4")
        await settle(app, pilot)
        exp = load_experiments(workspace.parent / "experiments.toml", workspace=workspace)[0]
        planned = grid.preview(workspace, exp, only=["1:0", "1:1/2"], replicates=2)
        assert text(screen, "#plan") == plan_text(planned, screen.build()[0])
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    with st.open_store(workspace, readonly=True) as store:
        runs = store.list_runs(experiment="small")
        assert store.experiment_spec("small")["groups"] == exp.to_spec()["groups"]
    assert sorted({r.label for r in runs if r.kind == "classify"}) == ["1:0", "1:1/2"]
    assert len(runs) == len(planned.new)


async def test_saving_writes_experiments_toml_and_asks_before_replacing(ws) -> None:
    workspace, _ = ws
    toml = workspace.parent / "experiments.toml"
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        screen.query_one("#ratio", Input).value = "1:1/4"
        screen.query_one("#experiment", Input).value = "mine"
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        saved = {e.name: e for e in load_experiments(toml, workspace=workspace)}
        assert saved["mine"].labels == ["1:0", "1:1/4"] and saved["small"].labels == ["1:0", "1:1/4", "1:1/2"]
        assert saved["mine"].classify_base() == saved["small"].classify_base()
        screen.query_one("#ratio", Input).value = "1:1"
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert isinstance(app.screen, Confirm)
        await pilot.press("escape")  # keep it
        await settle(app, pilot)
        assert [e.labels for e in load_experiments(toml, workspace=workspace) if e.name == "mine"] == [["1:0", "1:1/4"]]


# ------------------------------------------------------------------------------------------ preview
def add_selection_and_audit(workspace: Path, ids: dict[str, str]) -> str:
    """A finished diverse select run over the fixture's pool, and an audit of the pool (as their kinds write them)."""
    pool = Pool(workspace / ids["pool"])
    with st.open_store(workspace) as store:
        sel = store.create_run("select", {"label": "1:1/2 div"}, label="1:1/2 div")
    run_dir = workspace / sel
    rows = [[pid, "stylegan2", int(pid[0] == "m"), rank, 10 - rank] for rank, pid in
            enumerate([i for i in pool.ids if i.endswith(("1", "2", "3", "4", "5"))], start=1)]
    with open(run_dir / "selection.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["pool_id", "gan", "label", "rank", "score"], *rows])
    with open(run_dir / "rejected.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["pool_id", "label", "nearest_kept", "distance"], ["b000006", 0, "b000001", 3],
                                  ["m000007", 1, "m000002", 1]])
    (run_dir / "result.json").write_text(json.dumps({
        "label": "1:1/2 div", "gan": "stylegan2", "sampler": "diverse", "counts": {"benign": 5, "melanoma": 5},
        "parts": [{"gan": "stylegan2", "pool": ids["pool"], "sampler": "diverse"}]}))
    audit = workspace / ids["pool"] / "audit"
    (audit / "closest").mkdir(parents=True)
    closest = []
    for rank, pid in enumerate(("m000003", "b000000"), start=1):
        png = f"closest/{rank:02d}-{pid}.png"
        Image.fromarray(np.full((16, 34, 3), 40 * rank, np.uint8)).save(audit / png)
        closest.append({"pool_id": pid, "train_image": f"ISIC_{rank:07d}", "phash_distance": 2 * rank,
                        "feature_distance": 0.1 * rank, "png": png})
    (audit / "audit.json").write_text(json.dumps({
        "reference": "val", "threshold": {"phash": 6.0, "feature": 0.25}, "closest": closest,
        "per_class": {"benign": {"n": 8, "suspected_copies": 1, "fraction": 0.125},
                      "melanoma": {"n": 8, "suspected_copies": 0, "fraction": 0.0}}}))
    return sel


async def open_preview(app: GanaugApp, pilot) -> PreviewScreen:
    await settle(app, pilot)
    await pilot.press("4")
    await settle(app, pilot)
    screen = app.screen
    assert isinstance(screen, PreviewScreen)
    return screen


async def test_preview_shows_the_pools_images_per_class_and_scrubs_its_gans_grids(ws) -> None:
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_preview(app, pilot)
        assert screen.query_one("#source", Select).value == ids["pool"]
        pool = Pool(workspace / ids["pool"])
        for label, name in enumerate(("benign", "melanoma")):
            shown = np.asarray(screen.query_one(f"#pool-{name}").image)
            want = np.asarray(reads.mosaic(pool.images[np.flatnonzero(pool.labels == label)[:8]]))
            assert np.array_equal(shown, want)
        await pilot.press("m", "m")  # sample grids: a pool shows the grids of the GAN run that made it
        await settle(app, pilot)
        assert screen.frames is not None and screen.frames.run_id == ids["gan"]
        assert "kimg 8" in text(screen, "#caption")
        await pilot.press("left")
        await settle(app, pilot)
        assert "checkpoint 2/3, kimg 4" in text(screen, "#caption") and "fid_domain 16" in text(screen, "#caption")
        assert str(screen.query_one("#grid-pic").image).endswith("kimg-000004.png")


async def test_preview_shows_a_selections_picks_and_the_diverse_rejects(ws) -> None:
    workspace, ids = ws
    sel = add_selection_and_audit(workspace, ids)
    pool = Pool(workspace / ids["pool"])
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_preview(app, pilot)
        screen.query_one("#source", Select).value = sel
        await settle(app, pilot)
        assert "selection" in text(screen, "#caption") and "diverse sampler" in text(screen, "#caption")
        first = np.asarray(screen.query_one("#first-melanoma").image)
        want = reads.mosaic(pool.images[pool.rows_of(["m000001", "m000002", "m000003", "m000004", "m000005"])])
        assert np.array_equal(first, np.asarray(want))
        assert "#6 m000001 4" in text(screen, "#first-note-melanoma")
        rejects = np.asarray(screen.query_one("#rejects").image)
        pair = pool.images[pool.rows_of(["m000007", "m000002"])]
        assert np.array_equal(rejects[:32, :32], pair[0]) and np.array_equal(rejects[:32, 34:66], pair[1])
        assert "m000007 ≈ m000002: distance 1" in text(screen, "#rejects-note")


async def test_preview_shows_an_audits_closest_pairs_with_their_distances(ws) -> None:
    workspace, ids = ws
    add_selection_and_audit(workspace, ids)
    app = make_app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_preview(app, pilot)
        screen.query_one("#source", Select).value = ids["pool"]
        await settle(app, pilot)
        await pilot.press("m", "m", "m")  # pool -> real vs synthetic -> sample grids -> (a pool has no picks) audit
        await settle(app, pilot)
        assert screen.query_one("#audit-pic").display and not screen.query_one("#pool-benign").display
        note = text(screen, "#audit-note")
        assert "1. m000003 ↔ ISIC_0000001: pHash 2, feature 0.100" in note and "2. b000000 ↔ ISIC_0000002" in note
        assert "benign 1/8 suspected" in text(screen, "#caption")
        pairs = np.asarray(screen.query_one("#audit-pic").image)
        assert pairs.shape == (16, 34 * 2 + 6, 3) and (pairs[:, :34] == 40).all() and (pairs[:, 40:] == 80).all()


def test_real_images_are_the_training_part_of_the_gans_split(ws, make_isic2019) -> None:
    """What the audit calls the GAN's training images, not a split derived another way."""
    workspace, _ = ws
    root = workspace.parent / "isic"
    with st.open_store(workspace) as store:
        gan = store.create_run("gan-train", {"family": "stylegan2", "data": {"format": "isic2019", "root": str(root),
                                                                            "split_seed": 3}})
    page = reads.load_real_page(workspace, gan, 0, 4, 16)
    assert page.error is None, page.error
    train, _ = reference_records(workspace, data_of(workspace, run_meta(workspace / gan)))
    for label, name in enumerate(("benign", "melanoma")):
        members = [r for r in train if r.label == label][:4]
        want = reads.mosaic(np.stack([reads.load_tile(r.image, 16) for r in members]))
        assert np.array_equal(np.asarray(page.mosaics[name]), np.asarray(want))



def test_a_missing_or_damaged_real_image_is_one_line_not_a_crash(ws) -> None:
    """A copied workspace whose data folder lost or broke an image: the real side says so (the worker that reads
    it must not raise, or the whole UI exits)."""
    workspace, _ = ws
    root = workspace.parent / "isic"
    with st.open_store(workspace) as store:
        gan = store.create_run("gan-train", {"family": "stylegan2", "data": {"format": "isic2019", "root": str(root),
                                                                            "split_seed": 3}})
    train, _ = reference_records(workspace, data_of(workspace, run_meta(workspace / gan)))
    first = next(r for r in train if r.label == 0)
    Path(first.image).write_bytes(b"not an image")
    page = reads.load_real_page(workspace, gan, 0, 4, 16)
    assert page.error is not None and Path(first.image).name in page.error and not page.mosaics
    Path(first.image).unlink()
    page = reads.load_real_page(workspace, gan, 0, 4, 16)
    assert page.error is not None and Path(first.image).name in page.error and not page.mosaics

async def test_a_configuration_keeps_the_templates_split(ws) -> None:
    """The split seed field starts at the template's seed and the data table keeps its split file: a configuration
    built on the template's data trains on the template's split, not on seed 0's."""
    workspace, _ = ws
    toml = workspace.parent / "experiments.toml"
    (workspace.parent / "split.csv").write_text("image,split\n")
    split = 'root = "isic"\nsplit_seed = 3\nsplit_file = "split.csv"'
    toml.write_text(EXPERIMENTS.format().replace('root = "isic"', split))
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        assert screen.query_one("#split-seed", Input).value == "3"
        screen.query_one("#ratio", Input).value = "1:1/4"
        await settle(app, pilot)
        build, why = screen.build()
        assert build is not None, why
        template = load_experiments(toml, workspace=workspace)[0]
        assert build.experiment(workspace, None).train == template.train
        screen.query_one("#split-seed", Input).value = "5"
        await settle(app, pilot)
        train = screen.build()[0].experiment(workspace, None).train
        assert (train.split_seed, train.split_file) == (5, template.train.split_file)


async def test_the_preview_follows_the_store_after_enqueueing(ws) -> None:
    """Once the runs are queued the preview says they are reused (what a second enqueue would do), not "new"."""
    workspace, _ = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        screen.query_one("#gan", Select).value = "new"
        screen.query_one("#ratio", Input).value = "1:1/4"
        screen.query_one("#experiment", Input).value = "mine"
        await settle(app, pilot)
        build = screen.build()[0]
        assert f"{len(grid.preview(workspace, build.experiment(workspace, None)).new)} new" in text(screen, "#plan")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        after = grid.preview(workspace, build.experiment(workspace, None))
        assert not after.new
        assert text(screen, "#plan") == plan_text(after, build)


async def test_the_counts_show_for_a_custom_data_set_given_by_a_relative_path(ws) -> None:
    """The class sizes are kept under the root as typed: ``isic`` (relative to experiments.toml) shows its counts
    as its absolute path does."""
    workspace, _ = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        shown = text(screen, "#counts")
        assert "of a training split of" in shown
        screen.query_one("#data", Select).clear()
        await settle(app, pilot)
        screen.query_one("#root", Input).value = "isic"
        await settle(app, pilot)
        assert text(screen, "#counts") == shown


async def test_a_chosen_gan_without_a_pool_gets_the_files_pool_size(ws) -> None:
    """Naming a GAN run that has no finished pool yet (still training) plans its pool at the experiment's
    pool_per_class, not at the paper's 100,000 per class."""
    workspace, ids = ws
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_builder(app, pilot)
        assert screen.query_one("#gan", Select).value == ids["gan"]  # the fixture's GAN, training
        screen.query_one("#ratio", Input).value = "1:1/4"
        await settle(app, pilot)
        exp = screen.build()[0].experiment(workspace, None)
        assert exp.gans["sgn"].pool_per_class == 40
        pools = [r for r in grid.preview(workspace, exp).runs if r.kind == "gan-pool"]
        assert [r.config["per_class"] for r in pools] == [40]
