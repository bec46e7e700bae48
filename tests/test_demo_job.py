"""`ganaug demo`: the data it checks is what the adapters read, and its classifier is the demo experiment's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.demo import DEMO_TEST_SETS, check_demo, classify_config, experiment_sets, run_demo
from engine.errors import InputError
from engine.train import protocol_diff


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.data.demo_data import generate_demo

    out = tmp_path_factory.mktemp("demo") / "data"
    generate_demo(out, seed=3, res=16, n_train=60, workers=1)
    return out


def test_data_only_demo_checks_every_data_set(demo_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "ws", demo_dir, seed=3, data_only=True, say=lines.append)
    manifest = json.loads((demo_dir / "demo.json").read_text())
    assert {r["name"] for r in result.datasets} == set(manifest["datasets"])
    for row in result.datasets:
        assert row["n"] == manifest["datasets"][row["name"]]["n"] > 0
    assert result.runs == {} and result.results is None
    assert any("isic2019" in line for line in lines)


def test_check_fails_when_a_data_set_does_not_read_back_as_rendered(demo_dir: Path) -> None:
    manifest = json.loads((demo_dir / "demo.json").read_text())
    manifest["datasets"]["dermofit"]["n"] += 1
    with pytest.raises(InputError, match="dermofit"):
        check_demo(demo_dir, manifest)


def test_demo_classifier_is_the_demo_experiments_and_is_scored_on_every_other_data_set(demo_dir: Path) -> None:
    from engine.config import find_experiment, read_experiments
    from engine.train.config import parse_config

    manifest = json.loads((demo_dir / "demo.json").read_text())
    config = parse_config(classify_config(demo_dir, manifest, epochs=3))
    assert config.data.format == "isic2019" and Path(config.data.root).is_dir()
    assert sorted(t.format for t in config.tests) == sorted(DEMO_TEST_SETS)
    assert config.optim.max_epochs == 3
    assert config.model.pretrained is False  # nothing may download weights
    # ... and its protocol is the demo experiment's, pointed at this folder by experiment_sets.
    exp = find_experiment(read_experiments(sets=experiment_sets(demo_dir, manifest, epochs=3)), "demo")
    assert protocol_diff(exp.classify_base(), config.to_json()) == []


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_demo_with_other_parameters_never_touches_data_a_run_uses(tmp_path: Path, monkeypatch) -> None:
    from engine import store as st
    from engine.data import demo_data

    monkeypatch.setattr(demo_data, "default_workers", lambda: 1)  # tiny renders: a process pool costs more
    ws = tmp_path / "ws"
    first = run_demo(ws, seed=3, res=16, n_train=60, data_only=True, say=lambda _: None)
    used = first.data_dir
    assert used == ws / "demo-data-seed3-res16-n60"
    with st.open_store(ws) as s:  # a run training on it right now
        rid = s.create_run("classify", classify_config(used, json.loads((used / "demo.json").read_text())))
        s.claim(rid, slot="cpu0", engine_pid=None)
    before = _tree(used)
    second = run_demo(ws, seed=4, res=16, n_train=60, data_only=True, say=lambda _: None)
    assert second.data_dir == ws / "demo-data-seed4-res16-n60"
    assert _tree(used) == before

    # An older ganaug rendered seed 3 into the default folder, and the run uses it there: never replaced.
    monkeypatch.setitem(demo_data.DEMO_DEFAULTS, "res", 16)
    monkeypatch.setitem(demo_data.DEMO_DEFAULTS, "n_train", 60)  # tiny "defaults": <ws>/demo-data is theirs
    legacy = ws / "demo-data"
    legacy.mkdir()
    for rel, data in before.items():
        (legacy / rel).parent.mkdir(parents=True, exist_ok=True)
        (legacy / rel).write_bytes(data)
    with st.open_store(ws) as s:
        user = s.create_run("classify", classify_config(legacy, json.loads((legacy / "demo.json").read_text())))
    with pytest.raises(InputError, match=f"{user}.*pass --data DIR") as exc:
        run_demo(ws, data_only=True, say=lambda _: None)
    assert "\n" not in str(exc.value) and _tree(legacy) == before
    with st.open_store(ws) as s:
        s.remove([user])
    lines: list[str] = []
    replaced = run_demo(ws, data_only=True, say=lines.append)  # nobody uses it now: the default demo replaces it
    assert json.loads((legacy / "demo.json").read_text())["seed"] == 0 and replaced.data_dir == legacy
    assert any("replacing the unused demo" in line for line in lines)


def test_every_demo_option_is_checked_before_any_work(tmp_path: Path) -> None:
    for kwargs, flag in (({"epochs": 0}, "--epochs"), ({"seed": -1}, "--seed"), ({"n_train": 5}, "--n-train"),
                         ({"res": 3}, "--res")):
        with pytest.raises(InputError, match=flag):
            run_demo(tmp_path / "ws", **kwargs, say=lambda _: None)
    assert not (tmp_path / "ws").exists()


def test_rendering_reports_progress_to_the_last_photograph(tmp_path: Path) -> None:
    from engine.data.demo_data import generate_demo

    seen: list[tuple[int, int]] = []
    manifest = generate_demo(tmp_path / "d", seed=5, res=16, n_train=60, workers=1,
                             progress=lambda done, total: seen.append((done, total)))
    done, total = seen[-1]
    sets = manifest["datasets"]
    assert done == total > sum(sets[name]["images"] for name in ("isic2019", "isic2020", "dermofit"))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes back
    assert len({d for d, _ in seen}) == done + 1  # every photograph is reported
