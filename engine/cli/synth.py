"""``ganaug select`` (a run: synthetic images chosen from GAN pools) and ``ganaug audit`` (memorization audit)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from engine.cli.options import Json, Workspace, data_keys
from engine.errors import InputError


def _pools(store: Any, specs: list[str]) -> dict[str, str]:
    """``RUN`` or ``GAN=RUN`` -> {GAN family: run id}; the family of a bare run is read from the run."""
    from engine.synth.select import pool_gan

    pools: dict[str, str] = {}
    for spec in specs:
        gan, sep, run = spec.rpartition("=")
        run_id = store.resolve(run)
        if store.get_run(run_id).kind != "gan-pool" and not (store.run_dir(run_id) / "pool").is_dir():
            raise InputError(f"POOL_RUN {spec!r}: run {run_id} is a {store.get_run(run_id).kind} run, not a "
                             f"gan-pool run")
        gan = gan if sep else (pool_gan(store.workspace, run_id) or "")
        if not gan:
            raise InputError(f"POOL_RUN {spec!r}: cannot tell which GAN made run {run_id}; name it as GAN={run}")
        if gan in pools:
            raise InputError(f"POOL_RUN {spec!r}: two pools of {gan} ({pools[gan]}, {run_id})")
        pools[gan] = run_id
    return pools


def install(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("select")
    def select(
        pool_runs: list[str] = typer.Argument(..., metavar="POOL_RUN...",
                                              help="gan-pool runs (RUN, or GAN=RUN when the run does not say)."),
        label: str = typer.Option(..., "--label", help='Configuration, e.g. "1:1/2 sgn div" (the paper\'s labels).'),
        data: str = typer.Option(..., "--data", help="Real training data root (its class sizes scale the ratio)."),
        format: str = typer.Option(..., "--format", help="isic2019 | isic2020 | derm7pt-derm | derm7pt-clinic | "
                                                          "dermofit | csv"),
        split_seed: int = typer.Option(None, "--split-seed", help="Seed of the stratified split (default: 0)."),
        split_file: str = typer.Option(None, "--split-file", help="A split CSV (ganaug data split) instead."),
        helper: str = typer.Option(None, "--helper", help="best/worst: the classify run that scores the pool "
                                                          "(default: the replicate-0 1:0 run of the same data)."),
        diverse_threshold: int = typer.Option(None, "--diverse-threshold",
                                              help="diverse: pHash bits within which an image is a "
                                                   "near-duplicate (default: 4)."),
        all_mode: str = typer.Option(None, "--all-mode", help="all: union (the paper) | share."),
        seed: int = typer.Option(None, "--seed", help="Seed of the random order (default: 0)."),
        cap: bool = typer.Option(False, "--cap", help="Translation GANs: use all their images when asked for "
                                                      "more, instead of refusing."),
        device: str = typer.Option(None, "--device", help="auto | cpu | cuda, for helper scoring."),
        workspace: Workspace = None,
        detach: bool = typer.Option(False, "--detach", help="Queue the run for the engine and return."),
        json_out: Json = False,
    ) -> None:
        """Choose a configuration's synthetic images from GAN pools (writes selection.csv as a run)."""
        from engine.config import Configuration
        from engine.runner.launch import launch
        from engine.store import open_store
        from engine.synth.select import HELPER_SAMPLERS, default_helper
        from engine.train.config import DataConfig

        try:
            conf = Configuration.parse(label)
        except ValueError as exc:
            raise InputError(f"--label: {exc}") from None
        data_cfg = data_keys(data, format, split_seed, split_file, required=True)
        samplers: dict[str, Any] = {k: v for k, v in (("diverse_threshold", diverse_threshold),
                                                      ("all_mode", all_mode), ("seed", seed)) if v is not None}
        with open_store(workspace) as store:
            pools = _pools(store, pool_runs)
            if helper is not None:
                samplers["helper"] = store.resolve(helper)
            elif conf.sampler in HELPER_SAMPLERS:
                found = default_helper(store, DataConfig.model_validate(data_cfg))
                if found is None:
                    raise InputError(f"--helper: {conf.sampler} sampling needs a helper classifier and this "
                                     f"workspace has no replicate-0 1:0 classify run of {data}; pass --helper RUN")
                samplers["helper"] = found
            ws = store.workspace
        config: dict[str, Any] = {"label": conf.label, "pools": pools, "data": data_cfg, "samplers": samplers,
                                  "cap": cap, **({"device": device} if device else {})}
        parents = [*pools.values(), *([samplers["helper"]] if "helper" in samplers else [])]
        code = launch("select", config, label=conf.label, workspace=ws, detach=detach, json_out=json_out,
                      parents=parents)
        raise typer.Exit(code)

    @app.command("audit")
    def audit(
        run: str = typer.Argument(..., help="A gan-pool run (all its images) or a select run (those it chose)."),
        helper: str = typer.Option(None, "--helper", help="Classify run whose features measure similarity "
                                                          "(default: the select run's helper, else the "
                                                          "replicate-0 1:0 run of the same data)."),
        data: str = typer.Option(None, "--data", help="Real data the GAN learnt from, when the run does not say."),
        format: str = typer.Option(None, "--format", help="Format of --data."),
        split_seed: int = typer.Option(None, "--split-seed", help="Seed of the stratified split (default: 0)."),
        split_file: str = typer.Option(None, "--split-file", help="A split CSV (ganaug data split) instead."),
        quantile: float = typer.Option(0.01, "--quantile", help="Thresholds: this quantile of the validation "
                                                                "images' distances to their nearest training image."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        workspace: Workspace = None,
        json_out: Json = False,
    ) -> None:
        """Memorization audit: nearest training image of each synthetic image vs the validation images'."""
        from engine.store import open_store
        from engine.synth.audit import AUDIT_DIR, classifier_data, data_of, run_audit, run_meta
        from engine.synth.select import default_helper

        given = data_keys(data, format, split_seed, split_file)
        with open_store(workspace) as store:
            run_id = store.resolve(run)
            ws = store.workspace
            meta = run_meta(ws / run_id)
            data_cfg = given or data_of(ws, meta)
            helper_id = store.resolve(helper) if helper else (meta.get("config") or {}).get("samplers", {}).get(
                "helper")
            if helper_id is None and data_cfg is not None and (clf_data := classifier_data(data_cfg)) is not None:
                helper_id = default_helper(store, clf_data)
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        doc = run_audit(ws, run_id, helper=helper_id, data=data_cfg, quantile=quantile, device=device)
        if json_out:
            print(json.dumps(doc))
            return
        for name, c in doc["per_class"].items():
            print(f"{name}: {c['suspected_copies']} of {c['n']} suspected copies ({c['fraction']:.2%})")
        print(f"thresholds (validation {quantile:g} quantile): pHash {doc['threshold']['phash']}, "
              f"feature {doc['threshold']['feature']}; report in {ws / run_id / AUDIT_DIR}", file=sys.stderr)
