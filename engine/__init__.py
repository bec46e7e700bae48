"""ganaug's headless core: data, GANs, synthesis, training, run store and analysis.

Nothing under ``engine`` imports the terminal UI (``textual``); the TUI in ``ganaug_tui`` is a
thin view over this package and the run store.
"""

__version__ = "0.1.0"
