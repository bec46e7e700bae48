"""The target classifier (run kind ``classify``): the paper's fine-tuning protocol, per-image device-side
augmentation, 50-replica test-time augmentation and AUC on every test set.

Modules: ``config`` (validated run config, defaults = the paper), ``model`` (timm + local weights),
``augment`` (batched per-image augmentation), ``pipeline`` (background batch preparation),
``classifier`` (the training loop), ``evaluate`` (TTA, artefacts), ``kind`` (the run kind).
Importing this package is cheap; torch is imported by the submodules that need it.
"""
