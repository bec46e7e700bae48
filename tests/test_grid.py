"""The experiment grid: the shipped experiments expanded into runs (kinds, sharing, dependencies, the paper's counts
per class), submissions that reuse what the store has, the protocol refusal, and housekeeping on a whole
experiment or label."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from engine import grid
from engine import store as st
from engine.config import find_experiment, read_experiments
from engine.errors import InputError

PAPER = grid.Sizes(11_684, 3_121, masks=(1_861, 485))  # the paper's training split and its 2,346 training masks


def shipped(name: str, sets: list[str] | None = None):  # noqa: ANN201
    return find_experiment(read_experiments(sets=sets or []), name)


def by_label(planned: grid.Plan, kind: str = "classify") -> dict[str, list[grid.PlannedRun]]:
    out: dict[str, list[grid.PlannedRun]] = {}
    for r in planned.runs:
        if r.kind == kind:
            for label in r.labels:
                out.setdefault(label, []).append(r)
    return out


# ------------------------------------------------------------------------------------------ expansion (what-if)
def test_augmentation_expands_into_shared_gans_pools_selections_and_paired_fine_tunes(tmp_path) -> None:
    planned = grid.plan(shipped("augmentation"), tmp_path, sizes=PAPER)
    kinds = {k: v["runs"] for k, v in planned.summary().items()}
    # 16 distinct configurations ((1:1/2:1/2) is 1:1/2) x 10 replicates; one GAN and one pool per tag; one
    # selection per distinct synthetic set.
    assert kinds == {"classify": 160, "gan-train": 4, "gan-pool": 4, "select": 15}
    runs = planned.runs
    for r in runs:
        assert all(p < r.index for p in r.parents)  # dependency order
    same = by_label(planned)
    assert same["(1:1/2:1/2)"] == same["1:1/2"] and len(same["1:1/2"]) == 10
    assert [r.replicate for r in same["1:1/2"]] == list(range(10))
    sel = {label: rs[0] for label, rs in by_label(planned, "select").items()}
    assert sel["(1:1/2:1/2)"] is sel["1:1/2"] and sel["1:1/2"].config["label"] == "1:1/2"
    # Every replicate of a configuration trains on the one selection (the synthetic set is fixed).
    assert all(r.parents == [sel["1:1/2"].index] for r in same["1:1/2"])
    # The hidden edge: best/worst rank with the baseline's replicate 0.
    baseline0 = next(r for r in same["1:0"] if r.replicate == 0)
    for label in ("1:1/2 bst", "1:1/2 wst", "1:1 bst", "1:1 wst"):
        assert baseline0.index in sel[label].parents
        assert sel[label].config["samplers"]["helper"] == st.batch_ref(planned.new.index(baseline0.index))
    assert baseline0.index not in sel["1:1/2 div"].parents and "helper" not in sel["1:1/2 div"].config["samplers"]
    # `all` takes every GAN's pool; the StyleGAN2 GAN and pool serve every label that trains on them.
    pools = {r.config["gan_run"]: r for r in runs if r.kind == "gan-pool"}
    assert len(sel["1:1/2 all"].config["pools"]) == 4 and set(sel["1:1/2 all"].parents) == {p.index for p in
                                                                                            pools.values()}
    sgn_pool = runs[sel["1:1/4"].parents[0]]
    assert {"1:1/4", "1:1", "1:1/2 all", "1:1 div"} <= set(sgn_pool.labels)


def test_the_gan_waits_for_the_baseline_when_its_fid_uses_domain_features(tmp_path) -> None:
    exp = shipped("anonymization", ['gans.sgn={"family": "stylegan2", "preset": "paper", "features": "baseline"}'])
    planned = grid.plan(exp, tmp_path, sizes=PAPER)
    gan = next(r for r in planned.runs if r.kind == "gan-train")
    baseline0 = planned.runs[gan.parents[0]]
    assert baseline0.kind == "classify" and baseline0.labels == ["1:0"] and baseline0.replicate == 0
    assert gan.config["metrics"] == {"features": st.batch_ref(planned.new.index(baseline0.index))}
    assert baseline0.index < gan.index


def test_only_plans_the_hidden_parents_too(tmp_path) -> None:
    planned = grid.plan(shipped("augmentation"), tmp_path, sizes=PAPER, only=["1:1/2 bst"], replicates=2)
    assert [(r.kind, r.label, r.replicate) for r in planned.runs] == [
        ("classify", "1:0", 0), ("gan-train", "1:1/2 bst", None), ("gan-pool", "1:1/2 bst", None),
        ("select", "1:1/2 bst", None), ("classify", "1:1/2 bst", 0), ("classify", "1:1/2 bst", 1)]
    with pytest.raises(InputError, match="not a configuration of experiment 'augmentation'"):
        grid.plan(shipped("augmentation"), tmp_path, sizes=PAPER, only=["1/2:0"])


# The paper's Table 2 on its training split: (real benign, real melanoma, synthetic benign, synthetic melanoma).
TABLE2 = {
    "augmentation": {
        "1:0": (11684, 3121, 0, 0), "1:1/4": (11684, 3121, 2921, 780), "1:1/2": (11684, 3121, 5842, 1560),
        "1:1": (11684, 3121, 11684, 3121), "(1:1/2:1/2)": (11684, 3121, 5842, 1560),
        "(1:1/2:3/4)": (11684, 3121, 5842, 2341), "(1:1/2:1)": (11684, 3121, 5842, 3121),
        "1:1/2 p2p": (11684, 3121, 1861, 485), "1:1/2 spd": (11684, 3121, 1861, 485),
        "1:1/2 pgn": (11684, 3121, 5842, 1560), "1:1/2 all": (11684, 3121, 15406, 4090),
        "1:1/2 div": (11684, 3121, 5842, 1560), "1:1/2 bst": (11684, 3121, 5842, 1560),
        "1:1/2 wst": (11684, 3121, 5842, 1560), "1:1 bst": (11684, 3121, 11684, 3121),
        "1:1 wst": (11684, 3121, 11684, 3121), "1:1 div": (11684, 3121, 11684, 3121)},
    "anonymization": {
        "1/16:1/16": (730, 195, 730, 195), "1/16:15/16": (730, 195, 10954, 2926), "1/16:0": (730, 195, 0, 0),
        "1/8:1/8": (1460, 390, 1460, 390), "1/8:7/8": (1460, 390, 10224, 2731), "1/8:0": (1460, 390, 0, 0),
        "1/4:1/4": (2921, 780, 2921, 780), "1/4:3/4": (2921, 780, 8763, 2341), "1/4:0": (2921, 780, 0, 0),
        "1/2:1/2": (5842, 1560, 5842, 1560), "1/2:0": (5842, 1560, 0, 0), "1:1": (11684, 3121, 11684, 3121),
        "1:0": (11684, 3121, 0, 0)},
}


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_dry_run_counts_per_class_are_the_papers_for_every_table_2_label(name, tmp_path, monkeypatch, capsys) -> None:
    from engine.cli import main

    monkeypatch.chdir(Path(__file__).parent.parent)  # the repository's experiments.toml
    monkeypatch.setattr(sys, "argv", ["ganaug", "run", name, "--dry-run", "--json", "--class-sizes", "11684:3121",
                                      "--mask-sizes", "1861:485", "-w", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as exc:
        main()
    out, _ = capsys.readouterr()
    assert exc.value.code == 0
    doc = json.loads(out)
    assert set(doc) == {"experiment", "runs"} and doc["experiment"] == name
    seen = {}
    for i, run in enumerate(doc["runs"]):
        assert set(run) == {"kind", "label", "labels", "replicate", "reused", "parents", "counts"}
        assert run["label"] == run["labels"][0] and run["reused"] is False and all(p < i for p in run["parents"])
        assert (run["counts"] is None) == (run["kind"] != "classify")
        assert (run["replicate"] is None) == (run["kind"] != "classify")
        if run["kind"] == "classify":
            c = run["counts"]
            for label in run["labels"]:
                seen[label] = (c["real"]["benign"], c["real"]["melanoma"], c["synthetic"]["benign"],
                               c["synthetic"]["melanoma"])
    assert seen == TABLE2[name]
    assert not (tmp_path / "nowhere").exists()


def test_a_translation_gan_asking_for_more_than_its_masks_is_refused_without_cap(tmp_path) -> None:
    exp = shipped("augmentation", ["experiment.augmentation.cap=false"])
    with pytest.raises(InputError, match=r"'1:1/2 p2p'.*1861 benign.*5842"):
        grid.plan(exp, tmp_path, sizes=PAPER)
    small_pool = shipped("demo", ["experiment.demo.gans.sgn.pool_per_class=300"])
    with pytest.raises(InputError, match=r"'1:1/2'.*holds 300 benign images but the selection asks for 334"):
        grid.plan(small_pool, tmp_path, sizes=grid.Sizes(669, 157))


# ------------------------------------------------------------------------------------------ submissions
TINY = [  # the demo experiment, shrunk for tests: tiny GAN, one-epoch fine-tunes of a 16-px test_resnet, 2 TTA
    "experiment.demo.gans.sgn.preset=tiny", "experiment.demo.gans.sgn.pool_per_class=40",
    'experiment.demo.protocol.model={"name": "test_resnet", "pretrained": false, "res": 16}',
    "experiment.demo.protocol.optim.max_epochs=1", "experiment.demo.protocol.tta.replicas=2",
    "experiment.demo.replicates=2",
]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> tuple[Path, list[str]]:
    """A tiny demo collection and the --set items that point the demo experiment at it."""
    from engine.data.demo_data import generate_demo
    from engine.demo import experiment_sets

    out = tmp_path_factory.mktemp("grid-demo") / "data"
    manifest = generate_demo(out, seed=1, res=16, n_train=60, workers=1)
    return out, [*experiment_sets(out, manifest), *TINY]


def tiny_demo(sets: list[str], *extra: str):  # noqa: ANN201
    return find_experiment(read_experiments(sets=[*sets, *extra]), "demo")


def test_resubmitting_reuses_every_run_and_more_replicates_add_only_the_missing(demo_data, tmp_path) -> None:
    _, sets = demo_data
    ws = tmp_path / "ws"
    exp = tiny_demo(sets)
    planned, first = grid.enqueue(ws, exp)
    assert len(first.created) == len(planned.runs) == 6 * 2 + 1 + 1 + 4  # fine-tunes, GAN, pool, selections
    with st.open_store(ws) as s:
        assert {r.status for r in s.list_runs()} <= {st.QUEUED, st.BLOCKED}
        assert len(s.run_labels("demo")) == sum(len(r.labels) for r in planned.runs)
        assert s.experiment_spec("demo")["replicates"] == 2
    again, second = grid.enqueue(ws, exp)
    assert second.created == [] and again.new == [] and second.run_ids == first.run_ids
    assert all(r.reused for r in again.runs)
    more, third = grid.enqueue(ws, exp, replicates=3)
    assert len(third.created) == 6  # one per configuration
    assert {more.runs[i].replicate for i in more.new} == {2}
    assert set(first.created) < set(third.run_ids)
    with st.open_store(ws) as s:
        assert s.experiment_spec("demo")["replicates"] == 3


def test_a_gan_runs_config_reads_back_as_the_spec_that_reuses_it(demo_data, tmp_path) -> None:
    """The TUI Builder names an existing GAN run through ``gan_spec_of``: another experiment with that spec plans
    the same run, not a new GAN."""
    from dataclasses import replace

    _, sets = demo_data
    ws = tmp_path / "ws"
    exp = tiny_demo(sets)
    _, first = grid.enqueue(ws, exp, only=["1:1/2"])
    with st.open_store(ws) as s:
        gan = next(r for r in s.get_runs(first.run_ids) if r.kind == "gan-train")
    spec = grid.gan_spec_of("sgn", gan.config, exp.gans["sgn"].pool_per_class)  # kimg: the preset's, now explicit
    other = replace(exp, name="other", gans={"sgn": spec})
    planned = grid.preview(ws, other, only=["1:1/2"])
    assert [r.run_id for r in planned.runs if r.kind == "gan-train"] == [gan.id]
    slower = replace(exp, name="slower", gans={"sgn": replace(spec, kimg=(spec.kimg or 1) + 1)})
    assert [r.run_id for r in grid.preview(ws, slower, only=["1:1/2"]).runs if r.kind == "gan-train"] == [None]


def test_a_run_that_ended_badly_is_requeued_by_the_next_submission(demo_data, tmp_path) -> None:
    _, sets = demo_data
    ws = tmp_path / "ws"
    exp = tiny_demo(sets)
    _, first = grid.enqueue(ws, exp, only=["1:1/2"])
    with st.open_store(ws) as s:
        gan = next(r.id for r in s.get_runs(first.run_ids) if r.kind == "gan-train")
        s.finish(gan, st.FAILED, "boom")
        assert {r.status for r in s.list_runs(kind="classify") if r.parents} == {st.DEPENDENCY_FAILED}
    _, second = grid.enqueue(ws, exp, only=["1:1/2"])
    with st.open_store(ws) as s:  # the pool, the selection and the fine-tunes: everything behind the GAN
        waiting = [r.id for r in s.get_runs(first.run_ids) if r.parents and r.id != gan]
    assert second.created == [] and sorted(second.requeued) == sorted([gan, *waiting])
    with st.open_store(ws) as s:
        assert s.get_run(gan).status == st.BLOCKED and s.get_run(gan).attempt == 2  # behind the baseline again
        assert {(s.get_run(r).status, s.get_run(r).attempt) for r in waiting} == {(st.BLOCKED, 1)}


def test_identical_configurations_are_one_run_set_across_experiments(demo_data, tmp_path) -> None:
    from engine.config import load_experiments

    data, _ = demo_data
    toml = tmp_path / "experiments.toml"
    toml.write_text(f"""
[data.train]
format = "isic2019"
root = "{data}/isic2019"
[protocol]
model = {{ name = "test_resnet", pretrained = false, res = 16 }}
optim = {{ max_epochs = 1 }}
[[experiment]]
name = "first"
replicates = 2
groups = {{ g = ["1:0", "1/4:0"] }}
[[experiment]]
name = "second"
baseline = "1:0"
replicates = 2
groups = {{ h = ["1/4:0", "(1:0:0)", "1:0"] }}
""".replace("(1:0:0)", "1/2:0"))
    first_exp, second_exp = load_experiments(toml)
    ws = tmp_path / "ws"
    _, first = grid.enqueue(ws, first_exp)
    planned, second = grid.enqueue(ws, second_exp)
    assert len(second.created) == 2 and set(first.run_ids) < set(second.run_ids)  # only 1/2:0 is new
    with st.open_store(ws) as s:
        links = s.run_labels()
    shared = first.run_ids[0]
    assert {(e, lab) for e, lab, rid in links if rid == shared} == {("first", "1:0"), ("second", "1:0")}
    with st.open_store(ws) as s:
        assert s.get_run(shared).experiment == "first"  # a run keeps its first experiment and label


def test_a_submission_with_another_protocol_is_refused(demo_data, tmp_path) -> None:
    _, sets = demo_data
    ws = tmp_path / "ws"
    grid.enqueue(ws, tiny_demo(sets), only=["1:0"])
    changed = tiny_demo(sets, "experiment.demo.protocol.optim.lr=0.1")
    with pytest.raises(InputError, match=r"another protocol \(optim.lr differs\)"):
        grid.enqueue(ws, changed, only=["1/4:0"])
    with st.open_store(ws) as s:
        assert {r.label for r in s.list_runs()} == {"1:0"}  # nothing was created


def test_results_refuse_to_compare_runs_of_different_protocols(demo_data, tmp_path) -> None:
    from engine.analysis import analyse

    _, sets = demo_data
    ws = tmp_path / "ws"
    _, sub = grid.enqueue(ws, tiny_demo(sets), only=["1:0", "1/4:0"], replicates=2)
    with st.open_store(ws) as s:
        runs = s.get_runs(sub.run_ids)
        for run in runs:
            s.write_metrics(run.id, [("auc/isic19", 0, 0.7, 0.0)])
            s.finish(run.id, st.SUCCEEDED)
        analyse(s, "demo", n_boot=100)  # one protocol: fine
        # replicate 0 trained again under another seed: the results would pair it with replicate 1's old protocol
        quarter = next(r for r in runs if r.label == "1/4:0" and r.config["replicate"] == 0)
        other = s.create_run("classify", {**quarter.config, "seed": 7}, label="1/4:0", experiment="demo")
        s.write_metrics(other, [("auc/isic19", 0, 0.9, 0.0)])
        s.finish(other, st.SUCCEEDED)
        with pytest.raises(InputError, match=r"group 'x4': runs .* differ in protocol \(seed\)"):
            analyse(s, "demo", n_boot=100)


# ------------------------------------------------------------------------------------------ housekeeping
def test_actions_on_an_experiment_or_label_leave_shared_runs_alone(demo_data, tmp_path) -> None:
    from engine.workspace import act_on_experiment

    _, sets = demo_data
    ws = tmp_path / "ws"
    planned, sub = grid.enqueue(ws, tiny_demo(sets))
    ids = dict(zip([r.index for r in planned.runs], sub.run_ids, strict=True))
    div = [ids[r.index] for r in planned.runs if r.labels == ["1:1/2 div"]]  # its selection and fine-tunes
    with st.open_store(ws) as s:
        done, kept = act_on_experiment(s, "demo", "1:1/2 div", "cancel")
        assert sorted(rid for rid, _ in done) == sorted(div)
        shared = {r.id for r in kept}
        assert {ids[r.index] for r in planned.runs if r.kind in ("gan-train", "gan-pool")} <= shared
        assert {r.status for r in s.get_runs(sub.run_ids) if r.kind == "gan-train"} == {st.BLOCKED}
        # retry reaches what the label waits for; priority too
        done, _ = act_on_experiment(s, "demo", "1:1/2 div", "retry")
        assert sorted(rid for rid, _ in done) == sorted(div)
        done, _ = act_on_experiment(s, "demo", "1:1/2 bst", "priority", priority=5)
        assert {s.get_run(rid).priority for rid, _ in done} == {5}
        baseline0 = ids[planned.runs[0].index]
        assert baseline0 in {rid for rid, _ in done}  # its helper (the baseline's replicate 0) comes first
        # the baseline's replicate 0 is the GAN's FID classifier and the bst helper: its label alone leaves it be
        done, kept = act_on_experiment(s, "demo", "1:0", "pause")
        assert baseline0 in {r.id for r in kept} and baseline0 not in {rid for rid, _ in done}
        act_on_experiment(s, "demo", "1:0", "resume")
        # pause holds only the label's own runs; resume also lets go what it waits for
        done, kept = act_on_experiment(s, "demo", "1:1/2 div", "pause")
        assert sorted(rid for rid, _ in done) == sorted(div) and {new for _, new in done} == {st.PAUSED}
        assert {r.id for r in kept} == shared and st.PAUSED not in {s.get_run(r).status for r in shared}
        s.pause_runs([gan := ids[next(r.index for r in planned.runs if r.kind == "gan-train")]], True)
        done, _ = act_on_experiment(s, "demo", "1:1/2 div", "resume")
        assert sorted(rid for rid, _ in done) == sorted([*div, gan]) and st.PAUSED not in {n for _, n in done}
        with pytest.raises(InputError, match="nothing to resume"):
            act_on_experiment(s, "demo", "1:1/2 div", "resume")
        done, kept = act_on_experiment(s, "demo", "1:1/2 div", "rm")
        assert sorted(rid for rid, _ in done) == sorted(div) and not any(s.run_dir(r).exists() for r in div)
        assert "1:1/2 div" not in {lab for _, lab, _ in s.run_labels("demo")}
        with pytest.raises(InputError, match="--label '1:1/2 div': experiment 'demo' has no runs of it"):
            act_on_experiment(s, "demo", "1:1/2 div", "cancel")
        with pytest.raises(InputError, match="nothing to retry"):
            act_on_experiment(s, "demo", None, "retry")


def test_the_tiny_demo_end_to_end_then_again_from_the_store(demo_data, tmp_path) -> None:
    """The demo experiment at the tiny presets: baseline -> GAN (domain FID) -> pool -> random/diverse/best
    selections -> fine-tunes -> paired results and plots; a second demo runs nothing and gives the same table."""
    from engine.demo import run_demo

    data, sets = demo_data
    ws = tmp_path / "ws"
    tiny = [s for s in sets if s in TINY]
    first = run_demo(ws, data, sets=tiny, say=lambda _: None)
    assert first.ok and len(first.runs) == 1 + 1 + 4 + 6 * 2
    res = first.results
    assert res is not None and set(res.test_sets) == {"isic19", "isic20", "derm7pt-derm", "derm7pt-clinic",
                                                      "dermofit"}
    assert res.missing.empty
    rows = res.table.set_index(["test_set", "label"])
    assert rows.loc[("isic19", "1:1/2 bst"), "n_pairs"] == 2 and rows.loc[("isic19", "1/4:0"), "verdict"] == "baseline"
    assert {f.name for f in first.files} >= {"demo.csv", "demo.png", "demo-derm7pt-clinic.png"}
    with st.open_store(ws) as s:
        gan = s.list_runs(kind="gan-train")[0]
        selections = {r.config["label"]: r for r in s.list_runs(kind="select")}
        result = json.loads((s.run_dir(gan.id) / "result.json").read_text())
    assert result["features"] == f"domain:{gan.parents[0]}" and (s.run_dir(gan.id) / "samples").is_dir()
    # the demo's checkpoint knobs reach the run; the demo reports the checkpoint its pool came from, and why
    assert gan.config["gan"]["snapshot_kimg"] == 4 and gan.config["gan"]["kimg"] == 2  # tiny: one checkpoint, kimg 2
    assert (gan.config["metrics"]["select_margin"], gan.config["metrics"]["select_relative"]) == (0.35, True)
    assert [(g["run_id"], g["kimg"], g["rule"]) for g in first.gans] == [
        (gan.id, result["selected"]["kimg"], result["selected"]["rule"])]
    assert first.gans[0]["checkpoints"] == [{k: c[k] for k in ("kimg", "fid_domain", "precision_domain",
                                                                 "recall_domain")} for c in result["checkpoints"]]
    from engine.demo import gan_lines

    text = "\n".join(gan_lines(first.gans))
    assert f"checkpoint kimg {result['selected']['kimg']} selected" in text and "<- selected" in text
    assert "0.35 x best" in text and f"{result['checkpoints'][0]['fid_domain']:.3f}" in text
    assert selections["1:1/2 bst"].config["samplers"]["helper"] == gan.parents[0]
    assert {json.loads((s.run_dir(r.id) / "result.json").read_text())["sampler"] for r in selections.values()} == {
        "random", "diverse", "best"}
    second = run_demo(ws, data, sets=tiny, say=lambda _: None)
    assert second.reused == len(first.runs) and second.stages["fine-tunes"] == 0 and second.stages["GAN"] == 0
    assert second.results.table.equals(res.table)

    # A light copy opens read-only elsewhere and gives the same results; a removed replicate is reported missing.
    from engine.analysis import analyse
    from engine.workspace import export

    with st.open_store(ws, readonly=True) as s:
        report = export(s, "demo", tmp_path / "laptop")
    laptop = Path(report["out"])
    assert not list(laptop.rglob("*.pt")) and not list(laptop.rglob("shard-*.npy"))
    for path in [laptop, *laptop.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        with st.open_store(laptop, readonly=True, create=False) as s:
            assert analyse(s, "demo").table.equals(res.table)
    finally:
        for path in [laptop, *laptop.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    with st.open_store(ws) as s:
        victim = next(r for r in s.list_runs(kind="classify") if r.label == "1/4:0" and r.config["replicate"] == 1)
        s.remove([victim.id])
        missing = analyse(s, "demo", n_boot=100).missing
    assert [(m.label, m.replicate, m.reason) for m in missing.itertuples()] == [("1/4:0", 1, "no run in the store")]
    shutil.rmtree(laptop)


def test_prune_drops_resume_checkpoints_and_unused_pools_and_the_grid_makes_a_new_pool(tmp_path) -> None:
    from engine.synth.pool import POOL_DIR
    from engine.workspace import prune

    ws = tmp_path / "ws"
    with st.open_store(ws) as s:
        used, unused, fine_tune = (s.create_run(k, c) for k, c in (
            ("gan-pool", {"gan_run": "g", "seed": 1}), ("gan-pool", {"gan_run": "g", "seed": 2}),
            ("classify", {"replicate": 0})))
        s.create_run("select", {"label": "1:1/2", "pools": {"stylegan2": used}})
        for rid in (used, unused, fine_tune):
            (s.run_dir(rid) / POOL_DIR).mkdir()
            (s.run_dir(rid) / POOL_DIR / "pool.json").write_text("{}")
            (s.run_dir(rid) / "checkpoints" / "last.pt").parent.mkdir(exist_ok=True)
            (s.run_dir(rid) / "checkpoints" / "last.pt").write_bytes(b"x" * 1000)
            (s.run_dir(rid) / "checkpoints" / "best.pt").write_bytes(b"y" * 10)
            s.finish(rid, st.SUCCEEDED)
        dry = prune(s, dry_run=True)
        assert (s.run_dir(unused) / POOL_DIR).is_dir()
        report = prune(s)
        assert report["items"] == dry["items"] and report["freed_bytes"] == 3000 + 2
        assert {(i["run_id"], i["what"]) for i in report["items"]} == {
            (used, "resume checkpoint"), (unused, "resume checkpoint"), (fine_tune, "resume checkpoint"),
            (unused, "pool images")}
        assert (s.run_dir(used) / POOL_DIR).is_dir() and not (s.run_dir(unused) / POOL_DIR).exists()
        assert (s.run_dir(fine_tune) / "checkpoints" / "best.pt").is_file()
        assert grid._reusable(s, ws, "gan-pool", s.get_run(unused).config_hash) is None  # a new pool is planned
        assert grid._reusable(s, ws, "gan-pool", s.get_run(used).config_hash).id == used
        assert prune(s)["items"] == []


def test_the_command_line_queues_an_experiment_and_acts_on_a_label(demo_data, tmp_path, monkeypatch, capsys) -> None:
    from engine.cli import main

    _, sets = demo_data
    ws = tmp_path / "ws"

    def ganaug(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["ganaug", *args, "-w", str(ws)])
        with pytest.raises(SystemExit) as exc:
            main()
        out, err = capsys.readouterr()
        return int(exc.value.code or 0), out, err

    sets_args = [a for s in sets for a in ("--set", s)]
    code, out, err = ganaug("run", "demo", "--only", "1:1/2 div", "--detach", "--json", *sets_args)
    assert code == 0, err
    doc = json.loads(out)
    assert [(r["kind"], r["status"]) for r in doc["runs"]] == [
        ("classify", "queued"), ("gan-train", "blocked"), ("gan-pool", "blocked"), ("select", "blocked"),
        ("classify", "blocked"), ("classify", "blocked")]
    assert all(set(r) == {"kind", "label", "labels", "replicate", "reused", "parents", "counts", "run_id", "status"}
               for r in doc["runs"])
    assert "no engine serves" in err
    code, out, err = ganaug("runs", "cancel", "--experiment", "demo", "--label", "1:1/2 div")
    assert code == 0 and out == ""
    assert err.count(": cancelled") == 5 and "left alone" not in err  # only div uses its GAN here
    with st.open_store(ws) as s:
        assert s.get_run(doc["runs"][0]["run_id"]).status == st.QUEUED  # the baseline is 1:0's run
    code, out, _ = ganaug("run", "demo", "--only", "1:1/2 div", "--dry-run", "--json", *sets_args)
    assert code == 0 and all(r["reused"] for r in json.loads(out)["runs"])


def test_an_experiment_runs_as_cluster_jobs_with_executor_slurm(demo_data, tmp_path) -> None:
    """`ganaug run demo --executor slurm` in the foreground, `[executor.slurm]` from the experiments file
    (`cluster = "local"`: submitit's LocalExecutor, jobs as local processes, the real submitit path): the DAG behind
    `1:1/2` (baseline -> domain-FID GAN -> pool -> selection -> fine-tune) runs as jobs in dependency order, is
    ingested, and is linked under its labels; `--set` reaches the file's executor table, and a run an earlier
    local submission left cancelled is re-queued to the cluster."""
    from engine_helpers import cli, kill_everything

    from engine.config import shipped_experiments_text

    _, sets = demo_data
    ws = tmp_path / "ws"
    toml = tmp_path / "experiments.toml"
    toml.write_text(shipped_experiments_text() + '\n[executor.slurm]\ncluster = "local"\ntime = 30\n')
    args = ["--file", str(toml), *[a for s in sets for a in ("--set", s)], "--replicates", "1"]
    try:
        first = json.loads(cli(ws, "run", "demo", "--only", "1:0", "--detach", "--json", *args).stdout)
        baseline = first["runs"][0]["run_id"]
        cli(ws, "runs", "cancel", baseline)
        proc = cli(ws, "run", "demo", "--only", "1:0", "--only", "1:1/2", "--executor", "slurm", "--json",
                   "--set", "executor.slurm.time=20", *args, timeout=300)
    finally:
        kill_everything(ws)
    doc = json.loads(proc.stdout)
    assert [(r["kind"], r["labels"]) for r in doc["runs"]] == [
        ("classify", ["1:0"]), ("gan-train", ["1:1/2"]), ("gan-pool", ["1:1/2"]), ("select", ["1:1/2"]),
        ("classify", ["1:1/2"])]
    assert {r["status"] for r in doc["runs"]} == {st.SUCCEEDED}, proc.stderr
    assert doc["runs"][0]["run_id"] == baseline and "demo: 5 runs on slurm" in proc.stderr
    with st.open_store(ws) as s:
        runs = s.get_runs([r["run_id"] for r in doc["runs"]])
        for run in runs:
            assert (run.executor, run.slot) == ("slurm", "slurm") and run.job_id, run.id
            assert run.executor_opts["cluster"] == "local" and run.executor_opts["time_min"] == 20
            assert f"job {run.job_id}" in [ev["message"] for ev in s.events(run.id)]
        assert s.get_run(baseline).attempt == 2  # the cancelled local run, re-queued to the cluster
        for parent, child in zip(runs, runs[1:], strict=False):  # each waited for the one before it
            assert child.started >= parent.ended and parent.id in child.parents, (parent.id, child.id)
        assert sorted((lab, rid) for _, lab, rid in s.run_labels("demo")) == sorted(
            [("1:0", baseline)] + [("1:1/2", r.id) for r in runs[1:]])
        aucs = s.labelled_metrics("demo")
        assert set(aucs["run_id"]) == {baseline, runs[4].id} and "auc/isic19" in set(aucs["name"])
    gan = json.loads((ws / runs[1].id / "result.json").read_text())
    assert gan["features"] == f"domain:{baseline}"  # the hidden edge: the baseline's features chose the checkpoint
