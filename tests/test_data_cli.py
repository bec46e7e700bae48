"""``ganaug data check|split|demo`` through the real entry point: JSON on stdout, one-line errors, exit 2."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from engine.cli import main

GOOD = [("ISIC_0000001", "MEL"), ("ISIC_0000002", "NV"), ("ISIC_0000003", "BCC"), ("ISIC_0000004", "BKL")]


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``ganaug *args`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["ganaug", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def assert_input_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, out, err = result
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganaug: error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_check_json_is_one_document(tmp_path, monkeypatch, capsys, make_isic2019):
    root = make_isic2019(tmp_path / "isic", GOOD)
    code, out, err = run(monkeypatch, capsys, "data", "check", "--format", "isic2019", "--root", root, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["n"], doc["melanoma"], doc["benign"], doc["dropped"]) == (3, 1, 2, {"carcinoma": 1})
    assert doc["format"] == "isic2019" and doc["diagnoses"] == {"MEL": 1, "NV": 1, "BKL": 1}


def test_check_human_table_and_verify(tmp_path, monkeypatch, capsys, make_isic2019):
    root = make_isic2019(tmp_path / "isic", GOOD)
    code, out, _ = run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root, "--verify")
    assert code == 0
    assert "melanoma" in out and "dropped: carcinoma" in out and "files decoded without error" in out


def test_split_writes_csv_and_reports(tmp_path, monkeypatch, capsys, make_isic2019):
    rows = [(f"ISIC_{i:07d}", "MEL" if i % 5 == 0 else "NV") for i in range(40)]
    root = make_isic2019(tmp_path / "isic", rows, images=True)
    out_csv = tmp_path / "out" / "split.csv"
    code, out, _ = run(monkeypatch, capsys, "data", "split", "-f", "isic2019", "-r", root, "-o", out_csv, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["train"]["n"] + doc["val"]["n"] + doc["test"]["n"] == 40
    assert out_csv.read_text().splitlines()[0] == "image_id,image,label,diagnosis,lesion_id,split"


def test_demo_passes_only_the_options_given(tmp_path, monkeypatch, capsys):
    calls = []

    def generate_demo(out: Path, **kwargs):
        calls.append((out, kwargs))
        return {"out": str(out), "sets": {"isic2019": 10}}

    monkeypatch.setitem(sys.modules, "engine.data.demo_data", types.SimpleNamespace(generate_demo=generate_demo))
    code, out, _ = run(monkeypatch, capsys, "data", "demo", "--out", tmp_path / "d", "--seed", "3", "--json")
    assert code == 0 and json.loads(out) == {"out": str(tmp_path / "d"), "sets": {"isic2019": 10}}
    code, _, _ = run(monkeypatch, capsys, "data", "demo", "-o", tmp_path / "e", "--res", "24", "--n-train", "50",
                     "--overwrite")
    assert code == 0
    assert calls == [(tmp_path / "d", {"seed": 3}), (tmp_path / "e", {"res": 24, "n_train": 50, "overwrite": True})]


# -- bad input: one line naming the file (and row), exit 2, nothing written -------------------------------


def test_missing_image(tmp_path, monkeypatch, capsys, make_isic2019):
    root = make_isic2019(tmp_path / "isic", GOOD)
    (root / "ISIC_2019_Training_Input" / "ISIC_0000004.jpg").unlink()
    out_csv = tmp_path / "split.csv"
    result = run(monkeypatch, capsys, "data", "split", "-f", "isic2019", "-r", root, "-o", out_csv)
    assert_input_error(result, "ISIC_2019_Training_GroundTruth.csv, line 5", "ISIC_0000004.jpg", "not found")
    assert not out_csv.exists() and list(tmp_path.glob("*.csv")) == []


def test_bad_float_and_missing_column(tmp_path, monkeypatch, capsys, make_isic2019):
    root = make_isic2019(tmp_path / "isic", GOOD)
    gt = root / "ISIC_2019_Training_GroundTruth.csv"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join([*lines[:2], lines[2].replace("1.0", "one"), *lines[3:]]) + "\n")
    result = run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root, "--json")
    assert_input_error(result, f"{gt}, line 3: column NV: 'one' is not a number")
    gt.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    assert_input_error(run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root), str(gt), "UNK")


def test_ragged_csv_row(tmp_path, monkeypatch, capsys, write_image):
    write_image(tmp_path / "a.png", seed=1)
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("image,label\na.png,1\na.png,0,extra\n")
    result = run(monkeypatch, capsys, "data", "check", "-f", "csv", "-r", csv_path)
    assert_input_error(result, f"{csv_path}, line 3: 3 fields, header has 2")


def test_unknown_diagnosis_and_class(tmp_path, monkeypatch, capsys, write_image):
    meta = tmp_path / "d7" / "release_v0" / "meta" / "meta.csv"
    meta.parent.mkdir(parents=True)
    write_image(tmp_path / "d7" / "release_v0" / "images" / "a" / "x.jpg", seed=1)
    meta.write_text("case_num,diagnosis,clinic,derm\n1,melanoma,a/x.jpg,a/x.jpg\n2,mystery spot,a/x.jpg,a/x.jpg\n")
    result = run(monkeypatch, capsys, "data", "check", "-f", "derm7pt-derm", "-r", tmp_path / "d7")
    assert_input_error(result, f"{meta}, line 3: unknown diagnosis 'mystery spot'")
    listing = tmp_path / "dermofit" / "lesionlist.txt"
    write_image(listing.parent / "MEL" / "A1" / "A1.png", seed=2)
    listing.write_text("1 A1 MEL\n2 B2 XYZ\n")
    result = run(monkeypatch, capsys, "data", "check", "-f", "dermofit", "-r", listing.parent)
    assert_input_error(result, f"{listing}, line 2: unknown class 'XYZ'")


def test_one_class_only(tmp_path, monkeypatch, capsys, make_isic2019):
    root = make_isic2019(tmp_path / "isic", [("ISIC_0000001", "NV"), ("ISIC_0000002", "BKL"), ("ISIC_0000003", "BCC")])
    result = run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root, "--json")
    assert_input_error(result, "ISIC_2019_Training_GroundTruth.csv: only one class (benign, 2 images)")


def test_truncated_image_caught_by_verify(tmp_path, monkeypatch, capsys, make_isic2019):
    root = make_isic2019(tmp_path / "isic", GOOD)
    bad = root / "ISIC_2019_Training_Input" / "ISIC_0000002.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    assert run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root)[0] == 0  # existence only
    result = run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root, "--verify", "--json")
    assert_input_error(result, str(bad), "corrupt or truncated image")


def test_unknown_format_is_a_usage_error(tmp_path, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "data", "check", "-f", "isic2017", "-r", tmp_path)
    assert code == 2 and out == "" and "isic2017" in err


def test_unwritable_outputs_are_one_line_errors(tmp_path, monkeypatch, capsys, make_isic2019):
    root = make_isic2019(tmp_path / "isic", GOOD)
    afile = tmp_path / "afile"
    afile.write_text("")
    split = ("data", "split", "--format", "isic2019", "--root", root, "--out")
    assert_input_error(run(monkeypatch, capsys, *split, tmp_path), str(tmp_path), "cannot write")  # a folder
    assert_input_error(run(monkeypatch, capsys, *split, afile / "x.csv"), str(afile / "x.csv"), "cannot write")
    assert_input_error(run(monkeypatch, capsys, "data", "demo", "--out", afile / "demo"), str(afile / "demo"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_split_from_assignment_files_json_is_a_superset(tmp_path, monkeypatch, capsys, make_isic2019):
    rows = [(f"ISIC_{i:07d}", "MEL" if i % 4 == 0 else "NV") for i in range(20)] + [("ISIC_0000020", "BCC")]
    root = make_isic2019(tmp_path / "isic", rows)
    ids = [r[0] for r in rows]

    def listing(name: str, chosen: list[str]) -> str:
        path = tmp_path / f"{name}.csv"  # the authors' layout: ISIC_2019_Training_Input/<id>, one-hot, label
        path.write_text("image,MEL,NV,label\n" + "".join(f"ISIC_2019_Training_Input/{i},0,1,0\n" for i in chosen))
        return f"{name}={path}"

    assign = ["--assign", listing("train", ids[:12]), "--assign", listing("val", ids[12:15]),
              "--assign", listing("test", ids[15:19])]
    out_csv = tmp_path / "paper.csv"
    code, out, err = run(monkeypatch, capsys, "data", "split", "-f", "isic2019", "-r", root, *assign, "-o", out_csv,
                         "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert {"out", "seed", "train", "val", "test"} <= set(doc)  # the keys of a stratified split's document stay
    assert [doc[p]["n"] for p in ("train", "val", "test")] == [12, 3, 4]
    assert [doc[p]["melanoma"] for p in ("train", "val", "test")] == [3, 1, 1]
    assert doc["unassigned"] == 1 and doc["seed"] is None  # ISIC_0000019 (the carcinoma is no data-set image)
    frame = out_csv.read_text().splitlines()
    assert len(frame) == 1 + 19 and frame[1].startswith("ISIC_0000000,")
    # the human form says how many images take no part
    code, out, err = run(monkeypatch, capsys, "data", "split", "-f", "isic2019", "-r", root, *assign, "-o", out_csv)
    assert code == 0 and "train      12 images" in out and "1 images of the data set are in no list" in err
    # each kind of inconsistency is one line, and nothing is written
    bad = tmp_path / "bad.csv"
    for chosen, fragment in [(ids[:12] + ["ISIC_0000020"], "line 14: image 'ISIC_0000020' is not in the data set"),
                             (ids[:12] + [ids[13]], "val.csv, line 3: image 'ISIC_0000013' is also in the train part")]:
        bad.unlink(missing_ok=True)
        bad_assign = ["--assign", listing("train", chosen), *assign[2:]]
        result = run(monkeypatch, capsys, "data", "split", "-f", "isic2019", "-r", root, *bad_assign, "-o", bad)
        assert_input_error(result, fragment)
        assert not bad.exists()
    assert_input_error(run(monkeypatch, capsys, "data", "split", "-f", "isic2019", "-r", root, *assign[:4], "-o", bad),
                       "--assign", "missing test")
    assert_input_error(run(monkeypatch, capsys, "data", "split", "-f", "isic2019", "-r", root, *assign, "--seed", "1",
                           "-o", bad), "--seed")


def test_check_with_a_subset_keeps_only_listed_images(tmp_path, monkeypatch, capsys, make_isic2019):
    rows = [(f"ISIC_{i:07d}", "MEL" if i % 3 == 0 else "NV") for i in range(12)]
    root = make_isic2019(tmp_path / "isic", rows)
    subset = tmp_path / "subset.csv"
    subset.write_text("image\nISIC_0000000\nISIC_0000004_downsampled\nISIC_0000005.jpg\n")
    code, out, err = run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root, "--subset", subset,
                         "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["n"], doc["melanoma"], doc["benign"]) == (3, 1, 2)
    assert doc["dropped"] == {"not in the subset": 9} and doc["subset"] == str(subset)
    subset.write_text("image\nISIC_0000000\nISIC_0000099\n")
    assert_input_error(run(monkeypatch, capsys, "data", "check", "-f", "isic2019", "-r", root, "--subset", subset),
                       f"{subset}, line 3: image 'ISIC_0000099' is not in the isic2019 data set")
