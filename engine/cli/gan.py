"""``ganaug gan train|fid|sample|pool|import``: GANs as runs, their checkpoint curve, samples and pools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.options import Json, Workspace, data_keys, existing_path
from engine.errors import EXIT_OK, EXIT_RUN_FAILED, InputError

app = typer.Typer(help="Train, inspect, sample and import GANs; make synthetic pools.", no_args_is_help=True)

Detach = Annotated[bool, typer.Option("--detach", help="Queue the run for the engine and return.")]
Label = Annotated[str | None, typer.Option("--label", help="Run label shown in listings.")]
Device = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda (default: auto: the engine slot's).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed (default: 0).")]


def _metrics(features: str | None, fid_weights: str | None, n: int | None, margin: float | None,
             relative: bool | None) -> dict[str, Any]:
    given = {"features": features, "fid_weights": existing_path(fid_weights, "--fid-weights") if fid_weights else None,
             "n": n, "select_margin": margin, "select_relative": relative}
    return {k: v for k, v in given.items() if v is not None}


def _run(kind: str, config: dict[str, Any], *, label: str | None, workspace: Path | None, detach: bool,
         json_out: bool, parents: tuple[str, ...] = ()) -> None:
    from engine.runner.launch import launch

    code = launch(kind, config, label=label, workspace=workspace, detach=detach, json_out=json_out, parents=parents)
    if code != EXIT_OK:
        raise typer.Exit(code)


FeaturesOpt = Annotated[str | None, typer.Option("--features", help="A finished classify run: its penultimate "
                                                 "layer gives the domain FID / precision / recall.")]
FidWeightsOpt = Annotated[str | None, typer.Option("--fid-weights", help="Local FID Inception-v3 weights file "
                                                   "(torch-fidelity's): metrics are then Inception FID.")]
SplitSeed = Annotated[int | None, typer.Option("--split-seed", help="Seed of the classifier's split (default 0).")]
SplitFile = Annotated[str | None, typer.Option("--split-file", help="A split CSV (ganaug data split --out).")]
SplitData = Annotated[str | None, typer.Option("--split-data", help="pix2pixhd / spade: the ISIC 2019 training "
                                               "data root whose split (--split-seed) keeps the masks of its "
                                               "training images; or name the split itself with --split-file.")]


@app.command("train")
def train(
    family: Annotated[str, typer.Option("--family", help="stylegan2 | pgan (noise) | pix2pixhd | spade "
                                        "(translation: --format isic2018-masks)")],
    data: Annotated[str, typer.Option("--data", help="Data set root (the GAN trains on its split's train part).")],
    format: Annotated[str, typer.Option("--format", help="Data-set format (isic2019, csv, isic2018-masks, ...).")],
    split_seed: SplitSeed = None,
    split_file: SplitFile = None,
    split_data: SplitData = None,
    features: FeaturesOpt = None,
    fid_weights: FidWeightsOpt = None,
    preset: Annotated[str, typer.Option("--preset", help="tiny | demo | paper")] = "demo",
    kimg: Annotated[int | None, typer.Option("--kimg", help="Training length in thousands of images.")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Family config key=value (repeat), e.g. "
                                                   "--set batch=32 --set ada=false.")] = None,
    metrics_n: Annotated[int | None, typer.Option("--metrics-n", help="Images per checkpoint metric (max 10,000 "
                                                  "by default).")] = None,
    select_margin: Annotated[float | None, typer.Option("--select-margin", help="Checkpoint rule margin "
                                                        "(default 0.3 Inception FID, 0.01 relative domain).")] = None,
    select_relative: Annotated[bool | None, typer.Option("--select-relative/--select-absolute",
                                                         help="Margin relative to the best value or absolute.")
                               ] = None,
    seed: Seed = 0,
    device: Device = None,
    label: Label = None,
    workspace: Workspace = None,
    detach: Detach = False,
    json_out: Json = False,
) -> None:
    """Train a GAN; every checkpoint gets a sample grid and FID / precision / recall.

    Noise GANs (stylegan2, pgan) are class-conditional and train on the training part of the split of --data.
    Translation GANs (pix2pixhd, spade) turn the attribute masks under --data (--format isic2018-masks) into
    images; only the masks of the training images of the classifier's ISIC 2019 split are used: name that split
    by its data (--split-data ISIC2019_ROOT [--split-seed K], the same file a classify run of that data uses)
    or by its file (--split-file SPLIT.csv).
    """
    from engine.cli.runs import parse_sets

    gan = parse_sets(sets or [], {})
    if kimg is not None:
        gan["kimg"] = kimg
    config: dict[str, Any] = {
        "family": family, "preset": preset, "gan": gan,
        "data": data_keys(data, format, split_seed, split_file, split_data=split_data),
        "metrics": _metrics(features, fid_weights, metrics_n, select_margin, select_relative), "seed": seed,
    }
    if device is not None:
        config["device"] = device
    _run("gan-train", config, label=label, workspace=workspace, detach=detach, json_out=json_out)


def _curve(store: Any, run_id: str) -> dict[str, Any]:
    """A GAN run's checkpoint curve: result.json when finished, else the metrics stored so far."""
    from engine.gans.generator import checkpoint_name

    run = store.get_run(run_id)
    if not run.kind.startswith("gan-") or run.kind == "gan-pool":
        raise InputError(f"run {run.id}: is a {run.kind} run, not a GAN run")
    path = store.run_dir(run.id) / "result.json"
    if path.is_file():
        doc = json.loads(path.read_text())
        return {"id": run.id, "status": run.status, "features": doc["features"], "checkpoints": doc["checkpoints"],
                "selected": doc["selected"]}
    frame = store.metrics(run.id)
    frame = frame[frame["name"].str.startswith(("fid", "precision", "recall"))]
    checkpoints = [{"kimg": int(k), "grid": f"samples/{checkpoint_name(int(k))}.png",
                    "path": f"checkpoints/{checkpoint_name(int(k))}.pt",
                    **{r.name: float(r.value) for r in part.itertuples()}} for k, part in frame.groupby("step")]
    metrics = run.config.get("metrics", {})
    features = ("inception" if metrics.get("fid_weights") else f"domain:{metrics['features']}"
                if metrics.get("features") else None)
    return {"id": run.id, "status": run.status, "features": features, "checkpoints": checkpoints, "selected": None}


@app.command("fid")
def fid(run_id: Annotated[str, typer.Argument(help="A gan-train or gan-import run.")], json_out: Json = False,
        workspace: Workspace = None) -> None:
    """The checkpoint curve (FID, precision, recall) and the checkpoint the paper's rule chose."""
    from engine import store as st

    with st.open_store(workspace, readonly=True) as store:
        doc = _curve(store, store.resolve(run_id))
    if json_out:
        print(json.dumps(doc))
        return
    suffix = "" if doc["features"] == "inception" else "_domain"
    names = [f"fid{suffix}", f"precision{suffix}", f"recall{suffix}"]
    chosen = doc["selected"]["kimg"] if doc["selected"] else None
    print(f"run {doc['id']} ({doc['status']}); features: {doc['features'] or 'none'}")
    print(f"  {'kimg':>6} " + " ".join(f"{n:>17}" for n in names))
    for c in doc["checkpoints"]:
        vals = " ".join(f"{c[n]:>17.4f}" if n in c else f"{'-':>17}" for n in names)
        print(f"{'*' if c['kimg'] == chosen else ' '} {c['kimg']:>6} {vals}")
    if doc["selected"]:
        print(f"selected: kimg {chosen} ({doc['selected']['rule']}); {doc['selected']['path']}")
    else:
        print("selected: none yet (the run has not finished)")


@app.command("sample")
def sample(
    run_id: Annotated[str, typer.Argument(help="A gan-train or gan-import run.")],
    out: Annotated[Path, typer.Option("--out", help="A folder (one PNG per image) or FILE.png (one grid).")],
    n: Annotated[int | None, typer.Option("--n", help="Number of images (translation GANs: the first N training "
                                          "masks, or at most N of --masks).", min=1)] = None,
    klass: Annotated[str | None, typer.Option("--class", help="benign | melanoma (noise GANs)")] = None,
    masks: Annotated[Path | None, typer.Option("--masks", help="Translation GANs: a file of training-mask image ids, "
                                               "one per line (or a CSV with an image_id column).")] = None,
    kimg: Annotated[int | None, typer.Option("--kimg", help="Checkpoint (default: the selected one).")] = None,
    seed: Seed = 0,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda")] = "cpu",
    workspace: Workspace = None,
) -> None:
    """Images from a GAN run: of one class, the same ones a pool with this --seed starts with; or, for a
    translation GAN, map / real / synthetic triplets of training masks."""
    import math

    from engine import store as st
    from engine.fsutil import atomic_path
    from engine.gans.generator import image_seeds, load_generator
    from engine.gans.kind import CLASS_NAMES, write_grid
    from engine.synth.pool import pool_id

    with st.open_store(workspace, readonly=True) as store:
        rid = store.resolve(run_id)
        ws = store.workspace
    gen = load_generator(ws, rid, kimg, device)
    if gen.translation:
        if klass is not None:
            raise InputError(f"--class: run {rid} is a translation GAN: an image has its mask's class; choose masks "
                             f"with --n N or --masks FILE")
        _sample_masks(gen, ws, n, masks, out)
        return
    if masks is not None:
        raise InputError(f"--masks: run {rid} is a noise GAN; it makes images of a --class")
    if n is None or klass is None:
        raise InputError(f"run {rid} is a noise GAN: give --n N and --class benign|melanoma")
    if klass not in CLASS_NAMES:
        raise InputError(f"--class {klass!r}: expected benign or melanoma")
    label = CLASS_NAMES.index(klass)
    images = gen.images([label] * n, image_seeds(seed, label, range(n)))
    if out.suffix.lower() == ".png":
        write_grid(out, images, math.ceil(math.sqrt(n)))
        print(f"{n} {klass} images of run {rid} ({gen.checkpoint}) in {out}", file=sys.stderr)
        return
    _out_folder(out)
    from PIL import Image

    for i, img in enumerate(images):
        with atomic_path(out / f"{pool_id(label, i)}.png") as tmp:
            Image.fromarray(img).save(tmp)
    print(f"{n} {klass} images of run {rid} ({gen.checkpoint}) in {out}/", file=sys.stderr)


def _out_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder (name a folder, or a .png file for a grid)")


def _mask_ids(path: Path) -> list[tuple[int, str]]:
    """(line, image id) of a --masks file: one id per line, or a CSV whose header has an image_id column."""
    from engine.data.records import read_csv_rows

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--masks {path}: unreadable ({exc})") from None
    if lines and "image_id" in [c.strip() for c in lines[0].split(",")]:
        return [(line, row["image_id"]) for line, row in read_csv_rows(path, ("image_id",))]
    return [(i, text.strip()) for i, text in enumerate(lines, start=1) if text.strip()]


def _sample_masks(gen: Any, workspace: Path, n: int | None, masks: Path | None, out: Path) -> None:
    """Map / real / synthetic of the first ``n`` training masks of the run (or the listed ones, at most ``n``)."""
    import numpy as np
    from PIL import Image

    from engine.data.masks import colour
    from engine.fsutil import atomic_path
    from engine.gans.data import load_translation_data
    from engine.gans.translation import triplet_grid

    if n is None and masks is None:
        raise InputError(f"run {gen.run_id} is a translation GAN: give --n N (its first N training masks) or "
                         f"--masks FILE")
    data = load_translation_data(workspace, gen.data, gen.res, gen.boundary)
    if masks is None:
        rows = np.arange(min(n or 0, len(data)))
    else:
        row_of = {r.image_id: i for i, r in enumerate(data.records)}
        listed = _mask_ids(masks)[:n]
        if not listed:
            raise InputError(f"--masks {masks}: lists no image id")
        for line, image_id in listed:
            if image_id.removesuffix("_downsampled") not in row_of:
                raise InputError(f"--masks {masks}, line {line}: {image_id} is not a training mask of run {gen.run_id} "
                                 f"(only the masks of the split's training images reach a GAN)")
        rows = np.array([row_of[i.removesuffix("_downsampled")] for _, i in listed])
    fake = gen.translate(data.maps[rows])
    real = np.asarray(data.images[rows])
    if out.suffix.lower() == ".png":
        with atomic_path(out) as tmp:
            Image.fromarray(triplet_grid(data.maps[rows], real, fake)).save(tmp)
        print(f"{len(rows)} map / real / synthetic triplets of run {gen.run_id} ({gen.checkpoint}) in {out}",
              file=sys.stderr)
        return
    _out_folder(out)
    for k, row in enumerate(rows):
        image_id = data.records[row].image_id
        for suffix, img in (("map", colour(data.maps[row])), ("real", real[k]), ("synthetic", fake[k])):
            with atomic_path(out / f"{image_id}_{suffix}.png") as tmp:
                Image.fromarray(img).save(tmp)
    print(f"{len(rows)} map / real / synthetic triplets of run {gen.run_id} ({gen.checkpoint}) in {out}/",
          file=sys.stderr)


@app.command("pool")
def pool(
    run_id: Annotated[str, typer.Argument(help="A gan-train or gan-import run.")],
    per_class: Annotated[int | None, typer.Option("--per-class", help="Images per class (the paper: 100,000); not "
                                                  "for translation GANs: one image per training mask.", min=1)] = None,
    kimg: Annotated[int | None, typer.Option("--kimg", help="Checkpoint (default: the selected one).")] = None,
    seed: Seed = 0,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per generator call.")] = None,
    device: Device = None,
    label: Label = None,
    workspace: Workspace = None,
    detach: Detach = False,
    json_out: Json = False,
) -> None:
    """Sample a pool of synthetic images (sharded uint8 arrays + pool.csv) from a GAN run; a translation GAN's
    pool is exactly one image per training mask, of its source image's class."""
    from engine import store as st
    from engine.config import TRANSLATION_GANS
    from engine.gans.kind import disk_warning

    with st.open_store(workspace, readonly=True) as store:
        rid = store.resolve(run_id)
        family = store.get_run(rid).config.get("family")
        result = store.run_dir(rid) / "result.json"
        doc = json.loads(result.read_text()) if result.is_file() else {}
        translation = family in TRANSLATION_GANS
        if translation and per_class is not None:
            raise InputError(f"--per-class: run {rid} is a {family} (translation) GAN: its pool is exactly one image "
                             f"per training mask")
        if not translation and per_class is None:
            raise InputError(f"--per-class N: required for the pool of run {rid} (the paper: 100,000 per class)")
        n_images = sum(doc.get("n_train", {}).values()) if translation else 2 * (per_class or 0)
        if doc.get("res"):
            warning = disk_warning(store.workspace, n_images, int(doc["res"]))
            if warning:
                print(warning, file=sys.stderr)
    config: dict[str, Any] = {"gan_run": rid, "per_class": per_class, "kimg": kimg, "seed": seed}
    if batch_size is not None:
        config["batch_size"] = batch_size
    if device is not None:
        config["device"] = device
    _run("gan-pool", config, label=label, workspace=workspace, detach=detach, json_out=json_out, parents=(rid,))


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="NVlabs network pickle (G_ema) or TorchScript generator G(z, c).")],
    trust: Annotated[bool, typer.Option("--trust", help="Allow unpickling (runs code from the file).")] = False,
    code: Annotated[str | None, typer.Option("--code", help="Folder with the code the pickle needs (e.g. a clone "
                                             "of NVlabs' repository).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run label.")] = None,
    class_index: Annotated[list[str] | None, typer.Option("--class-index", help="melanoma=K / benign=K: one-hot "
                                                          "index of a class (default benign=0, melanoma=1).")] = None,
    as_class: Annotated[str | None, typer.Option("--as-class", help="benign | melanoma: the class an "
                                                 "unconditional generator makes.")] = None,
    truncation_psi: Annotated[float, typer.Option("--truncation-psi", help="NVlabs pickles only.")] = 1.0,
    z_dim: Annotated[int | None, typer.Option("--z-dim", help="Latent size if the network does not say.")] = None,
    c_dim: Annotated[int | None, typer.Option("--c-dim", help="Class-vector size if the network does not say.")
                     ] = None,
    features: FeaturesOpt = None,
    fid_weights: FidWeightsOpt = None,
    data: Annotated[str | None, typer.Option("--data", help="Real reference for metrics: data set root.")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Its format.")] = None,
    split_seed: SplitSeed = None,
    split_file: SplitFile = None,
    seed: Seed = 0,
    device: Device = None,
    workspace: Workspace = None,
    detach: Detach = False,
    json_out: Json = False,
) -> None:
    """Make an externally trained generator a GAN run (grid, optional metrics, pools)."""
    from engine import store as st
    from engine.cli.runs import show_doc
    from engine.gans.external import check_trust
    from engine.runner.kinds import validate_config
    from engine.runner.launch import run_here

    path = Path(existing_path(str(file), "FILE"))
    config: dict[str, Any] = {
        "source": str(path), "format": check_trust(path, trust), "trust": trust,
        "code": existing_path(code, "--code") if code else None, "class_index": class_index or [],
        "as_class": as_class, "truncation_psi": truncation_psi, "z_dim": z_dim, "c_dim": c_dim,
        "data": data_keys(data, format, split_seed, split_file),
        "metrics": _metrics(features, fid_weights, None, None, None), "seed": seed,
    }
    if device is not None:
        config["device"] = device
    if detach:
        config = validate_config("gan-import", config, st.resolve_workspace(workspace))
        with st.open_store(workspace) as store:
            run_id = store.create_run("gan-import", config, label=name)
    else:
        run_id = run_here("gan-import", config, label=name, workspace=workspace)["run_id"]
    with st.open_store(workspace, readonly=True) as store:
        doc = show_doc(store, run_id)
    if json_out:
        print(json.dumps(doc))
    elif detach:
        print(run_id)
    else:
        print(f"run {run_id} {doc['status']}; folder {doc['run_dir']}", file=sys.stderr)
    if doc["status"] not in ("succeeded", "queued"):
        raise typer.Exit(EXIT_RUN_FAILED)
