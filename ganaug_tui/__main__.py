"""``python -m ganaug_tui``: the same as ``ganaug-tui``."""

from ganaug_tui.cli import main

main()
