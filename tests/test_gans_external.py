"""External generators: NVlabs-style pickles (only with --trust, code from --code) and TorchScript, into pools."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gan_fixtures import cli

from engine.synth.pool import Pool

# A generator with NVlabs' calling convention; the image's mean colour encodes the class vector, so a test
# can see which one-hot index a class was given.
TINY_GENERATOR = '''
import torch
{extra_import}

class TinyG(torch.nn.Module):
    def __init__(self, c_dim):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, c_dim, 8, 3
        self.fc = torch.nn.Linear(4, 3 * 8 * 8)

    def forward(self, z, c, truncation_psi=1, noise_mode="random"):
        x = 0.1 * torch.tanh(self.fc(z)).reshape(-1, 3, 8, 8)
        if self.c_dim:
            x = x + (c.argmax(dim=1).float() - 0.5).reshape(-1, 1, 1, 1)
        return x * truncation_psi
'''


def _pickle(tmp_path: Path, name: str, c_dim: int, extra_import: str = "") -> tuple[Path, Path]:
    """Write module ``name`` into its own folder, pickle {"G_ema": TinyG(c_dim)}, and forget the module again,
    so loading the pickle needs that folder (``--code``)."""
    code = tmp_path / f"code_{name}"
    code.mkdir()
    (code / f"{name}.py").write_text(TINY_GENERATOR.format(extra_import=extra_import))
    sys.path.insert(0, str(code))
    try:
        module = __import__(name)
        torch.manual_seed(0)
        path = tmp_path / f"{name}.pkl"
        with open(path, "wb") as fh:
            pickle.dump({"G": "unused", "G_ema": module.TinyG(c_dim)}, fh)
    finally:
        sys.path.remove(str(code))
        sys.modules.pop(name, None)
    return path, code


def test_a_pickle_loads_only_with_trust(tmp_path: Path) -> None:
    path, code = _pickle(tmp_path, "gen_untrusted", 2)
    ws = str(tmp_path / "ws")
    code_, msg = cli("gan", "import", str(path), "--code", str(code), "--workspace", ws)
    assert code_ == 2 and "--trust" in msg and "pickle" in msg and "\n" not in msg
    assert not (tmp_path / "ws").exists() or not list((tmp_path / "ws").glob("*-gan-import"))


def test_a_trusted_pickle_with_its_code_becomes_a_run_and_makes_a_pool(tmp_path: Path) -> None:
    path, code = _pickle(tmp_path, "gen_nvlabs", 3)
    ws = str(tmp_path / "ws")
    # without the code folder: one line naming the module the pickle needs
    code_, msg = cli("gan", "import", str(path), "--trust", "--workspace", ws)
    assert code_ == 2 and "'gen_nvlabs'" in msg and "--code" in msg
    code_, out = cli("gan", "import", str(path), "--trust", "--code", str(code), "--class-index", "melanoma=2",
                     "--name", "nv", "--workspace", ws, "--json")
    assert code_ == 0, out
    doc = json.loads(out)
    code_, shown = cli("runs", "show", doc["id"], "--workspace", ws, "--json")
    shown_doc = json.loads(shown)
    assert doc["id"] == shown_doc["id"] and doc["kind"] == "gan-import" and doc["label"] == "nv"
    assert doc["status"] == "succeeded" and set(doc) == set(shown_doc)
    run_dir = Path(doc["run_dir"])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["selected"]["path"] == "checkpoints/imported.pkl" and (run_dir / "checkpoints/imported.pkl").is_file()
    assert result["imported"]["res"] == 8 and result["imported"]["c_dim"] == 3 and result["features"] is None
    assert (run_dir / result["checkpoints"][0]["grid"]).is_file()

    code_, out = cli("gan", "pool", doc["id"], "--per-class", "4", "--workspace", ws, "--json")
    assert code_ == 0, out
    pool = Pool(Path(json.loads(out)["run_dir"]))
    assert len(pool) == 8 and pool.res == 8 and {r["checkpoint"] for r in pool.rows} == {"imported"}
    # benign -> one-hot index 0 (mean -0.5 -> dark), melanoma -> index 2 (+1.5 -> saturated white)
    benign = pool.images[np.arange(4)].astype(float).mean()
    melanoma = pool.images[np.arange(4, 8)].astype(float).mean()
    assert benign < 80 and melanoma > 250


def test_a_module_the_user_code_needs_and_we_lack_is_named(tmp_path: Path) -> None:
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "somedep_xyz.py").write_text("")
    sys.path.insert(0, str(stub))
    try:
        path, code = _pickle(tmp_path, "gen_needy", 2, extra_import="import somedep_xyz")
    finally:
        sys.path.remove(str(stub))
        sys.modules.pop("somedep_xyz", None)
    code_, msg = cli("gan", "import", str(path), "--trust", "--code", str(code), "--workspace", str(tmp_path / "ws"))
    assert code_ == 2 and "'somedep_xyz'" in msg and "not installed" in msg and "\n" not in msg


def test_an_unconditional_generator_is_imported_for_one_class(tmp_path: Path) -> None:
    path, code = _pickle(tmp_path, "gen_uncond", 0)
    ws = str(tmp_path / "ws")
    code_, msg = cli("gan", "import", str(path), "--trust", "--code", str(code), "--workspace", ws)
    assert code_ == 2 and "--as-class" in msg
    code_, out = cli("gan", "import", str(path), "--trust", "--code", str(code), "--as-class", "melanoma",
                     "--workspace", ws, "--json")
    assert code_ == 0, out
    code_, out = cli("gan", "pool", json.loads(out)["id"], "--per-class", "3", "--workspace", ws, "--json")
    pool = Pool(Path(json.loads(out)["run_dir"]))
    assert pool.ids == ["m000000", "m000001", "m000002"] and pool.info["per_class"]["benign"] == 0


def test_a_torchscript_generator_needs_no_trust(tmp_path: Path) -> None:
    class ScriptG(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.z_dim, self.c_dim = 6, 2
            self.fc = torch.nn.Linear(8, 3 * 4 * 4)

        def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(torch.cat([z, c], dim=1))).reshape(-1, 3, 4, 4)

    path = tmp_path / "g.pt"
    torch.jit.save(torch.jit.script(ScriptG()), str(path))
    ws = str(tmp_path / "ws")
    code_, out = cli("gan", "import", str(path), "--workspace", ws, "--json")
    assert code_ == 0, out
    result = json.loads((Path(json.loads(out)["run_dir"]) / "result.json").read_text())
    assert result["imported"]["format"] == "torchscript" and result["imported"]["z_dim"] == 6
    code_, out = cli("gan", "pool", json.loads(out)["id"], "--per-class", "2", "--workspace", ws, "--json")
    assert code_ == 0 and len(Pool(Path(json.loads(out)["run_dir"]))) == 4


@pytest.mark.parametrize("spec, message", [(["melanoma=x"], "benign=K or melanoma=K"),
                                           (["benign=1"], "both map to index 1")])
def test_bad_class_index_is_one_line(spec: list[str], message: str) -> None:
    from engine.errors import InputError
    from engine.gans.external import parse_class_index

    with pytest.raises(InputError, match=message):
        parse_class_index(spec)
    assert parse_class_index(["melanoma=0"]) == {"benign": 1, "melanoma": 0}


def test_a_pool_interrupted_mid_way_resumes_to_the_same_pool(tmp_path: Path) -> None:
    from helpers import FakeContext

    from engine.gans.kind import disk_warning, run_gan_pool, validate_gan_pool

    path, code = _pickle(tmp_path, "gen_pool", 2)
    ws = tmp_path / "ws"
    code_, out = cli("gan", "import", str(path), "--trust", "--code", str(code), "--workspace", str(ws), "--json")
    assert code_ == 0, out
    gan_run = json.loads(out)["id"]
    config = validate_gan_pool({"gan_run": gan_run, "per_class": 7, "shard_size": 3, "device": "cpu"}, ws)
    whole = FakeContext(ws / "whole", ws, config)
    run_gan_pool(whole)
    stopped = FakeContext(ws / "resumed", ws, config, stop_after=2)  # 2 of 5 shards, then a stop
    run_gan_pool(stopped)
    assert not (stopped.run_dir / "pool" / "pool.json").exists()
    assert sorted(p.name for p in (stopped.run_dir / "pool").glob("shard-*.npy")) == ["shard-00000.npy",
                                                                                        "shard-00001.npy"]
    run_gan_pool(FakeContext(ws / "resumed", ws, config))
    a, b = Pool(whole.run_dir), Pool(stopped.run_dir)
    assert a.rows == b.rows and len(a) == 14
    assert np.array_equal(a.images[np.arange(14)], b.images[np.arange(14)])
    assert json.loads((stopped.run_dir / "result.json").read_text())["resumed_at_shard"] == 2
    # a pool larger than the free disk space is announced before it is made
    assert disk_warning(tmp_path, 10, 8) is None
    warning = disk_warning(tmp_path / "not" / "yet", 10**12, 256)
    assert warning is not None and "warning: the pool needs" in warning and "GB" in warning
