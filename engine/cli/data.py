"""``ganaug data ...``: demo data generation, data-set checks and the train/val/test split."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from engine.data import FORMATS
from engine.errors import InputError

app = typer.Typer(help="Data sets: generate the procedural demo data, check a data set.", no_args_is_help=True)

DataFormat = StrEnum("DataFormat", {f: f for f in FORMATS})  # typer shows and checks the choices

_FORMAT = typer.Option(..., "--format", "-f", help="Layout of the data set.")
_ROOT = typer.Option(..., "--root", "-r", help="Folder of the data set (for csv: the CSV or its folder).")
_JSON = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@app.command()
def check(
    fmt: DataFormat = _FORMAT,
    root: Path = _ROOT,
    as_json: bool = _JSON,
    verify: bool = typer.Option(
        False, "--verify", help="Decode every image and mask fully to catch corrupt or truncated files (slower)."
    ),
    subset: Path = typer.Option(None, "--subset", help="Keep only the images this CSV lists (column image, "
                                                        "image_id or image_name), e.g. the paper's isic20 subset."),
) -> None:
    """Read a data set through its adapter and report kept images per class and what was dropped and why."""
    from engine.data import load_dataset, verify_images
    from engine.data.subsets import listed_subset

    ds = load_dataset(fmt.value, root)
    if subset is not None:
        ds = listed_subset(ds, subset)
    decoded = verify_images(ds) if verify else 0
    summary = {**ds.summary(), "subset": None if subset is None else str(subset), "verified": verify,
               "files_decoded": decoded}
    if as_json:
        _emit_json(summary)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{fmt.value}: {root}", show_header=True)
    table.add_column("")
    table.add_column("images", justify="right")
    table.add_row("kept", str(ds.n))
    table.add_row("  melanoma", str(ds.n_melanoma))
    table.add_row("  benign", str(ds.n_benign))
    for diagnosis, count in summary["diagnoses"].items():
        table.add_row(f"    {diagnosis}", str(count))
    for reason, count in summary["dropped"].items():
        table.add_row(f"dropped: {reason}", str(count))
    if verify:
        table.add_row("files decoded without error", str(decoded))
    Console(file=sys.stdout).print(table)


def _assignments(specs: list[str]) -> dict[str, Path]:
    """``PART=FILE`` options -> {part: file}; a part given twice is an error."""
    out: dict[str, Path] = {}
    for spec in specs:
        part, sep, file = spec.partition("=")
        if not sep or not part or not file:
            raise InputError(f"--assign {spec!r}: expected PART=FILE (PART: train, val or test)")
        if part in out:
            raise InputError(f"--assign {spec!r}: part {part!r} given twice")
        out[part] = Path(file).expanduser()
    return out


@app.command()
def split(
    fmt: DataFormat = _FORMAT,
    root: Path = _ROOT,
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write (image_id,image,label,diagnosis,lesion_id,split)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the stratified split (default: 0)."),
    assign: list[str] = typer.Option(None, "--assign", help="PART=FILE: the images of part train, val or test, "
                                                             "listed in a CSV (column image, image_id or "
                                                             "image_name), e.g. the paper's split CSVs; give all "
                                                             "three instead of the stratified split."),
    as_json: bool = _JSON,
) -> None:
    """Split a data set into train/val/test: stratified in the paper's proportions (14,805 / 1,931 / 3,863), or
    exactly as given lists assign the images (--assign)."""
    from engine.data import load_dataset
    from engine.data.split import assigned_split, split_dataset

    if assign and seed is not None:
        raise InputError("--seed: has no effect with --assign (the lists fix the split)")
    ds = load_dataset(fmt.value, root)
    unassigned = 0
    if assign:
        parts, unassigned = assigned_split(ds.records, _assignments(assign))
    else:
        seed = 0 if seed is None else seed
        parts = split_dataset(ds.records, seed=seed)
    try:
        parts.write_csv(out)
    except OSError as exc:  # a folder, or a path under a file / a read-only place
        raise InputError(f"--out {out}: cannot write the split there ({exc.strerror})") from None
    summary = {
        "out": str(out),
        "seed": seed,
        **{
            name: {"n": len(rs), "melanoma": sum(r.label for r in rs), "benign": sum(1 - r.label for r in rs)}
            for name, rs in parts.parts().items()
        },
        "unassigned": unassigned,
        "assigned": {k: str(v) for k, v in _assignments(assign).items()} if assign else None,
    }
    if as_json:
        _emit_json(summary)
    else:
        for name in ("train", "val", "test"):
            s = summary[name]
            print(f"{name:5s} {s['n']:7d} images  {s['melanoma']:6d} melanoma  {s['benign']:6d} benign")
        if unassigned:
            print(f"{unassigned} images of the data set are in no list (they take no part)", file=sys.stderr)
        print(f"written to {out}", file=sys.stderr)


@app.command()
def demo(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the demo data sets into."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the generator."),
    res: int | None = typer.Option(None, "--res", help="Image side in pixels."),
    n_train: int | None = typer.Option(None, "--n-train", help="Images in the ISIC 2019-layout training set."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a demo made with other parameters."),
    as_json: bool = _JSON,
) -> None:
    """Generate the procedural lesion data sets (ISIC 2019, derm7pt and Dermofit layouts, Task 2 masks)."""
    from engine.data.demo_data import generate_demo

    given = {"seed": seed, "res": res, "n_train": n_train, "overwrite": overwrite or None}
    manifest = generate_demo(out, **{k: v for k, v in given.items() if v is not None})
    if as_json:
        _emit_json(manifest)
        return
    from rich.console import Console
    from rich.pretty import Pretty

    Console(file=sys.stdout).print(Pretty(manifest))
    print(f"demo data written to {out}", file=sys.stderr)
