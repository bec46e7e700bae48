"""Synthetic training images: pools on disk (``pool``), the samplers that pick from them, the mix with the real
subset, the pHash the diverse sampler and the audit use, and the memorization audit.

Importing this package is cheap (no torch at import time).
"""
