"""Every verb of the ``ganaug`` command line, given malformed input: exit 2, exactly one line on stderr, nothing
on stdout, and the workspace exactly as it was (files and every row of the store). Read commands never create
a workspace; typer's own usage errors are one line like every other error."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from pathlib import Path

import pytest

from engine import store as st
from engine.cli import main


def run(monkeypatch, capsys, *args: object) -> tuple[int, str, str]:
    """``ganaug ARGS`` in-process; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["ganaug", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def snapshot(ws: Path) -> dict[str, str]:
    """Every file of the workspace by content, and the store by its rows (SQLite may fold its WAL into the
    database file when a connection closes, so the file's bytes are no measure of change)."""
    with sqlite3.connect(ws / st.DB_NAME) as conn:
        out = {"<rows>": hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()}
    for path in sorted(ws.rglob("*")):
        rel = str(path.relative_to(ws))
        if not rel.startswith(st.DB_NAME):
            out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path | str]:
    """A workspace with runs in several states, a data set, and names for the malformed inputs to use."""
    from conftest import _isic2019

    base = tmp_path_factory.mktemp("bad-input")
    data = _isic2019(base / "isic", [(f"ISIC_{i:07d}", "MEL" if i % 4 == 0 else "NV") for i in range(12)])
    ws = base / "ws"
    with st.open_store(ws) as s:
        queued = s.create_run("sleep", {"seconds": 0}, label="waiting")
        failed = s.create_run("fail", {}, label="broken")
        s.finish(failed, st.FAILED, "boom")
        s.create_run("sleep", {}, label="twin")
        s.create_run("sleep", {}, label="twin")
        s.set_queue_paused(True)  # so that `queue pause` with bad input would visibly change something
    return {"ws": ws, "data": data, "queued": queued, "failed": failed, "file": base / "isic" / "x.txt"}


# (verb, arguments after the verb, a fragment the one line must contain). {ws} {data} {queued} {failed} are
# filled in from the world; every verb of the command line has at least one row.
CASES = [
    ("data check", "--format isic2019 --root {ws}/nowhere", "nowhere"),
    ("data check", "--format bogus --root {data}", "--format"),
    ("data split", "--format isic2019 --root {data} --out {ws}/split.csv --seed -1", "--seed -1"),
    ("data demo", "--out {ws}/demo --res 4", "--res 4"),
    ("data demo", "--out {ws}/demo --seed -3", "--seed -3"),
    ("runs list", "--status bogus", "--status 'bogus'"),
    ("runs list", "--bogus", "No such option: --bogus"),
    ("runs show", "nope", "unknown run id 'nope'"),
    ("runs show", "", "Missing argument"),
    ("runs logs", "nope", "unknown run id 'nope'"),
    ("runs cancel", "{queued} nope", "unknown run id 'nope'"),
    ("runs cancel", "{queued} twin", "ambiguous"),
    ("runs cancel", "{queued} {failed}", "nothing to cancel"),
    ("runs cancel", "--experiment nope", "--experiment 'nope': no runs of that experiment"),
    ("runs cancel", "--label 1:0", "--label goes with --experiment"),
    ("runs cancel", "", "Missing argument"),
    ("runs retry", "{failed} nope", "unknown run id 'nope'"),
    ("runs retry", "{failed} {queued}", "only failed"),
    ("runs retry", "{failed} --experiment nope", "not both"),
    ("runs rm", "{failed} twin", "ambiguous"),
    ("runs rm", "--experiment nope", "--experiment 'nope'"),
    ("runs priority", "{queued} high", "priority"),
    ("runs priority", "--experiment nope 3", "--experiment 'nope'"),
    ("runs pause", "{queued} {failed}", "cannot pause"),
    ("runs resume", "{queued}", "not paused"),
    ("runs wait", "{queued} --timeout -1", "--timeout"),
    ("runs wait", "{queued} nope", "unknown run id 'nope'"),
    ("queue pause", "extra", "extra argument"),
    ("queue resume", "--bogus", "No such option"),
    ("engine start", "--grace -1", "--grace"),
    ("engine start", "--cpu-slots 0", "--cpu-slots"),
    ("engine start", "--on-interrupted maybe", "--on-interrupted"),
    ("engine stop", "--timeout -5", "--timeout"),
    ("engine status", "--json extra", "extra argument"),
    ("run", "sleep --set novalue", "--set 'novalue'"),
    ("run", "no-such-kind", "unknown run kind"),
    ("run", "count --set n=-5", "'n': must be at least 0"),
    ("run", "sleep --set seconds=abc", "expected float"),
    ("run", "sleep --set seed=-1", "'seed'"),
    ("run", "sleep --after nope", "unknown run id 'nope'"),
    ("run", "sleep --config {ws}/missing.json", "missing.json"),
    ("run", "sleep --priority high", "--priority"),
    ("run", "sleep --only 1:0", "--only goes with an experiment"),
    ("run", "demo --replicates 0", "--replicates 0"),
    ("run", "demo --only 9:9", "--only '9:9'"),
    ("run", "demo --only 1:1/8", "not a configuration of experiment 'demo'"),
    ("run", "demo --dry-run --class-sizes 5", "--class-sizes '5'"),
    ("run", "demo --class-sizes 5:5", "goes with --dry-run"),
    ("run", "demo --set experiment.nope.replicates=2", "no table named 'nope'"),
    ("run", "demo --file {ws}/missing.toml", "missing.toml"),
    ("run", "demo --label x", "--label goes with a run kind"),
    ("run", "demo --partition gpu", "--partition applies to --executor slurm only"),
    ("run", "demo --dry-run --set experiment.demo.gans.sgn.select_margin=-1", "sgn.select_margin: must be a number"),
    ("run", "demo --dry-run --set experiment.demo.gans.sgn.snapshot_kimg=0", "sgn.snapshot_kimg: must be an integer"),
    ("run", "demo --executor nowhere", "--executor 'nowhere'"),
    ("run", "demo --executor slurm --set executor.slurm.gpus=-1", "executor.slurm.gpus: must be an integer >= 0"),
    ("train", "--data {data} --format isic2019 --epochs 0", "max_epochs"),
    ("train", "--data {data} --format isic2019 --real-fraction 2", "real_fraction"),
    ("train", "--data {data} --format isic2019 --seed -1", "seed"),
    ("train", "--data {ws}/nowhere --format isic2019", "nowhere"),
    ("demo", "--epochs 0", "--epochs 0"),
    ("demo", "--seed -1", "--seed -1"),
    ("demo", "--n-train 10", "--n-train 10"),
    ("demo", "--res 2000", "--res 2000"),
    ("cache gc", "--bogus", "No such option"),
    ("cache", "nope", "No such command"),
    ("init", "{ws}/ganaug.db", "not a folder"),
    ("results", "nope", "nope"),
    ("prune", "--experiment nope", "--experiment 'nope'"),
    ("prune", "extra", "extra argument"),
    ("export", "nope --out {ws}/copy", "unknown experiment 'nope'"),
    ("export", "nope", "Missing option '--out'"),
    ("results", "nope --format pdf", "--format"),
    ("gan train", "--family nope --data {data} --format isic2019 --features x", "unknown GAN family 'nope'"),
    ("gan fid", "nope", "unknown run id 'nope'"),
    ("gan sample", "nope --n 0 --out {ws}/grid.png", "--n"),
    ("gan pool", "{queued} --per-class -5", "--per-class"),
    ("gan import", "{ws}/nofile.pkl --trust", "nofile.pkl"),
    ("select", "nope --label 1:1/2 --data {data} --format isic2019", "unknown run id 'nope'"),
    ("select", "{queued} --label 1:9/2x --data {data} --format isic2019", "bad ratio '1:9/2x'"),
    ("audit", "nope", "unknown run id 'nope'"),
]


@pytest.mark.parametrize(("verb", "args", "fragment"), CASES, ids=[f"{v} {a}" for v, a, _ in CASES])
def test_malformed_input_is_one_line_exit_2_and_changes_nothing(world, monkeypatch, capsys, verb, args, fragment):
    ws = world["ws"]
    argv = [*verb.split(), *args.format(**{k: str(v) for k, v in world.items()}).split(), "--workspace", str(ws)]
    if verb.split()[0] in ("data", "init"):  # these commands know no workspace
        argv = argv[:-2]
    before = snapshot(ws)
    code, out, err = run(monkeypatch, capsys, *argv)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("ganaug: error: "), err
    assert fragment in err, err
    assert snapshot(ws) == before


def test_every_verb_is_covered():
    """A new verb must come with a malformed-input case above."""
    import typer.main

    from engine.cli import app

    def verbs(group, prefix: str = "") -> list[str]:
        out = []
        for name, cmd in group.commands.items():
            full = f"{prefix}{name}"
            out += verbs(cmd, full + " ") if hasattr(cmd, "commands") else [full]
        return out

    covered = {v for v, _, _ in CASES} | {"tui"}  # tui execs ganaug-tui: its case is in test_layering
    assert set(verbs(typer.main.get_command(app))) <= covered


@pytest.mark.parametrize("args", [["runs", "list"], ["runs", "show", "x"], ["runs", "logs", "x"],
                                  ["runs", "wait", "x"], ["engine", "status"], ["runs", "cancel", "x"],
                                  ["cache", "gc"], ["prune"], ["export", "x", "--out", "copy"],
                                  ["runs", "cancel", "--experiment", "x"]])
def test_commands_on_existing_runs_never_create_a_workspace(tmp_path, monkeypatch, capsys, args):
    missing = tmp_path / "typo" / "runs"
    code, out, err = run(monkeypatch, capsys, *args, "--workspace", missing)
    assert code == 2 and out == "" and err.count("\n") == 1 and f"no workspace at {missing}" in err
    assert not (tmp_path / "typo").exists()
