"""`ganaug demo`: the data it checks is what the adapters read, and the fine-tune it queues is scored everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.demo import DEMO_TEST_SETS, check_demo, classify_config, run_demo
from engine.errors import InputError


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
    assert {r["name"] for r in result["datasets"]} == set(manifest["datasets"])
    for row in result["datasets"]:
        assert row["n"] == manifest["datasets"][row["name"]]["n"] > 0
    assert result["run"] is None
    assert any("isic2019" in line for line in lines)


def test_check_fails_when_a_data_set_does_not_read_back_as_rendered(demo_dir: Path) -> None:
    manifest = json.loads((demo_dir / "demo.json").read_text())
    manifest["datasets"]["dermofit"]["n"] += 1
    with pytest.raises(InputError, match="dermofit"):
        check_demo(demo_dir, manifest)


def test_demo_classifier_is_scored_on_every_other_data_set(demo_dir: Path) -> None:
    from engine.train.config import parse_config

    manifest = json.loads((demo_dir / "demo.json").read_text())
    config = parse_config(classify_config(demo_dir, manifest, epochs=3))
    assert config.data.format == "isic2019" and Path(config.data.root).is_dir()
    assert sorted(t.format for t in config.tests) == sorted(DEMO_TEST_SETS)
    assert config.optim.max_epochs == 3 and config.tta.replicas == 50
    assert config.model.pretrained is False  # nothing may download weights
