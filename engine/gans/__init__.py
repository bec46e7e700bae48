"""The GAN zoo (timm's layout): one module per family (``stylegan2``, ``pgan``, ``pix2pixhd``, ``spade``), shared
layers in ``layers``, what each kind of family shares around its networks in ``noise`` / ``translation``, the
registry in ``_registry``; users only call :func:`create_gan` / :func:`create_generator`.

Importing this package is cheap: a family's module (and torch) is imported on first use.
"""

from engine.gans._registry import (
    PRESETS,
    Family,
    GanBatch,
    GanTrainer,
    create_gan,
    create_generator,
    families,
    get_family,
    register_family,
    resolve_config,
)

__all__ = ["PRESETS", "Family", "GanBatch", "GanTrainer", "create_gan", "create_generator", "families",
           "get_family", "register_family", "resolve_config"]
