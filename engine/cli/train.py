"""``ganaug train``: one fine-tune of the target classifier, as a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from engine.cli.options import Workspace, existing_path
from engine.errors import InputError


def _test_sets(specs: list[str]) -> list[dict[str, str | None]]:
    """``FORMAT=ROOT`` or ``NAME:FORMAT=ROOT``, each optionally ``@SUBSET.csv`` (after the last ``@``)
    -> test-set config entries."""
    out: list[dict[str, str | None]] = []
    for spec in specs:
        head, sep, where = spec.partition("=")
        root, at, subset = where.rpartition("@") if "@" in where else (where, "", "")
        if at and not Path(root).expanduser().exists() and Path(where).expanduser().exists():
            root, at, subset = where, "", ""  # a root whose own name holds an @, and no subset
        if not sep or not head or not root or (at and not subset):
            raise InputError(f"--test {spec!r}: expected FORMAT=ROOT (or NAME:FORMAT=ROOT), optionally "
                             f"followed by @SUBSET.csv")
        name, _, fmt = head.rpartition(":")
        out.append({"name": name, "format": fmt, "root": existing_path(root, f"--test {spec}"),
                    "subset": existing_path(subset, f"--test {spec}") if subset else None})
    return out


def _synthetic(specs: list[str]) -> list[dict[str, str | None]]:
    """``FILE.csv`` (or ``csv:FILE``), ``pool:RUN[@IDS.csv]`` and ``select:RUN`` -> synthetic source entries."""
    out: list[dict[str, str | None]] = []
    for spec in specs:
        if spec.startswith("select:"):
            if not spec.removeprefix("select:"):
                raise InputError(f"--synthetic {spec!r}: expected select:RUN")
            out.append({"select": spec.removeprefix("select:")})
        elif spec.startswith("pool:"):
            run, at, ids = spec.removeprefix("pool:").partition("@")
            if not run or (at and not ids):
                raise InputError(f"--synthetic {spec!r}: expected pool:RUN or pool:RUN@IDS.csv")
            out.append({"pool": run, "ids": existing_path(ids, f"--synthetic {spec}") if ids else None})
        else:
            out.append({"csv": existing_path(spec.removeprefix("csv:"), f"--synthetic {spec}")})
    return out


def build_config(**opts: Any) -> dict[str, Any]:
    """The validated, fully resolved classify config from the command's options (None = default)."""
    from engine.train.config import parse_config

    def given(**kv: Any) -> dict[str, Any]:
        return {k: v for k, v in kv.items() if v is not None}

    raw: dict[str, Any] = given(
        data=given(format=opts["format"], root=existing_path(opts["data"], "--data"), split_seed=opts["split_seed"],
                   split_file=existing_path(opts["split_file"], "--split-file") if opts["split_file"] else None),
        tests=_test_sets(opts["test"] or []),
        real_fraction=opts["real_fraction"],
        replicate=opts["replicate"],
        synthetic=_synthetic(opts["synthetic"] or []),
        model=given(name=opts["model"], res=opts["res"], norm=opts["norm"],
                    pretrained=False if opts["no_pretrained"] else None,
                    weights=existing_path(opts["weights"], "--weights") if opts["weights"] else None),
        optim=given(max_epochs=opts["epochs"], batch_size=opts["batch_size"], lr=opts["lr"],
                    monitor=opts["monitor"], balanced_sampler=True if opts["balanced_sampler"] else None),
        augment=given(preset=opts["augment"]),
        tta=given(replicas=opts["tta"]),
        seed=opts["seed"],
        device=opts["device"],
        compile=True if opts["compile"] else None,
    )
    return parse_config(raw).to_json()


def install(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("train")
    def train(
        data: str = typer.Option(..., "--data", help="Training data set root (its split's test part is scored)."),
        format: str = typer.Option(..., "--format", help="isic2019 | isic2020 | derm7pt-derm | derm7pt-clinic | "
                                                          "dermofit | csv"),
        test: list[str] = typer.Option(None, "--test", help="Extra test set FORMAT=ROOT or NAME:FORMAT=ROOT, "
                                                           "optionally @SUBSET.csv (only the images it lists, e.g. "
                                                           "isic2020=ROOT@SUBSET.csv); repeatable."),
        model: str = typer.Option(None, "--model", help="timm model name (default: inception_v4)."),
        res: int = typer.Option(None, "--res", help="Input resolution in pixels (default: 299)."),
        epochs: int = typer.Option(None, "--epochs", help="Maximum epochs (default: 100)."),
        real_fraction: str = typer.Option(None, "--real-fraction", help="Fraction of the real training set, "
                                                                         "e.g. 1/4 or 0.25 (default: 1)."),
        replicate: int = typer.Option(None, "--replicate", help="Replicate k: picks the real subset (default: 0)."),
        seed: int = typer.Option(None, "--seed", help="Training seed (default: 0)."),
        split_seed: int = typer.Option(None, "--split-seed", help="Seed of the train/val/test split (default: 0)."),
        split_file: str = typer.Option(None, "--split-file", help="Split CSV from `ganaug data split` (e.g. the "
                                                                   "paper's, made with --assign); overrides "
                                                                   "--split-seed."),
        synthetic: list[str] = typer.Option(None, "--synthetic", help="Synthetic training images: a CSV "
                                                                       "image,label, pool:RUN[@IDS.csv] (images "
                                                                       "of a gan-pool run; IDS: a CSV with an id "
                                                                       "column) or select:RUN (what a select run "
                                                                       "chose); repeatable."),
        weights: str = typer.Option(None, "--weights", help="Local pretrained (ImageNet) weights file."),
        no_pretrained: bool = typer.Option(False, "--no-pretrained", help="Train from random initialisation."),
        norm: str = typer.Option(None, "--norm", help="imagenet (the paper) | model (timm's own) (default: imagenet)."),
        batch_size: int = typer.Option(None, "--batch-size", help="Training batch size (default: 32)."),
        lr: float = typer.Option(None, "--lr", help="Initial learning rate (default: 0.001)."),
        monitor: str = typer.Option(None, "--monitor", help="val_loss | val_auc: drives LR plateau, early "
                                                             "stopping, best checkpoint (default: val_loss)."),
        balanced_sampler: bool = typer.Option(False, "--balanced-sampler",
                                              help="Class-balanced sampling (the public code's choice)."),
        augment: str = typer.Option(None, "--augment", help="paper | code | none (default: paper)."),
        tta: int = typer.Option(None, "--tta", help="Test-time augmentation replicas (default: 50)."),
        device: str = typer.Option(None, "--device", help="auto | cpu | cuda (default: auto: the engine slot's)."),
        compile: bool = typer.Option(False, "--compile", help="torch.compile the model (GPU)."),
        label: str = typer.Option(None, "--label", help="Run label shown in listings."),
        workspace: Workspace = None,
        detach: bool = typer.Option(False, "--detach", help="Queue the run for the engine and return."),
        json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """Fine-tune the target classifier once (the paper's protocol) and score every test set."""
        config = build_config(**{k: v for k, v in locals().items()
                                 if k not in {"label", "workspace", "detach", "json_out"}})
        from engine.runner.launch import launch

        code = launch("classify", config, label=label, workspace=workspace, detach=detach, json_out=json_out)
        raise typer.Exit(code)
