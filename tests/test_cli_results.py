"""``ganaug results``: the formats, files for papers, a copied workspace, and bad input (one line, exit 2)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from test_analysis import BASE, BETTER, NOISE, experiment, fill_store
from test_engine import cli

from engine import store as st
from engine.analysis.tables import TABLE_COLUMNS

GROUPS = 'base = ["1:0"]\nratio = ["1:1/2", "1:1/4"]\nx4 = ["1/4:1/4", "1/4:0"]'


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("results") / "ws"
    exp = experiment(GROUPS, replicates=8)
    low = np.round(BASE - 0.05, 4)
    values = {"1:0": list(BASE[:8]), "1:1/2": list(BETTER[:8]), "1:1/4": list(NOISE[:8]),
              "1/4:1/4": list(low[:8] - 0.01), "1/4:0": list(low[:8])}
    with st.open_store(ws) as s:
        fill_store(s, exp, {"isic19": values, "isic20": {k: [x - 0.1 for x in v] for k, v in values.items()}},
                   failed={("1:1/4", 6): "killed"})
    return ws


def test_table_with_terminal_plots_and_the_missing_run(ws) -> None:
    out = cli(ws, "results", "e", "--test-set", "isic20", "--plot").stdout
    assert "e · isic20 · AUC" in out and "e · isic19" not in out
    for label in ("1:0", "1:1/2", "1:1/4", "1/4:1/4", "1/4:0"):
        assert f"{label} " in out
    assert "better" in out and "worse" in out and "7 (no pair: 6)" in out
    assert "1:1/4  " in out and "┤" in out  # the box-plot's tick labels (label  mean)
    assert "1:1/4 replicate 6: run failed: killed" in out


def test_csv_json_latex_and_files_agree_and_a_copied_workspace_gives_the_same(ws, tmp_path) -> None:
    rows = list(csv.DictReader(io.StringIO(cli(ws, "results", "e", "--format", "csv").stdout)))
    assert list(rows[0]) == TABLE_COLUMNS and len(rows) == 2 * 5
    by = {(r["test_set"], r["label"]): r for r in rows}
    assert by[("isic19", "1:1/4")]["dropped"] == "6" and by[("isic19", "1:1/4")]["n_pairs"] == "7"
    assert by[("isic19", "1:1/2")]["verdict"] == "better" and by[("isic19", "1/4:0")]["verdict"] == "baseline"
    assert float(by[("isic19", "1:1/2")]["mean_delta"]) == pytest.approx(float(np.mean(BETTER[:8] - BASE[:8])),
                                                                         abs=1e-6)

    copy = tmp_path / "laptop"
    shutil.copytree(ws, copy)
    doc = json.loads(cli(copy, "results", "e", "--json", "--out", str(tmp_path / "fig")).stdout)
    assert doc["experiment"] == "e" and doc["test_sets"] == ["isic19", "isic20"] and doc["replicates"] == 8
    assert [(r["test_set"], r["label"], r["verdict"]) for r in doc["rows"]] == \
        [(r["test_set"], r["label"], r["verdict"]) for r in rows]
    (missing,) = doc["missing"]
    assert missing == {"label": "1:1/4", "replicate": 6, "test_set": None, "run_id": missing["run_id"],
                       "status": "failed", "reason": "run failed: killed"}
    assert "-classify-1-1_4" in missing["run_id"]
    names = sorted(p.rsplit("/", 1)[1] for p in doc["files"])
    assert names == sorted(["e.csv", "e.png", "e.svg", "e-isic19.png", "e-isic19.svg", "e-isic20.png",
                            "e-isic20.svg"])
    assert (tmp_path / "fig" / "e.csv").read_text().splitlines()[0] == ",".join(TABLE_COLUMNS)

    tex = cli(ws, "results", "e", "-f", "latex", "-t", "isic19").stdout
    assert tex.count(r"\begin{tabular}") == 1 and "1/4:1/4 & 8 &" in tex and "worse" in tex


@pytest.mark.parametrize(("args", "message"), [
    (["results", "nope"], "unknown experiment 'nope' in workspace"),
    (["results", "e", "--test-set", "dermofit"], "--test-set 'dermofit': experiment 'e' scores isic19, isic20"),
    (["results", "e", "--format", "xlsx"], "--format 'xlsx': expected one of table, csv, json, latex"),
    (["results", "e", "--format", "csv", "--plot"], "--plot draws in the terminal"),
    (["results", "e", "--format", "csv", "--json"], "--json and --format csv ask for two outputs"),
])
def test_bad_input_is_one_line_and_exit_2(ws, args, message) -> None:
    proc = cli(ws, *args, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_no_store_or_an_out_path_that_is_a_file_is_an_error_and_nothing_is_created(ws, tmp_path) -> None:
    proc = cli(tmp_path / "nowhere", "results", "e", check=False)
    assert proc.returncode == 2 and "no workspace at" in proc.stderr
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "f").write_text("x")
    proc = cli(ws, "results", "e", "--out", str(tmp_path / "f"), check=False)
    assert proc.returncode == 2 and "exists and is not a folder" in proc.stderr
    assert (tmp_path / "f").read_text() == "x"
