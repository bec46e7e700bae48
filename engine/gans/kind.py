"""Run kinds ``gan-train``, ``gan-pool`` and ``gan-import``: a GAN as a run, its checkpoints, its pool.

``gan-train``: trains one family at one preset on the training part of the classifier's split. Every
``snapshot_kimg`` thousand images it writes the EMA generator (``checkpoints/kimg-NNNNNN.pt``), a grid from
fixed latents (``samples/kimg-NNNNNN.png``: one row per class, the same z at every checkpoint) and the
metrics of ``engine.gans.metrics`` (step = kimg); the losses are stored with step = images seen. At the end
the paper's rule picks a checkpoint; ``result.json`` lists the whole curve and the choice.

Seeding and resume: the networks' init comes from the run seed; iteration ``t`` draws its minibatch and
every random number of its step (latents, noise, augmentation) from generators seeded with (seed, t) only.
The resume checkpoint holds the trainer (networks, EMA, optimisers, step, ADA state), the checkpoint list
and the partial logging window, so a run stopped anywhere and resumed equals an uninterrupted one (CPU).

Translation families (pix2pixHD, SPADE) train on the attribute masks of the split's training images
(``engine.gans.data.load_translation_data``): their grid shows label map / real / synthetic for the first
``grid_columns`` masks, and their metrics compare one image translated from each of (up to ``metrics.n``)
training masks with the real images of the same masks. Everything else (checkpoints, rule, resume) is shared.

``gan-pool``: N images per class from a GAN run's selected (or named) checkpoint, written shard by shard
with ``engine.synth.pool.PoolWriter`` (resumable mid-pool: each image is a function of its own seed); for a
translation GAN, exactly one image per training mask, of its source image's class (``source_mask`` filled,
``seed`` empty).

``gan-import``: an external generator becomes a GAN run with one checkpoint (``engine.gans.external``).

``gan-train`` and ``gan-pool`` dispatch on the family's ``conditioning`` (tables ``_TRAIN`` / ``_POOL``): what
differs is the training data, the judge and how images are drawn (``_TRAIN``), and a pool's rows and images
(``_POOL``); the training loop, checkpoints and the pool writer are shared.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import InputError, config_error
from engine.fsutil import atomic_write_json
from engine.runner.kinds import RunContext, register_kind

CLASS_NAMES = ("benign", "melanoma")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GanDataConfig(_Strict):
    """The classifier's data keys: the GAN trains on the training part of exactly that split."""

    format: str
    root: str
    split_seed: int = 0
    split_file: str | None = None
    split_data: str | None = None  # translation GANs: the ISIC 2019 root whose split (split_seed) filters the masks

    @field_validator("format")
    @classmethod
    def _known(cls, value: str) -> str:
        from engine.data import FORMATS

        if value not in FORMATS:
            raise ValueError(f"unknown data-set format {value!r}; known: {', '.join(FORMATS)}")
        return value


class MetricsConfig(_Strict):
    """Where checkpoint metrics come from (``features`` = a classify run, or ``fid_weights``) and how many images."""

    features: str | None = None
    fid_weights: str | None = None
    n: int = Field(10_000, ge=8)  # generated (and real reference) images per checkpoint, at most
    select_margin: float | None = Field(None, ge=0)  # None: 0.3 (Inception FID) or 0.01 relative (domain)
    select_relative: bool | None = None


class _Judged(_Strict):
    """What a GAN run that draws checkpoint grids and metrics takes besides its generator (trained or imported)."""

    metrics: MetricsConfig = MetricsConfig()
    grid_columns: int = Field(8, ge=1, le=64)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


class GanTrainConfig(_Judged):
    family: str
    preset: Literal["tiny", "demo", "paper"] = "demo"
    gan: dict[str, Any] = {}  # the family's config; the validator stores it complete (preset + overrides)
    data: GanDataConfig


class GanPoolConfig(_Strict):
    gan_run: str
    per_class: int | None = Field(None, ge=1)  # noise GANs (None: the paper's 100,000); translation: one per mask
    kimg: int | None = None  # None: the GAN run's selected checkpoint
    seed: int = 0
    batch_size: int = Field(64, ge=1)
    shard_size: int = Field(4096, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class GanImportConfig(_Judged):
    source: str  # the generator file the user named (copied into the run folder)
    format: Literal["pickle", "torchscript"]
    trust: bool = False
    code: str | None = None
    class_index: list[str] = []  # ["melanoma=K", ...]
    as_class: Literal["benign", "melanoma"] | None = None
    truncation_psi: float = 1.0
    z_dim: int | None = None
    c_dim: int | None = None
    data: GanDataConfig | None = None  # with metrics.features / fid_weights: checkpoint metrics


def _parse(model: type[_Strict], raw: dict[str, Any], kind: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, f"{kind} config") from None


def _check_metrics(m: MetricsConfig, required: bool) -> MetricsConfig:
    """One feature source, an existing weights file, and the selection margin resolved for that source."""
    from engine.gans.metrics import default_margin

    if m.features and m.fid_weights:
        raise InputError("metrics: give --features RUN or --fid-weights FILE, not both")
    if required and not (m.features or m.fid_weights):
        raise InputError("metrics: gan-train needs --features RUN (a classify run: domain FID) or --fid-weights FILE "
                         "(the FID Inception weights) to choose its checkpoint; a random network gives meaningless "
                         "distances")
    update: dict[str, Any] = {}
    if m.fid_weights:
        path = Path(m.fid_weights).expanduser()
        if not path.is_file():
            raise InputError(f"metrics.fid_weights: {str(path)!r} not found")
        update["fid_weights"] = str(path.resolve())
    margin, relative = default_margin("inception" if m.fid_weights else "domain")
    update["select_margin"] = margin if m.select_margin is None else m.select_margin
    update["select_relative"] = relative if m.select_relative is None else m.select_relative
    return m.model_copy(update=update)


def validate_gan_train(config: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """The gate before a gan-train run is queued: a known family and preset, every family key known."""
    from engine.gans._registry import get_family, resolve_config

    cfg: GanTrainConfig = _parse(GanTrainConfig, config, "gan-train")
    gan = resolve_config(cfg.family, cfg.preset, **cfg.gan)
    gan = {k: v for k, v in gan.items() if k not in ("family", "preset")}
    for key in ("batch", "kimg", "snapshot_kimg"):
        if not isinstance(gan[key], int) or gan[key] < 1:
            raise InputError(f"gan.{key}: must be a positive integer, got {gan[key]!r}")
    data = cfg.data
    if get_family(cfg.family).conditioning == "translation":
        data, gan = _check_translation(cfg.family, cfg.preset, data, gan)
    elif data.split_data is not None:
        raise InputError(f"data.split_data: {cfg.family} trains on the split of its own data; --split-data names the "
                         f"ISIC 2019 data whose split filters a translation GAN's masks")
    return cfg.model_copy(update={"gan": gan, "data": data, "metrics": _check_metrics(cfg.metrics, True)}).model_dump()


def _check_translation(family: str, preset: str, data: GanDataConfig, gan: dict[str, Any]
                       ) -> tuple[GanDataConfig, dict[str, Any]]:
    """A translation GAN reads attribute masks, filtered by a named ISIC 2019 split; its networks can be built
    from its config (checked on the meta device: no memory, no time); a VGG weights file loads."""
    import torch

    from engine.gans._registry import create_gan

    try:
        with torch.device("meta"):
            create_gan(family, preset, "meta", **gan)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"gan: {family} cannot be built from this config: {exc}") from None
    if data.format != "isic2018-masks":
        raise InputError(f"data.format: {family} translates attribute masks: use --format isic2018-masks, "
                         f"not {data.format}")
    if data.split_file is None and data.split_data is None:
        raise InputError("data: a translation GAN's masks are filtered by the classifier's split of the ISIC 2019 "
                         "training data: give --split-data ISIC2019_ROOT [--split-seed K] or --split-file SPLIT.csv")
    if data.split_file is not None and data.split_data is not None:
        raise InputError("data: --split-file names the split itself; --split-data (with --split-seed) names it by its "
                         "data: give one")
    update: dict[str, Any] = {}
    for key in ("split_file", "split_data"):
        value = getattr(data, key)
        if value is not None:
            path = Path(value).expanduser()
            if not path.exists():
                raise InputError(f"data.{key}: {value!r}: no such file or directory")
            update[key] = str(path.resolve())
    if gan.get("vgg_weights"):
        from engine.gans.layers import VGGLoss

        path = Path(gan["vgg_weights"]).expanduser().resolve()
        VGGLoss(path)  # refused now (InputError), not in the engine
        gan = {**gan, "vgg_weights": str(path)}
    return data.model_copy(update=update), gan


def validate_gan_pool(config: dict[str, Any], workspace: Path) -> dict[str, Any]:
    return _parse(GanPoolConfig, config, "gan-pool").model_dump()


def validate_gan_import(config: dict[str, Any], workspace: Path) -> dict[str, Any]:
    from engine.gans.external import check_trust, open_generator, parse_class_index

    cfg: GanImportConfig = _parse(GanImportConfig, config, "gan-import")
    source = Path(cfg.source).expanduser()
    fmt = check_trust(source, cfg.trust)
    if fmt != cfg.format:
        raise InputError(f"{source}: is a {fmt} file, the config says {cfg.format}")
    parse_class_index(cfg.class_index)
    if cfg.code is not None and not Path(cfg.code).is_dir():
        raise InputError(f"--code {cfg.code}: no such folder")
    metrics = _check_metrics(cfg.metrics, False)
    if (metrics.features or metrics.fid_weights) and cfg.data is None:
        raise InputError("metrics of an imported generator need the real reference: --data ROOT --format F")
    # Load and call it once now: a missing module, a wrong class index or a bad output shape is refused here.
    open_generator(source, fmt, code=cfg.code, class_index=parse_class_index(cfg.class_index), as_class=cfg.as_class,
                   truncation_psi=cfg.truncation_psi, z_dim=cfg.z_dim, c_dim=cfg.c_dim)
    return cfg.model_copy(update={"source": str(source.resolve()), "metrics": metrics}).model_dump()


def _device(requested: str, ctx: RunContext) -> Any:
    import torch

    from engine.executors import check_device

    device = ctx.device if requested == "auto" else requested
    check_device(device)
    if device == "cpu":
        torch.set_flush_denormal(True)  # tiny GAN weights and gradients otherwise hit the slow denormal path
    else:
        torch.backends.cudnn.benchmark = True
    return torch.device(device)


# --------------------------------------------------------------------------------------------- checkpoints
class CheckpointJudge:
    """Scores generator checkpoints against the real training images, on one feature space, same latents."""

    def __init__(self, workspace: Path, metrics: MetricsConfig, real: Any, labels: Any, seed: int, device: Any,
                 grid_columns: int) -> None:
        import numpy as np

        from engine.gans.generator import image_seeds
        from engine.gans.metrics import feature_extractor

        self.features = None
        if metrics.features or metrics.fid_weights:
            self.features = feature_extractor(workspace=workspace, features=metrics.features,
                                              fid_weights=metrics.fid_weights, device=str(device))
        self.metrics = metrics
        n = min(len(real), metrics.n) if self.features else 0
        rng = np.random.default_rng([seed, 5])
        ref = np.sort(rng.choice(len(real), n, replace=False)) if n < len(real) else np.arange(len(real))
        self.ref = ref  # rows of the real reference
        self.real_features = self.features.extract(np.asarray(real[ref])) if self.features else None
        # Generated set: as many as the reference, classes in the training ratio, the same seeds every time.
        n_mel = int(round(n * float(np.mean(labels)))) if n else 0
        self.labels = np.array([0] * (n - n_mel) + [1] * n_mel, dtype=np.int64)
        self.seeds = image_seeds(seed, 0, range(n - n_mel)) + image_seeds(seed, 1, range(n_mel))
        self.grid_labels = np.repeat([0, 1], grid_columns)
        self.grid_seeds = image_seeds(seed + 1, 0, range(grid_columns)) + image_seeds(seed + 1, 1, range(grid_columns))
        self.grid_columns = grid_columns

    def judge(self, run_dir: Path, kimg: int, sample: Any, classes: list[int]) -> dict[str, Any]:
        """Grid + metrics of one checkpoint; ``sample(labels, seeds) -> uint8 NHWC``."""
        import numpy as np

        from engine.gans.generator import checkpoint_name

        name = checkpoint_name(kimg)
        self.draw_grid(run_dir / "samples" / f"{name}.png", sample, classes)
        entry: dict[str, Any] = {"kimg": kimg, "grid": f"samples/{name}.png"}
        if self.features is not None:
            keep = np.isin(self.labels, classes)
            fake = sample(self.labels[keep], [s for s, k in zip(self.seeds, keep, strict=True) if k])
            entry.update(self.features.scores(self.real_features, self.features.extract(fake)))
        return entry

    def draw_grid(self, path: Path, sample: Any, classes: list[int]) -> None:
        """The fixed-latent grid: one row per class, the same seeds at every checkpoint."""
        import numpy as np

        keep = np.isin(self.grid_labels, classes)
        grid = sample(self.grid_labels[keep], [s for s, k in zip(self.grid_seeds, keep, strict=True) if k])
        write_grid(path, grid, self.grid_columns)

    def selection(self, checkpoints: list[dict[str, Any]]) -> dict[str, Any]:
        """result.json's ``selected``: the paper's rule on the curve (or the only/last checkpoint without one)."""
        from engine.gans.metrics import select_checkpoint

        if self.features is None:
            last = checkpoints[-1]
            return {"kimg": last["kimg"], "path": last["path"], "rule": "no metrics (no --features/--fid-weights): "
                    "the last checkpoint"}
        metric = self.features.names()[0]
        kimg, rule = select_checkpoint([(c["kimg"], c[metric]) for c in checkpoints], self.metrics.select_margin,
                                       self.metrics.select_relative, metric)
        chosen = next(c for c in checkpoints if c["kimg"] == kimg)
        return {"kimg": kimg, "path": chosen["path"], "rule": rule}

    @property
    def features_kind(self) -> str | None:
        return self.features.kind if self.features is not None else None


class MaskJudge(CheckpointJudge):
    """A translation GAN's judge: the generated set is one image translated from each mask of the real
    reference (the real images of up to ``metrics.n`` training masks), so both sets share their masks and
    class ratio; ``sample(labels, rows)`` translates the masks at ``rows`` of the training data. The grid
    shows label map / real / synthetic for the first ``grid_masks`` training masks, at every checkpoint."""

    def __init__(self, workspace: Path, metrics: MetricsConfig, data: Any, seed: int, device: Any,
                 grid_masks: int) -> None:
        super().__init__(workspace, metrics, data.images, data.labels, seed, device, grid_masks)
        self.labels = data.labels[self.ref]
        self.seeds = [int(i) for i in self.ref]
        self.data = data

    def draw_grid(self, path: Path, sample: Any, classes: list[int]) -> None:
        import numpy as np
        from PIL import Image

        from engine.fsutil import atomic_path
        from engine.gans.translation import triplet_grid

        rows = np.arange(min(self.grid_columns, len(self.data)))
        fake = sample(self.data.labels[rows], [int(i) for i in rows])
        grid = triplet_grid(self.data.maps[rows], np.asarray(self.data.images[rows]), fake)
        with atomic_path(path) as tmp:
            Image.fromarray(grid).save(tmp)


def write_grid(path: Path, images: Any, columns: int, pad: int = 2) -> None:
    """uint8 (N, R, R, 3) -> one PNG, ``columns`` per row, ``pad`` black pixels between (atomic)."""
    import numpy as np
    from PIL import Image

    from engine.fsutil import atomic_path

    n, r = len(images), images.shape[1]
    rows = max(1, math.ceil(n / columns))
    canvas = np.zeros((rows * (r + pad) + pad, columns * (r + pad) + pad, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        y, x = divmod(i, columns)
        canvas[pad + y * (r + pad):pad + y * (r + pad) + r, pad + x * (r + pad):pad + x * (r + pad) + r] = img
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp)


# --------------------------------------------------------------------------------------------- gan-train
@register_kind("gan-train", validate=validate_gan_train)
def run_gan_train(ctx: RunContext) -> None:
    """Train, checkpoint, judge every checkpoint, pick one; writes result.json."""
    from engine.gans._registry import get_family

    cfg = GanTrainConfig.model_validate(ctx.config)
    _train(ctx, cfg, _by_conditioning(_TRAIN, get_family(cfg.family).conditioning, "gan-train"))


def _by_conditioning(table: dict[str, Any], conditioning: str, kind: str) -> Any:
    """The kind's implementation for a family's conditioning (``noise`` or ``translation``)."""
    try:
        return table[conditioning]
    except KeyError:
        raise InputError(f"{kind}: {conditioning} GANs are not supported by this version of ganaug") from None


Draw = Callable[[Any, list[int]], Any]  # (labels, keys) -> uint8 (N, R, R, 3), for one batch
Inputs = tuple[Any, CheckpointJudge, Callable[[Any, Any], Draw]]  # data, judge, draw_of(trainer, generator)


def _noise_inputs(ctx: RunContext, cfg: GanTrainConfig, device: Any) -> Inputs:
    """Noise GANs: the split's training images; images are drawn from the latents of seeds (the keys)."""
    import torch

    from engine.gans.data import load_training_data
    from engine.gans.generator import latents, to_uint8

    data = load_training_data(ctx.workspace, cfg.data.model_dump(), cfg.gan["res"], ctx.log)
    judge = CheckpointJudge(ctx.workspace, cfg.metrics, data.images, data.labels, cfg.seed, device, cfg.grid_columns)

    def draw_of(trainer: Any, generator: Any) -> Draw:
        def draw(labels: Any, seeds: list[int]) -> Any:
            z = latents(seeds, generator.z_dim).to(device)
            return to_uint8(trainer.generate(labels=torch.from_numpy(labels).to(device), z=z))

        return draw

    return data, judge, draw_of


def _translation_inputs(ctx: RunContext, cfg: GanTrainConfig, device: Any) -> Inputs:
    """Translation GANs: the training masks and their images; an image is translated from the mask at its row
    (the key) and has that mask's class."""
    import numpy as np

    from engine.gans.data import load_translation_data
    from engine.gans.generator import to_uint8

    data = load_translation_data(ctx.workspace, cfg.data.model_dump(), cfg.gan["res"], cfg.gan["boundary"], ctx.log)
    judge = MaskJudge(ctx.workspace, cfg.metrics, data, cfg.seed, device, cfg.grid_columns)

    def draw_of(trainer: Any, generator: Any) -> Draw:
        def draw(labels: Any, rows: list[int]) -> Any:
            return to_uint8(trainer.generate(maps=data.encoded_maps(np.asarray(rows), device)))

        return draw

    return data, judge, draw_of


def _train(ctx: RunContext, cfg: GanTrainConfig, inputs: Callable[..., Inputs]) -> None:
    """The training loop every family shares: steps, loss curve, checkpoints judged by ``inputs``' judge."""
    import numpy as np

    from engine.gans._registry import create_gan, get_family
    from engine.gans.generator import checkpoint_name
    from engine.train.augment import make_generator
    from engine.train.classifier import derive_seed

    t_start = time.perf_counter()
    device = _device(cfg.device, ctx)
    gan = dict(cfg.gan)
    res, batch, total = gan["res"], gan["batch"], gan["kimg"] * 1000
    data, judge, draw_of = inputs(ctx, cfg, device)
    n_mel = int(data.labels.sum())
    ctx.log.info("%s/%s on %s: %d training %s (%d melanoma) at %d px from %s", cfg.family, cfg.preset, device,
                 len(data), "images" if data.maps is None else "masks", n_mel, res, data.split_file)
    trainer = create_gan(cfg.family, cfg.preset, device, seed=derive_seed(cfg.seed, 0), **gan)
    for note in getattr(trainer, "notes", ()):  # what the family's config leaves out, e.g. a loss without weights
        ctx.log.info("%s: %s", cfg.family, note)
    generator = get_family(cfg.family).sampling_generator(trainer)
    draw = draw_of(trainer, generator)

    def sample(labels: np.ndarray, keys: list[int]) -> np.ndarray:
        """uint8 images of ``labels`` from ``keys`` (seeds, or mask rows), 64 at a time."""
        out = [draw(labels[s:s + 64], keys[s:s + 64]) for s in range(0, len(labels), 64)]
        return np.concatenate(out) if out else np.zeros((0, res, res, 3), np.uint8)

    checkpoints: list[dict[str, Any]] = []
    window: dict[str, list[float]] = {}
    train_s = 0.0
    state = ctx.load_checkpoint()
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        checkpoints, window, train_s = state["checkpoints"], state["window"], state["train_s"]
        ctx.log.info("resuming at %d images (%d checkpoints so far)", trainer.images_seen, len(checkpoints))

    def resume_state() -> dict[str, Any]:
        return {"trainer": trainer.state_dict(), "checkpoints": checkpoints, "window": window, "train_s": train_s}

    log_every = max(1, 256 // batch)  # loss points every ~256 images
    snap = gan["snapshot_kimg"] * 1000
    while trainer.images_seen < total:
        if ctx.stop_requested():
            ctx.save_checkpoint(resume_state())
            ctx.log.info("stopped at %d images; resuming continues from here", trainer.images_seen)
            return
        t0 = time.perf_counter()
        step = trainer.step
        rng = np.random.default_rng([cfg.seed, 1, step])
        index = rng.choice(len(data), batch, replace=len(data) < batch)
        logs = trainer.train_step(data.batch(index, device), make_generator(device, derive_seed(cfg.seed, 2, step)))
        train_s += time.perf_counter() - t0
        for k, v in logs.items():
            window.setdefault(k, []).append(v)
        if trainer.step % log_every == 0:
            ctx.metrics({k: float(np.mean(v)) for k, v in window.items()}, step=trainer.images_seen)
            window = {}
        ctx.progress(trainer.images_seen, total, f"kimg {trainer.images_seen / 1000:.1f}")
        boundary = (len(checkpoints) + 1) * snap
        if trainer.images_seen >= min(boundary, total):
            kimg = min(boundary, total) // 1000
            name = checkpoint_name(kimg)
            path = Path("checkpoints") / f"{name}.pt"
            _save_snapshot(ctx.run_dir / path, cfg, gan, generator, kimg, trainer.images_seen)
            entry = {**judge.judge(ctx.run_dir, kimg, sample, [0, 1]), "images": trainer.images_seen,
                     "path": str(path)}
            checkpoints.append(entry)
            scores = {k: v for k, v in entry.items() if k.startswith(("fid", "precision", "recall"))}
            if scores:
                ctx.metrics(scores, step=kimg)
            ctx.log.info("checkpoint %s: %s", name, " ".join(f"{k} {v:.4g}" for k, v in scores.items()) or "saved")
            ctx.save_checkpoint(resume_state())
    if window:
        ctx.metrics({k: float(np.mean(v)) for k, v in window.items()}, step=trainer.images_seen)
    selected = judge.selection(checkpoints)
    ctx.log.info("selected kimg %d (%s)", selected["kimg"], selected["rule"])
    atomic_write_json(ctx.run_dir / "result.json", {
        "checkpoints": checkpoints,
        "selected": selected,
        "features": judge.features_kind,
        "family": cfg.family,
        "preset": cfg.preset,
        "res": res,
        "kimg": gan["kimg"],
        "images_seen": trainer.images_seen,
        "n_train": {"benign": len(data) - n_mel, "melanoma": n_mel},
        "split": str(data.split_file),
        "device": str(device),
        "kimg_per_s": trainer.images_seen / 1000 / train_s if train_s else 0.0,
        "timings": {"train_s": train_s, "total_s": time.perf_counter() - t_start},
    })


def _save_snapshot(path: Path, cfg: GanTrainConfig, gan: dict[str, Any], generator: Any, kimg: int,
                   images_seen: int) -> None:
    """The sampling (EMA) generator alone, loadable with ``torch.load(weights_only=True)``."""
    import torch

    from engine.fsutil import atomic_path

    state = {k: v.detach().cpu() for k, v in generator.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"family": cfg.family, "preset": cfg.preset, "config": gan, "generator": state, "kimg": kimg,
                    "images_seen": images_seen}, tmp)


# --------------------------------------------------------------------------------------------- gan-pool
def pool_bytes(n_images: int, res: int) -> int:
    return n_images * res * res * 3


def disk_warning(folder: Path, n_images: int, res: int) -> str | None:
    """A warning line when a pool of ``n_images`` at ``res`` will not fit in the free space under ``folder``."""
    need = pool_bytes(n_images, res)
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        return (f"warning: the pool needs {need / 1e9:.1f} GB ({n_images} images at {res} px) but only "
                f"{free / 1e9:.1f} GB are free under {probe}")
    return None


@register_kind("gan-pool", validate=validate_gan_pool)
def run_gan_pool(ctx: RunContext) -> None:
    """Sample ``per_class`` images of every class the GAN makes (a translation GAN: one per training mask) into a
    pool; result.json says how fast."""
    from engine.gans._registry import get_family
    from engine.gans.generator import load_generator, read_result
    from engine.synth.pool import PoolWriter

    cfg = GanPoolConfig.model_validate(ctx.config)
    family = read_result(ctx.workspace / cfg.gan_run, cfg.gan_run).get("family")  # None: an imported generator
    conditioning = get_family(family).conditioning if family else "noise"
    rows_of = _by_conditioning(_POOL, conditioning, "gan-pool")
    device = _device(cfg.device, ctx)
    gen = load_generator(ctx.workspace, cfg.gan_run, cfg.kimg, device)
    rows, make = rows_of(ctx, cfg, gen)
    warning = disk_warning(ctx.run_dir, len(rows), gen.res)
    if warning:
        ctx.log.warning(warning)
    writer = PoolWriter(ctx.run_dir, gen.res, cfg.shard_size)
    n_shards = math.ceil(len(rows) / cfg.shard_size)
    start = writer.next_shard
    t0 = time.perf_counter()
    made = 0
    for k in range(start, n_shards):
        if ctx.stop_requested():
            ctx.log.info("stopped after %d of %d shards; resuming continues with shard %d", k, n_shards, k)
            return
        sl = slice(k * cfg.shard_size, (k + 1) * cfg.shard_size)
        writer.write_shard(k, make(sl), rows[sl])
        made += len(rows[sl])
        ctx.progress(min((k + 1) * cfg.shard_size, len(rows)), len(rows), "images")
    elapsed = time.perf_counter() - t0
    per_class = {CLASS_NAMES[y]: sum(r.label == y for r in rows) for y in gen.classes}
    seed = None if conditioning == "translation" else cfg.seed  # a translated image is a function of its mask
    writer.finish(n_shards, {"family": family, "gan_run": cfg.gan_run, "checkpoint": gen.checkpoint, "seed": seed})
    ips = made / elapsed if elapsed > 0 else 0.0
    ctx.metric("images_per_s", ips, step=len(rows))
    ctx.log.info("pool of %d images (%s) at %.0f images/s", len(rows), per_class, ips)
    atomic_write_json(ctx.run_dir / "result.json", {
        "gan_run": cfg.gan_run, "checkpoint": gen.checkpoint, "n": len(rows), "per_class": per_class,
        "res": gen.res, "seed": seed, "pool": "pool", "images_per_s": ips, "device": str(device),
        "resumed_at_shard": start,
    })


def _noise_pool(ctx: RunContext, cfg: GanPoolConfig, gen: Any) -> tuple[list[Any], Any]:
    """A noise GAN's pool: ``per_class`` (default 100,000) images per class, each from its own seed."""
    import numpy as np

    from engine.gans.generator import image_seeds
    from engine.synth.pool import PoolRow, pool_id

    n_per_class = cfg.per_class or 100_000
    labels = np.concatenate([np.full(n_per_class, y, dtype=np.int64) for y in gen.classes])
    index = np.concatenate([np.arange(n_per_class) for _ in gen.classes])
    seeds = [s for y in gen.classes for s in image_seeds(cfg.seed, y, range(n_per_class))]
    rows = [PoolRow(pool_id(int(y), int(i)), int(y), cfg.gan_run, gen.checkpoint, seed=s)
            for y, i, s in zip(labels, index, seeds, strict=True)]

    def make(sl: slice) -> Any:
        return gen.images(labels[sl], seeds[sl], cfg.batch_size)

    return rows, make


def _translation_pool(ctx: RunContext, cfg: GanPoolConfig, gen: Any) -> tuple[list[Any], Any]:
    """A translation GAN's pool: one image per training mask of its run (in id order), of the mask's image's
    class; ``source_mask`` names the mask, ``seed`` stays empty (the image is a function of its mask)."""
    from engine.data.masks import LabelMapCache
    from engine.gans.data import translation_masks
    from engine.synth.pool import PoolRow, pool_id

    if cfg.per_class is not None:
        raise InputError(f"gan-pool: run {cfg.gan_run} is a translation GAN: it makes exactly one image per training "
                         f"mask, so per_class does not apply")
    records, _ = translation_masks(ctx.workspace, gen.data, ctx.log)
    maps = LabelMapCache(ctx.workspace / "cache" / "labelmaps").load(records, gen.res)
    counts = [0, 0]
    rows = []
    for r in records:
        rows.append(PoolRow(pool_id(r.label, counts[r.label]), r.label, cfg.gan_run, gen.checkpoint,
                            source_mask=r.image_id))
        counts[r.label] += 1

    def make(sl: slice) -> Any:
        return gen.translate(maps[sl], cfg.batch_size)

    return rows, make


_TRAIN: dict[str, Any] = {"noise": _noise_inputs, "translation": _translation_inputs}
_POOL: dict[str, Any] = {"noise": _noise_pool, "translation": _translation_pool}


# --------------------------------------------------------------------------------------------- gan-import
IMPORTED = "imported"


@register_kind("gan-import", validate=validate_gan_import)
def run_gan_import(ctx: RunContext) -> None:
    """Copy the generator into the run, load and probe it, draw its grid and (when asked) its metrics."""
    import numpy as np
    import torch

    from engine.fsutil import atomic_path
    from engine.gans.external import open_generator, parse_class_index
    from engine.gans.generator import latents, to_uint8

    cfg = GanImportConfig.model_validate(ctx.config)
    device = _device(cfg.device, ctx)
    source = Path(cfg.source)
    path = Path("checkpoints") / f"{IMPORTED}{source.suffix or '.pkl'}"
    with atomic_path(ctx.run_dir / path) as tmp:
        shutil.copyfile(source, tmp)
    gen, info = open_generator(ctx.run_dir / path, cfg.format, code=cfg.code,
                               class_index=parse_class_index(cfg.class_index), as_class=cfg.as_class,
                               truncation_psi=cfg.truncation_psi, z_dim=cfg.z_dim, c_dim=cfg.c_dim)
    gen.to(device)
    ctx.log.info("imported %s (%s): z_dim %d, c_dim %d, %d px, classes %s", source, cfg.format, info["z_dim"],
                 info["c_dim"], info["res"], [CLASS_NAMES[c] for c in info["classes"]])

    def sample(labels: np.ndarray, seeds: list[int]) -> np.ndarray:
        out = [to_uint8(gen(latents(seeds[s:s + 64], info["z_dim"]).to(device),
                            torch.from_numpy(labels[s:s + 64]).to(device))) for s in range(0, len(labels), 64)]
        return np.concatenate(out) if out else np.zeros((0, info["res"], info["res"], 3), np.uint8)

    if cfg.data is not None:
        from engine.gans.data import load_training_data

        data = load_training_data(ctx.workspace, cfg.data.model_dump(), info["res"], ctx.log)
        real, labels = data.images, data.labels
        keep = np.isin(labels, info["classes"])  # a one-class generator is judged against its class only
        real, labels = np.asarray(real)[keep], labels[keep]
    else:
        real, labels = np.zeros((0, info["res"], info["res"], 3), np.uint8), np.zeros(0, np.int64)
    judge = CheckpointJudge(ctx.workspace, cfg.metrics, real, labels, cfg.seed, device, cfg.grid_columns)
    entry = {**judge.judge(ctx.run_dir, 0, sample, info["classes"]), "path": str(path)}
    scores = {k: v for k, v in entry.items() if k.startswith(("fid", "precision", "recall"))}
    if scores:
        ctx.metrics(scores, step=0)
    selected = {"kimg": 0, "path": str(path), "rule": "imported generator: its only checkpoint"}
    atomic_write_json(ctx.run_dir / "result.json", {
        "checkpoints": [entry], "selected": selected, "features": judge.features_kind,
        "imported": {"source": str(source), "format": cfg.format, **info,
                     "class_index": parse_class_index(cfg.class_index)},
        "res": info["res"],
    })
