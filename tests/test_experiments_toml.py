"""experiments.toml, complete: data, protocol, GANs, samplers and per-experiment overrides, validated on load with
one line per error (file, key, problem); the shipped file (also package data, written out by ``ganaug init``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_engine import cli

from engine.config import (
    Experiment,
    GanSpec,
    find_experiment,
    load_experiments,
    parse_experiments,
    read_experiments,
    shipped_experiments_text,
)
from engine.errors import InputError
from engine.train.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {"GANAUG_ISIC2019": "/data/isic2019", "GANAUG_ISIC2020": "/data/isic2020", "GANAUG_DERM7PT": "/data/derm7pt",
       "GANAUG_DERMOFIT": "/data/dermofit", "GANAUG_ISIC2018_TASK2": "/data/task2",
       "GANAUG_INCEPTION_V4_WEIGHTS": "/w/inception_v4.pth", "GANAUG_FID_WEIGHTS": "/w/pt_inception.pth"}

BASE = """
[data.train]
format = "isic2019"
root = "train"
[data.tests.isic20]
format = "isic2020"
root = "/abs/isic2020"
[gans.sgn]
family = "stylegan2"
preset = "tiny"
pool_per_class = 100
"""


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "experiments.toml"
    f.write_text(text)
    return f


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(InputError) as exc:
        load_experiments(write(tmp_path, text), workspace=tmp_path / "ws", env={})
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'experiments.toml'}: "), msg
    return msg.split(": ", 1)[1]


def test_package_copy_is_the_top_level_file() -> None:
    assert (ROOT / "engine" / "experiments.toml").read_text() == (ROOT / "experiments.toml").read_text()
    assert shipped_experiments_text() == (ROOT / "experiments.toml").read_text()


def test_shipped_file_resolves_against_the_environment_and_workspace(tmp_path: Path) -> None:
    aug, anon, demo = load_experiments(ROOT / "experiments.toml", workspace=tmp_path, env=ENV)
    for exp in (aug, anon, demo):
        exp.check_resolved()
        parse_config(exp.classify_base())  # every experiment is a valid classify protocol
        assert exp.test_sets == ("isic19", "isic20", "derm7pt-derm", "derm7pt-clinic", "dermofit")
    base = aug.classify_base()
    assert base["data"] == {"format": "isic2019", "root": "/data/isic2019", "split_seed": 0}
    assert base["model"] == {"weights": "/w/inception_v4.pth"}  # everything else: the paper's defaults
    assert [t["name"] for t in base["tests"]] == ["isic20", "derm7pt-derm", "derm7pt-clinic", "dermofit"]
    assert set(aug.gans) == {"sgn", "pgn", "p2p", "spd"} and aug.masks == "/data/task2"
    assert aug.gans["sgn"] == GanSpec("sgn", "stylegan2", "paper", None, None, "/w/pt_inception.pth", 100_000)
    assert set(anon.gans) == {"sgn"} and anon.masks is None  # only what its labels use
    # The demo replaces the paper's data, model table and GAN; the paper's weights file does not leak into it.
    d = demo.classify_base()
    assert d["data"]["root"] == str(tmp_path / "demo-data" / "isic2019")
    assert d["model"] == {"name": "test_resnet", "pretrained": False, "res": 48}
    assert d["optim"]["lr"] == 0.01 and d["tta"] == {"replicas": 20}
    assert demo.gans == {"sgn": GanSpec("sgn", "stylegan2", "demo", None, "baseline", None, 2000, snapshot_kimg=4,
                                        select_margin=0.35, select_relative=True)}  # the demo's checkpoint rule
    assert demo.samplers.helper == "baseline" and demo.samplers.all_mode == "union"


def test_unset_variables_are_reported_only_when_the_experiment_is_used(tmp_path: Path) -> None:
    aug, _anon, demo = load_experiments(ROOT / "experiments.toml", workspace=tmp_path, env={})
    demo.check_resolved()  # needs only {workspace}
    with pytest.raises(InputError, match=r"data\.train\.root: environment variable GANAUG_ISIC2019 is not set"):
        aug.check_resolved()
    _aug, _anon, demo = load_experiments(ROOT / "experiments.toml", workspace=None, env=ENV)
    with pytest.raises(InputError, match=r"experiment\[2\]\.data\.train\.root: \{workspace\} used but no workspace"):
        demo.check_resolved()


def test_paths_relative_to_the_file_and_experiment_overrides(tmp_path: Path) -> None:
    f = write(tmp_path, BASE + """
[samplers]
diverse_threshold = 6
helper = "baseline"
[protocol]
optim = { lr = 0.01, max_epochs = 5 }
seed = 3
[[experiment]]
name = "a"
replicates = 2
test_sets = ["isic20", "isic19"]
[experiment.groups]
g = ["1:0", "1:1/2"]
[[experiment]]
name = "b"
[experiment.groups]
g = ["1:0", "1:1/4 div"]
[experiment.protocol]
optim = { max_epochs = 2 }
[experiment.samplers]
all_mode = "share"
[experiment.data.train]
format = "isic2019"
root = "${MY_DATA}/train"
""")
    a, b = load_experiments(f, workspace=tmp_path / "ws", env={"MY_DATA": "/mnt/d"})
    assert a.train.root == str(tmp_path / "train") and a.replicates == 2
    assert a.test_sets == ("isic20", "isic19") and [t.name for t in a.tests] == ["isic20"]
    assert a.protocol == {"optim": {"lr": 0.01, "max_epochs": 5}, "seed": 3}
    assert b.train.root == "/mnt/d/train" and b.train.split_file is None
    assert b.protocol == {"optim": {"max_epochs": 2}, "seed": 3}  # a table of [experiment.protocol] replaces
    assert (b.samplers.diverse_threshold, b.samplers.all_mode) == (6, "share")  # [experiment.samplers] keys replace
    assert b.test_sets == ("isic19", "isic20")  # default: the split's own test part, then [data.tests]


def test_spec_round_trips_through_json(tmp_path: Path) -> None:
    for exp in load_experiments(ROOT / "experiments.toml", workspace=tmp_path, env=ENV):
        spec = json.loads(json.dumps(exp.to_spec()))
        assert Experiment.from_spec(spec) == exp
        assert [g["baseline"] for g in spec["groups"]] == [exp.baseline_of(g) for g, _ in exp.groups]


@pytest.mark.parametrize(("text", "key", "problem"), [
    # unknown GAN: a label whose GAN has no table, and a table for no GAN
    ('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0", "1:1/2 pgn"]\n',
     "experiment[0].groups.g[1]", "uses GAN tag pgn but there is no [gans.pgn] table"),
    ('[gans.xyz]\nfamily = "stylegan2"\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "gans.xyz", "unknown GAN tag"),
    # malformed ratio
    ('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0", "1:1/0"]\n',
     "experiment[0].groups.g[1]", "bad ratio '1:1/0'"),
    # missing baseline: none named and no full real-only configuration; or one that is not listed
    ('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1/2:0", "1:1/2"]\n',
     "experiment[0].baseline", "missing: set baseline = LABEL"),
    ('[[experiment]]\nname = "a"\nbaseline = "1:0"\n[experiment.groups]\ng = ["1/2:0", "1:1/2"]\n',
     "experiment[0].baseline", "'1:0' is not one of the experiment's configurations"),
    # unknown test set
    ('[[experiment]]\nname = "a"\ntest_sets = ["isic19", "dermofit"]\n[experiment.groups]\ng = ["1:0"]\n',
     "experiment[0].test_sets[1]", "unknown test set 'dermofit' (known: isic19, isic20)"),
    # unknown keys at every level
    ('[[experiment]]\nname = "a"\nreplicate = 3\n[experiment.groups]\ng = ["1:0"]\n',
     "experiment[0].replicate", "unknown key"),
    ('[gans.pgn]\nfamily = "pgan"\nkimgs = 3\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "gans.pgn.kimgs", "unknown key"),
    ('[data.tests.x]\nformat = "dermofit"\nroot = "d"\nsubsets = "s.csv"\n[[experiment]]\nname = "a"\n'
     '[experiment.groups]\ng = ["1:0"]\n', "data.tests.x.subsets", "unknown key"),
    ('[report]\nx = 1\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n', "report", "unknown key"),
    # the protocol is validated by the classify schema, and the key named where it was set
    ('[protocol]\noptim = { lr = -1 }\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "protocol.optim.lr", "greater than 0"),
    ('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n[experiment.protocol]\nmodel = { nam = "x" }\n',
     "experiment[0].protocol.model.nam", "Extra inputs are not permitted"),
    ('[data.tests.x]\nformat = "tiff"\nroot = "d"\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "data.tests.x.format", "Input should be"),
    ('[protocol]\nreal_fraction = "1/2"\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "protocol.real_fraction", "set by the grid"),
    # experiment names
    ('[[experiment]]\nname = "classify"\n[experiment.groups]\ng = ["1:0"]\n',
     "experiment[0].name", "is the name of a run kind"),
    ('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n[[experiment]]\nname = "a"\n'
     '[experiment.groups]\ng = ["1:0"]\n', "experiment[1].name", "defined twice"),
    # GANs and samplers
    ('[gans.spd]\nfamily = "spade"\npool_per_class = 5\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "gans.spd.pool_per_class", "one image per mask"),
    ('[gans.spd]\nfamily = "spade"\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0", "1:1/2 spd"]\n',
     "experiment[0].groups.g[1]", "needs [data.masks] root"),
    ('[gans.pgn]\nfamily = "stylegan2"\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "gans.pgn.family", "the tag pgn means pgan"),
    ('[gans.pgn]\nfeatures = "baseline"\nfid_weights = "f.pth"\n[[experiment]]\nname = "a"\n[experiment.groups]\n'
     'g = ["1:0"]\n', "gans.pgn", "not both"),
    ('[gans.pgn]\nimport = "g.pkl"\nkimg = 10\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "gans.pgn.kimg", "not trained here"),
    ('[samplers]\nall_mode = "mix"\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "samplers.all_mode", "must be one of union, share"),
    ('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n[experiment.samplers]\ndiverse_threshold = 65\n',
     "experiment[0].samplers.diverse_threshold", "0..31 bits"),
    ('[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n[experiment.samplers]\ndiverse_threshold = 40\n',
     "experiment[0].samplers.diverse_threshold", "0..31 bits"),  # the select run would refuse it
    ('[gans.pgn]\nfamily = "pgan"\nkimg = 0.5\n[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n',
     "gans.pgn.kimg", "integer >= 1"),  # gan-train trains whole thousands of images
    ('[[experiment]]\nname = "a"\nreplicates = 0\n[experiment.groups]\ng = ["1:0"]\n',
     "experiment[0].replicates", "integer >= 1"),
])
def test_each_error_is_one_line_with_file_key_and_problem(tmp_path: Path, text: str, key: str, problem: str) -> None:
    msg = error_of(tmp_path, BASE + text)
    assert msg.startswith(f"{key}: ") and problem in msg, msg


def test_missing_training_data_and_invalid_toml(tmp_path: Path) -> None:
    assert error_of(tmp_path, '[[experiment]]\nname = "a"\n[experiment.groups]\ng = ["1:0"]\n').startswith(
        "experiment[0].data.train: missing")
    assert error_of(tmp_path, "[[experiment]\n").startswith("not valid TOML")


def test_read_experiments_prefers_the_working_directory_then_the_shipped_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert [e.name for e in read_experiments(workspace=tmp_path)] == ["augmentation", "anonymization", "demo"]
    write(tmp_path, BASE + '[[experiment]]\nname = "mine"\n[experiment.groups]\ng = ["1:0"]\n')
    assert [e.name for e in read_experiments()] == ["mine"]
    with pytest.raises(InputError, match=r"no experiment named 'demo' \(known: mine\)"):
        find_experiment(read_experiments(), "demo")
    assert parse_experiments(shipped_experiments_text(), Path("x.toml"))[2].name == "demo"


def test_init_writes_the_shipped_file_and_never_clobbers(tmp_path: Path) -> None:
    target = tmp_path / "proj" / "experiments.toml"
    doc = json.loads(cli(tmp_path / "ws", "init", str(tmp_path / "proj"), "--json").stdout)
    assert doc == {"path": str(target)} and target.read_text() == (ROOT / "experiments.toml").read_text()
    target.write_text("# mine\n")
    proc = cli(tmp_path / "ws", "init", str(tmp_path / "proj"), check=False)
    assert proc.returncode == 2 and "exists; --force replaces it" in proc.stderr
    assert target.read_text() == "# mine\n"
    cli(tmp_path / "ws", "init", str(tmp_path / "proj"), "--force")
    assert target.read_text() == (ROOT / "experiments.toml").read_text()
    (tmp_path / "file").write_text("x")
    proc = cli(tmp_path / "ws", "init", str(tmp_path / "file"), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a folder" in proc.stderr
